"""Replacing credentials with `[REDACTED:<kind>]` markers without changing a text's line structure.

A credential on one line becomes one marker. A credential over several lines (a PEM block) becomes one marker per
line, each line break kept, so line numbers in an answer stay true (`start_line`/`end_line`, search hits, patch
hunk headers). Texts here are whole files, windows of one line (search hits) and unified-diff hunks.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.guard.spans import SecretSpan, marker

__all__ = ["Finding", "LineView", "cut_safe_end", "findings_in", "mask_cut_edges", "redact", "redact_window"]

# Everything that ends a line for some reader: bytes.splitlines (what get_file_contents counts) splits at \r too,
# str.splitlines at these others. A marker never replaces one of them.
_BREAKS = re.compile("(\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])")
# Characters that end a token: what is left of a credential cut off by a budget sits between one of these and
# the cut. (`=`, `:`, `/`, `@` and `.` stay inside tokens: base64 padding, URLs with passwords, JWTs.)
_DELIMITERS = frozenset(" \t\r\n\x0b\x0c\"'`,;()[]{}<>|\\")
_CUT_TOKEN_CHARS = 8  # a run this long at a cut edge could be part of a credential
_CUT_WINDOW = 4096  # how far back from a cut a token is looked for; a longer run is dropped whole


@dataclass(frozen=True, slots=True)
class Finding:
    """Where a credential was masked: its kind and the 1-based lines it starts and ends on. Never the value."""

    kind: str
    line: int
    end_line: int = 0  # 0: the same as `line`

    @property
    def last_line(self) -> int:
        return self.end_line or self.line


def _masked(segment: str, kind: str) -> str:
    """`segment` replaced by one marker per line it covers, keeping every line break (and each line's indent)."""
    if _BREAKS.search(segment) is None:
        return marker(kind)
    pieces: list[str] = []
    for index, part in enumerate(_BREAKS.split(segment)):
        if index % 2:
            pieces.append(part)  # a line break
        elif part:
            body = part.lstrip(" \t")
            pieces.append(part[: len(part) - len(body)] + marker(kind) if body else part)
    return "".join(pieces)


def redact(text: str, spans: Sequence[SecretSpan]) -> str:
    """`text` with each span (sorted, non-overlapping) replaced by its marker(s)."""
    if not spans:
        return text
    pieces: list[str] = []
    position = 0
    for span in spans:
        pieces.append(text[position : span.start])
        pieces.append(_masked(text[span.start : span.end], span.kind))
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces)


def findings_in(text: str, spans: Sequence[SecretSpan]) -> list[Finding]:
    """One finding per span, with the lines (counted at \\n) it starts and ends on."""
    found: list[Finding] = []
    line, position = 1, 0
    for span in spans:
        line += text.count("\n", position, span.start)
        position = span.start
        extra = text.count("\n", span.start, span.end)
        found.append(Finding(span.kind, line, line + extra if extra else 0))
    return found


def redact_window(line: str, spans: Sequence[SecretSpan], begin: int, end: int) -> str:
    """`line[begin:end]` with the spans (in `line`'s coordinates) masked; a credential the window cuts is masked
    where it shows."""
    pieces: list[str] = []
    position = begin
    for span in spans:
        start, stop = max(span.start, begin), min(span.end, end)
        if start >= stop:
            continue
        pieces.append(line[position:start])
        pieces.append(_masked(line[start:stop], span.kind))
        position = stop
    pieces.append(line[position:end])
    return "".join(pieces)


def cut_safe_end(text: str) -> int:
    """Where a text that was cut off (a budgeted read) can safely end: before the token the cut fell into. A token
    longer than the look-back window is dropped whole."""
    window_start = max(0, len(text) - _CUT_WINDOW)
    for position in range(len(text) - 1, window_start - 1, -1):
        if text[position] in _DELIMITERS:
            return position + 1
    return window_start


def mask_cut_edges(line: str, *, cut_before: bool, cut_after: bool) -> str:
    """Mask a token of `_CUT_TOKEN_CHARS` or more that touches a cut edge of `line` (where a clip or budget cut
    it, so no scanner could recognise it): the fallback when the whole text was not available to scan. A `…` that
    marks the cut stays."""
    lead = "…" if cut_before and line.startswith("…") else ""
    trail = "…" if cut_after and line.endswith("…") else ""
    body = line[len(lead) : len(line) - len(trail)]
    if cut_after:
        start = len(body)
        while start > 0 and body[start - 1] not in _DELIMITERS:
            start -= 1
        if len(body) - start >= _CUT_TOKEN_CHARS:
            body = body[:start] + marker("cut-token")
    if cut_before:
        end = 0
        while end < len(body) and body[end] not in _DELIMITERS:
            end += 1
        if end >= _CUT_TOKEN_CHARS and not body.startswith(marker("cut-token")):
            body = marker("cut-token") + body[end:]
    return lead + body + trail


class LineView:
    """A scanned text seen line by line (lines end at \\n, as ripgrep and git grep count them): the text of line
    `n` without its line break (and without a trailing \\r), and the spans on it in that line's coordinates."""

    def __init__(self, text: str, spans: Sequence[SecretSpan]) -> None:
        self.text = text
        self.spans = tuple(spans)
        self._starts: list[int] | None = None

    @property
    def starts(self) -> list[int]:
        if self._starts is None:
            starts = [0]
            position = self.text.find("\n")
            while position >= 0:
                starts.append(position + 1)
                position = self.text.find("\n", position + 1)
            self._starts = starts
        return self._starts

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def raw_line(self, number: int) -> str:
        """Line `number` as the file has it, a trailing \r included (what a search engine matches against)."""
        starts = self.starts
        end = starts[number] - 1 if number < len(starts) else len(self.text)
        return self.text[starts[number - 1] : end]

    def line(self, number: int) -> tuple[str, list[SecretSpan]]:
        starts = self.starts
        if number < 1 or number > len(starts):
            raise IndexError(f"line {number} is not in the text ({len(starts)} lines)")
        start = starts[number - 1]
        end = starts[number] - 1 if number < len(starts) else len(self.text)
        if end > start and self.text[end - 1] == "\r":
            end -= 1
        spans: list[SecretSpan] = []
        first = bisect.bisect_right(self.spans, start, key=lambda span: span.end)
        for span in self.spans[first:]:
            if span.start >= end:
                break
            clipped_start, clipped_end = max(span.start, start), min(span.end, end)
            if clipped_start < clipped_end:
                spans.append(SecretSpan(clipped_start - start, clipped_end - start, span.kind))
        return self.text[start:end], spans

    def findings(self) -> list[Finding]:
        return findings_in(self.text, self.spans)
