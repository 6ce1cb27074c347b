"""Masking that keeps line structure, windows of a line, cut edges and the line view used for search hits."""

from __future__ import annotations

import pytest
from tests.security.planted import Planted, make_credentials

from bastion.guard.content import slice_text
from bastion.guard.redact import (
    Finding,
    LineView,
    cut_safe_end,
    findings_in,
    mask_cut_edges,
    redact,
    redact_window,
)
from bastion.guard.secrets import find_secrets
from bastion.guard.spans import SecretSpan, merge_spans


@pytest.fixture(scope="module")
def planted() -> Planted:
    return make_credentials()


def test_one_line_credentials_become_one_marker() -> None:
    text = "a = SECRET1 and SECRET2\n"
    spans = (SecretSpan(4, 11, "github-pat"), SecretSpan(16, 23, "stripe-key"))
    assert redact(text, spans) == "a = [REDACTED:github-pat] and [REDACTED:stripe-key]\n"
    assert redact(text, ()) is text


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_multi_line_credential_keeps_every_line(planted: Planted, newline: str) -> None:
    """get_file_contents counts lines with bytes.splitlines (\\n, \\r\\n and a lone \\r): every one is kept."""
    key_lines = planted["private_key"].value.splitlines()
    lines = ["first", *key_lines, "last"]
    text = newline.join(lines) + newline
    start = text.index("-----BEGIN")
    end = text.index("KEY-----", text.index("-----END")) + len("KEY-----")
    masked = redact(text, [SecretSpan(start, end, "private-key")])
    assert masked.encode().splitlines() == [
        b"first",
        *[b"[REDACTED:private-key]"] * len(key_lines),
        b"last",
    ]
    # The line numbers a slice reports are those of the original file.
    piece = slice_text(masked.encode(), complete=True, start_line=len(lines), end_line=None, max_bytes=10_000)
    assert (piece.start_line, piece.text, piece.total_lines) == (len(lines), "last" + newline, len(lines))


def test_indentation_of_masked_lines_is_kept() -> None:
    text = "key: |\n  AAAA\n  BBBB\nnext: 1\n"
    start, end = text.index("AAAA"), text.index("BBBB") + 4
    assert redact(text, [SecretSpan(start, end, "private-key")]) == (
        "key: |\n  [REDACTED:private-key]\n  [REDACTED:private-key]\nnext: 1\n"
    )


def test_findings_name_kind_and_starting_line() -> None:
    text = "one\ntwo TOKEN\nthree\nBEGIN\nbody\nEND\n"
    spans = (SecretSpan(8, 13, "github-pat"), SecretSpan(text.index("BEGIN"), text.index("END") + 3, "private-key"))
    assert findings_in(text, spans) == [Finding("github-pat", 2), Finding("private-key", 4, 6)]


def test_windows_mask_what_they_show_of_a_cut_credential() -> None:
    line = "prefix SECRETVALUE middle OTHERSECRET suffix"
    spans = [SecretSpan(7, 18, "github-pat"), SecretSpan(26, 37, "jwt")]
    assert redact_window(line, spans, 0, len(line)) == "prefix [REDACTED:github-pat] middle [REDACTED:jwt] suffix"
    assert redact_window(line, spans, 10, 30) == "[REDACTED:github-pat] middle [REDACTED:jwt]"
    assert redact_window(line, spans, 19, 25) == "middle"


def test_cut_safe_end_drops_the_token_a_cut_fell_into() -> None:
    assert cut_safe_end("alpha beta ghp_abc") == len("alpha beta ")
    assert cut_safe_end('key = "xoxb-12') == len('key = "')
    assert cut_safe_end("url=postgres://u:pa") == 0  # one token from the start: nothing of it is safe
    text = "value: postgres://user:passw"
    assert text[: cut_safe_end(text)] == "value: "
    assert cut_safe_end("ends with a space ") == len("ends with a space ")
    endless = "x" * 10_000
    assert cut_safe_end(endless) == 10_000 - 4096  # no delimiter in the look-back window: drop the whole window


def test_mask_cut_edges() -> None:
    assert mask_cut_edges("…abcdefghij rest of line", cut_before=True, cut_after=False) == (
        "…[REDACTED:cut-token] rest of line"
    )
    assert mask_cut_edges("start of line tokenABCDEFGH…", cut_before=False, cut_after=True) == (
        "start of line [REDACTED:cut-token]…"
    )
    assert mask_cut_edges("abcdefghijkl", cut_before=True, cut_after=True) == "[REDACTED:cut-token]"
    assert mask_cut_edges("…ab rest xy…", cut_before=True, cut_after=True) == "…ab rest xy…"  # short runs stay


def test_line_view_gives_each_line_with_its_spans(planted: Planted) -> None:
    token = planted["github_pat"].value
    key = planted["private_key"].value
    text = f"first\r\nsecond {token} end\r\n{key}\nlast"
    view = LineView(text, merge_spans(find_secrets(text)))
    assert view.line_count == 4 + len(key.splitlines()) - 1
    assert view.line(1) == ("first", [])
    second, spans = view.line(2)
    assert second == f"second {token} end"
    assert [second[span.start : span.end] for span in spans] == [token]
    begin, spans = view.line(3)
    assert begin == "-----BEGIN RSA PRIVATE KEY-----"
    assert [(span.start, span.end, span.kind) for span in spans] == [(0, len(begin), "private-key")]
    body, spans = view.line(5)
    assert [(span.start, span.end) for span in spans] == [(0, len(body))]
    assert view.line(view.line_count) == ("last", [])
    assert [finding.kind for finding in view.findings()] == ["github-pat", "private-key"]
    with pytest.raises(IndexError):
        view.line(view.line_count + 1)
