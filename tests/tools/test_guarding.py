"""The tool-layer pieces of the content guard that the end-to-end suite (tests/security/test_secret_leaks.py) does
not reach on purpose: placing a clipped hit in its file's line, and the fallback when the file cannot be read."""

from __future__ import annotations

import pytest
from tests.security.planted import Planted, make_credentials

from bastion.guard.redact import LineView
from bastion.guard.secrets import find_secrets
from bastion.repos.search import MAX_LINE_CHARS
from bastion.tools.guarding import describe
from bastion.tools.models import SearchHitOut
from bastion.tools.search_guard import from_file, scan_lines, windows


@pytest.fixture(scope="module")
def planted() -> Planted:
    return make_credentials()


def _hit(line: str) -> SearchHitOut:
    return SearchHitOut(repository="acme/app", path="a.js", line_number=1, line=line, resolved_sha="0" * 40)


def test_a_clipped_hit_is_placed_in_its_line() -> None:
    full = "0123456789" * 3 + "".join(chr(ord("a") + n % 26) for n in range(1000))
    assert windows(full[:50], full[:50]) == [(0, "", "")]
    assert windows(full, full[:300] + "…") == [(0, "", "…")]
    assert windows(full, "…" + full[730:]) == [(730, "…", "")]
    assert windows(full, "…something else…") == []
    # A line that repeats itself: every place the window fits is returned.
    assert windows(full, "…" + full[400:700] + "…") == [(start, "…", "…") for start in range(36, 730, 26)]


def test_a_line_that_itself_starts_with_an_ellipsis() -> None:
    full = "…" + "x" * 299 + "y" * 200
    assert (0, "", "…") in windows(full, full[:300] + "…")


def test_what_any_place_of_a_repeated_window_would_mask_is_masked(planted: Planted) -> None:
    """The same window text at two places of a line; at the second, the window's start cuts a token in two. The
    guard cannot know which place the hit was, so it masks what either would."""
    token = planted["github_pat"].value
    body = token[20:] + "w" * 280
    full = "x" * 50 + body + "y" * 50 + 'k="' + token[:20] + body + '"' + "z" * 50
    view = LineView(full, find_secrets(full))
    shown = from_file(view, _hit("…" + body + "…"))
    assert shown is not None
    assert shown[0] == "…[REDACTED:github-pat]" + "w" * 280 + "…"
    assert [span.kind for span in shown[1]] == ["github-pat"]


@pytest.mark.anyio
async def test_without_the_file_a_clipped_line_loses_its_cut_tokens_and_key_material(planted: Planted) -> None:
    token, slack = planted["github_pat"].value, planted["slack"].value
    clipped = "…" + slack[20:] + '";' + "a=b;" * 70 + 'p="' + token[:15] + "…"
    assert len(clipped) > MAX_LINE_CHARS
    key_line = planted["private_key"].value.splitlines()[5]
    masked = await scan_lines([clipped, key_line, "plain line"], [True, True, False])
    assert masked[0][0].startswith("…[REDACTED:cut-token]")
    assert masked[0][0].endswith('p="[REDACTED:cut-token]…')
    assert masked[1][0] == "[REDACTED:private-key]"
    assert masked[2] == ("plain line", [])
    assert planted.leaks("\n".join(text for text, _ in masked)) == []


def test_describe_names_at_most_five() -> None:
    findings = [("github-pat", line) for line in range(1, 8)]
    assert describe(findings[:2]) == "github-pat at line 1, github-pat at line 2"
    assert describe(findings).endswith("github-pat at line 5 and 2 more")
