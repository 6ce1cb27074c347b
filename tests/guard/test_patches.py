"""Diff-aware masking on patches made by real git (`git diff-tree`, parsed by the data plane's own parser)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.security.planted import Planted, make_credentials
from tests.support.gitrepo import WorkRepo

from bastion.guard.patches import (
    ParsedPatch,
    PatchFinding,
    Side,
    _from_side,  # pyright: ignore[reportPrivateUsage]
    fallback_spans,
    file_spans,
    guard_patch,
    intrinsic_spans,
    needs_whole_files,
)
from bastion.guard.redact import LineView
from bastion.guard.secrets import find_secrets
from bastion.repos.diffs import DIFF_TREE_ARGS, parse_diff_tree

WHEN = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def planted() -> Planted:
    return make_credentials()


def _patches(work: WorkRepo) -> dict[str, str]:
    out = subprocess.run(
        ["git", "-C", str(work.path), *DIFF_TREE_ARGS, "-p", "HEAD~1", "HEAD"], check=True, capture_output=True
    ).stdout
    return {diff.path: diff.patch or "" for diff in parse_diff_tree(out, with_patch=True)}


def _body_lines(patch: str) -> list[str]:
    return [line for line in patch.split("\n") if line[:1] in ("+", "-", " ")]


def _assert_structure_kept(before: str, after: str) -> None:
    """Same number of lines, same prefixes, hunk headers' numbers untouched."""
    old_lines, new_lines = before.split("\n"), after.split("\n")
    assert len(old_lines) == len(new_lines)
    for old, new in zip(old_lines, new_lines, strict=True):
        assert old[:1] == new[:1]
        if old.startswith("@@"):
            assert new.split(" @@")[0] == old.split(" @@")[0]


def _guarded(patch: str, *views: tuple[str, LineView]) -> tuple[str, tuple[PatchFinding, ...]]:
    parsed = ParsedPatch(patch)
    spans = list(intrinsic_spans(parsed))
    for side, view in views:
        mapped = file_spans(parsed, "new" if side == "new" else "old", view)
        assert mapped is not None
        spans.extend(mapped)
    guarded = guard_patch(parsed, spans)
    _assert_structure_kept(patch, guarded.text)
    return guarded.text, guarded.findings


def test_an_added_key_with_plus_prefixes(tmp_path: Path, planted: Planted) -> None:
    work = WorkRepo(tmp_path / "w")
    work.write("README.md", "readme\n")
    work.commit("start", when=WHEN)
    key = planted["private_key"].value
    work.write("deploy/signing.txt", f"# signing key for releases\n{key}\n# end\n")
    work.commit("add key", when=WHEN)
    patch = _patches(work)["deploy/signing.txt"]
    text, findings = _guarded(patch)
    assert findings == (PatchFinding("private-key", 2, "new"),)
    assert planted.leaks(text) == []
    assert "+# signing key for releases" in text
    assert "+# end" in text
    assert text.count("+[REDACTED:private-key]") == len(key.splitlines())


def test_a_rotated_token_is_masked_on_both_sides(tmp_path: Path, planted: Planted) -> None:
    work = WorkRepo(tmp_path / "w")
    lines = [f"setting_{n} = {n}" for n in range(1, 11)]
    work.write("config.py", "\n".join([*lines[:4], f"GITHUB_TOKEN = '{planted['github_pat'].value}'", *lines[4:]]))
    work.commit("start", when=WHEN)
    work.write("config.py", "\n".join([*lines[:4], f"GITHUB_TOKEN = '{planted['github_pat_new'].value}'", *lines[4:]]))
    work.commit("rotate", when=WHEN)
    text, findings = _guarded(_patches(work)["config.py"])
    assert findings == (PatchFinding("github-pat", 5, "old"), PatchFinding("github-pat", 5, "new"))
    assert "-GITHUB_TOKEN = '[REDACTED:github-pat]'" in text
    assert "+GITHUB_TOKEN = '[REDACTED:github-pat]'" in text
    assert planted.leaks(text) == []


def test_a_credential_in_the_hunk_header(tmp_path: Path, planted: Planted) -> None:
    """git puts the last unindented line before a hunk into its header (function context): a credential there
    must be masked though it is not part of any hunk line."""
    stripe = planted["stripe"].value
    body = [f"    option_{n} = {n}" for n in range(1, 16)]
    work = WorkRepo(tmp_path / "w")
    work.write("settings.py", "\n".join([f'STRIPE_KEY = "{stripe}"', *body]) + "\n")
    work.commit("start", when=WHEN)
    body[11] = "    option_12 = 'changed'"
    work.write("settings.py", "\n".join([f'STRIPE_KEY = "{stripe}"', *body]) + "\n")
    work.commit("change", when=WHEN)
    patch = _patches(work)["settings.py"]
    assert stripe in patch.split("\n")[0]  # the premise: git showed it in the header
    text, findings = _guarded(patch)
    header = text.split("\n")[0]
    assert header.startswith("@@ -10,7 +10,7 @@ ")
    assert header.endswith('STRIPE_KEY = "[REDACTED:stripe-key]"')
    assert findings == (PatchFinding("stripe-key", 10, "old"),)
    assert planted.leaks(text) == []


def test_a_change_in_the_middle_of_a_key_needs_the_whole_files(tmp_path: Path, planted: Planted) -> None:
    """The hunk shows seven lines of key body and neither its BEGIN nor its END: alone it has no finding; with
    the whole files every shown line of the key is masked; without them every key-material line is."""
    key_lines = planted["private_key"].value.splitlines()
    work = WorkRepo(tmp_path / "w")
    before = "\n".join(["intro", *key_lines, "outro"]) + "\n"
    work.write("key.txt", before)
    work.commit("start", when=WHEN)
    changed = list(key_lines)
    changed[12] = changed[12][::-1]
    after = "\n".join(["intro", *changed, "outro"]) + "\n"
    work.write("key.txt", after)
    work.commit("change a line of the key", when=WHEN)
    patch = _patches(work)["key.txt"]
    assert "BEGIN" not in patch
    assert "END" not in patch
    assert needs_whole_files(patch)
    parsed = ParsedPatch(patch)
    assert intrinsic_spans(parsed) == ()
    views = (
        ("new", LineView(after, find_secrets(after))),
        ("old", LineView(before, find_secrets(before))),
    )
    text, findings = _guarded(patch, *views)
    assert all(line[1:] == "[REDACTED:private-key]" for line in _body_lines(text))
    assert planted.leaks(text) == []
    assert {finding.kind for finding in findings} == {"private-key"}  # one key: its shown lines continue one another
    assert patch.split("\n")[0].rsplit("@@ ", 1)[-1] in key_lines  # git's function context: a line of the key
    fallback = guard_patch(parsed, fallback_spans(parsed))
    assert all(line[1:] == "[REDACTED:private-key]" for line in _body_lines(fallback.text))


def test_file_spans_refuse_a_file_that_does_not_match_the_patch(tmp_path: Path, planted: Planted) -> None:
    work = WorkRepo(tmp_path / "w")
    work.write("a.txt", "one\ntwo\nthree\n")
    work.commit("start", when=WHEN)
    work.write("a.txt", "one\n2\nthree\n")
    work.commit("change", when=WHEN)
    parsed = ParsedPatch(_patches(work)["a.txt"])
    assert file_spans(parsed, "new", LineView("one\n2\nthree\n", ())) == []
    assert file_spans(parsed, "new", LineView("one\nTWO\nthree\n", ())) is None
    assert file_spans(parsed, "new", LineView("one\n", ())) is None


def test_a_plain_patch_is_left_as_it_is(tmp_path: Path) -> None:
    work = WorkRepo(tmp_path / "w")
    work.write("a.py", "def f():\n    return 1\n")
    work.commit("start", when=WHEN)
    work.write("a.py", "def f():\n    return 2\n")
    work.commit("change", when=WHEN)
    patch = _patches(work)["a.py"]
    assert not needs_whole_files(patch)
    assert _guarded(patch) == (patch, ())


def test_side_findings_map_back_to_their_patch_positions(tmp_path: Path, planted: Planted) -> None:
    """A finding in a reconstructed side (prefixes removed) lands on the same characters of the patch."""
    work = WorkRepo(tmp_path / "w")
    work.write("a.env", f"KEEP=1\nTOKEN={planted['github_pat'].value}\nOTHER=2\n")
    work.commit("start", when=WHEN)
    work.write("a.env", f"KEEP=1\nTOKEN={planted['github_pat_new'].value}\nOTHER=2\nSLACK={planted['slack'].value}\n")
    work.commit("change", when=WHEN)
    parsed = ParsedPatch(_patches(work)["a.env"])
    sides: list[tuple[Side, list[str]]] = [("new", ["github_pat_new", "slack"]), ("old", ["github_pat"])]
    for side, names in sides:
        side_text, indices = parsed.side(side)
        mapped = _from_side(parsed, indices, find_secrets(side_text))
        assert [parsed.text[span.start : span.end] for span in mapped] == [planted[name].value for name in names]
