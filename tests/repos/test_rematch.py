"""Re-matching a search query outside the credentials of lines, with the real ripgrep (bastion.repos.rematch)."""

from __future__ import annotations

import pytest

from bastion.guard.spans import SecretSpan
from bastion.repos.rematch import lines_matching, masked_line
from bastion.repos.types import SearchQuery

pytestmark = pytest.mark.anyio

TOKEN = "ghp_" + "A1b2" * 9


def _line(text: str, *secrets: str) -> tuple[str, list[SecretSpan]]:
    spans = [SecretSpan(text.index(s), text.index(s) + len(s), "github-pat") for s in secrets]
    return text, spans


def test_the_filler_keeps_length_offsets_and_the_class_of_each_end() -> None:
    line, spans = _line(f'ünï = "{TOKEN}" # .{TOKEN[:6]}.', TOKEN, "." + TOKEN[:6] + ".")
    masked = masked_line(line, spans)
    assert len(masked.text) == len(line)
    assert masked.text == 'ünï = "a' + "-" * (len(TOKEN) - 2) + 'a" # --------'
    start = len(line[: line.index(TOKEN)].encode())  # bytes: ripgrep's offsets
    assert masked.filler == ((start, start + len(TOKEN)), (start + len(TOKEN) + 4, start + len(TOKEN) + 12))


async def test_a_query_counts_only_outside_the_filler() -> None:
    lines = [masked_line(*_line(f'GITHUB_TOKEN = "{TOKEN}"', TOKEN)), masked_line("plain text", [])]
    assert await lines_matching(SearchQuery("github_token"), lines) == {0}
    assert await lines_matching(SearchQuery("Token", case_sensitive=True), lines) == set()
    assert await lines_matching(SearchQuery(TOKEN[:8]), lines) == set()  # only inside the credential
    assert await lines_matching(SearchQuery("plain"), lines) == {1}


async def test_what_the_filler_is_made_of_confirms_nothing() -> None:
    """`guess|<the marker or the filler>` must not pass by matching the stand-in for the value."""
    lines = [masked_line(*_line(f'k = "{TOKEN}"', TOKEN))]
    for pattern in (f"{TOKEN[:6]}|REDACTED", f"{TOKEN[:6]}|--", f"{TOKEN[:6]}|a-", r"-+a"):
        assert await lines_matching(SearchQuery(pattern, regex=True), lines) == set(), pattern
    assert await lines_matching(SearchQuery(f"{TOKEN[:6]}|k =", regex=True), lines) == {0}  # found outside too


async def test_word_boundaries_next_to_the_value_see_what_they_would_in_the_real_line() -> None:
    lines = [masked_line(*_line(f'k="{TOKEN}";', TOKEN))]
    assert await lines_matching(SearchQuery(r'="\b', regex=True), lines) == {0}  # a word character follows
    assert await lines_matching(SearchQuery(r'="\B', regex=True), lines) == set()
    assert await lines_matching(SearchQuery(r'\b";', regex=True), lines) == {0}  # a word character precedes
    assert await lines_matching(SearchQuery(r'\B";', regex=True), lines) == set()


async def test_a_pattern_ripgrep_refuses_matches_nothing() -> None:
    """A `git grep -P` pattern beyond ripgrep's dialect: no line is taken as matching, the guard's safe answer."""
    lines = [masked_line("TOKEN = x", [])]
    assert await lines_matching(SearchQuery(r"(?<=TOKEN) =", regex=True), lines) == set()


async def test_a_nul_in_one_line_does_not_hide_the_others() -> None:
    lines = [masked_line("bin\x00ary token", []), masked_line("token", [])]
    assert await lines_matching(SearchQuery("token"), lines) == {0, 1}


async def test_options_in_the_pattern_are_a_pattern() -> None:
    assert await lines_matching(SearchQuery("--files"), [masked_line("run --files now", [])]) == {0}
    assert await lines_matching(SearchQuery("x"), []) == set()
