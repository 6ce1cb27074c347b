"""Credentials in unified-diff hunks (the `patch` of get_commit and compare_refs), found diff-aware.

A patch is not a file: each line carries a `+`, `-` or space prefix, removed and added lines interleave, and the
`@@ ... @@` header may end with a line of the old file (git's function context). So the hunks are scanned three
ways and the findings united: as they are (a one-line credential anywhere, the header text included), and as the
reconstructed new and old sides with the prefixes removed (a PEM block whose lines each start with `+` reads as
one block again). Hits on the sides are mapped back to patch positions. Masking never touches a prefix or the
`@@ -a,b +c,d @@` part, so the patch stays a valid diff with true line numbers.

A hunk can show part of a private key without its BEGIN or END line (three lines of context around one changed
line in a key's body). `needs_whole_files` says when that may be so; the caller then scans the two whole files
and passes their `LineView`s, whose findings are mapped onto the hunks' lines by line number.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bastion.guard.patterns import is_key_material, key_material_spans
from bastion.guard.redact import LineView, redact
from bastion.guard.secrets import find_secrets
from bastion.guard.spans import SecretSpan, merge_spans

__all__ = [
    "GuardedPatch",
    "ParsedPatch",
    "PatchFinding",
    "Side",
    "fallback_spans",
    "file_spans",
    "guard_patch",
    "intrinsic_spans",
    "needs_whole_files",
]

Side = Literal["new", "old"]
_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@ ?")


@dataclass(frozen=True, slots=True)
class PatchFinding:
    """A masked credential: its kind and line in the file (the new file for added and context lines, the old
    file for removed lines and hunk headers)."""

    kind: str
    line: int
    side: Side


@dataclass(frozen=True, slots=True)
class GuardedPatch:
    text: str
    findings: tuple[PatchFinding, ...]


class ParsedPatch:
    """The lines of a patch with, for each, where the file's text starts in it and its old/new line numbers."""

    def __init__(self, patch: str) -> None:
        self.text = patch
        self.lines = patch.split("\n")
        self.starts: list[int] = []
        self.content: list[int] = []  # offset in the line where file text starts (never masked before it)
        self.old: list[int | None] = []
        self.new: list[int | None] = []
        position, old_number, new_number = 0, 0, 0
        for line in self.lines:
            self.starts.append(position)
            position += len(line) + 1
            prefix = line[:1]
            header = _HUNK.match(line) if prefix == "@" else None
            if header is not None:
                old_number, new_number = int(header.group(1)), int(header.group(2))
                self._add(header.end(), old_number, None)  # the function-context text belongs to the old file
            elif prefix == " ":
                self._add(1, old_number, new_number)
                old_number, new_number = old_number + 1, new_number + 1
            elif prefix == "+":
                self._add(1, None, new_number)
                new_number += 1
            elif prefix == "-":
                self._add(1, old_number, None)
                old_number += 1
            else:  # "\ No newline at end of file", the empty string after the last line break
                self._add(len(line), None, None)

    def _add(self, content: int, old: int | None, new: int | None) -> None:
        self.content.append(content)
        self.old.append(old)
        self.new.append(new)

    def is_body(self, index: int) -> bool:
        return self.lines[index][:1] in (" ", "+", "-")

    def heading(self, index: int) -> str:
        """The function-context text of a hunk header line ("" for other lines)."""
        line = self.lines[index]
        return line[self.content[index] :] if line.startswith("@@") else ""

    def side(self, side: Side) -> tuple[str, list[int]]:
        """The reconstructed side (prefixes removed) and, for each of its lines, the patch line it came from."""
        numbers = self.new if side == "new" else self.old
        indices = [index for index in range(len(self.lines)) if numbers[index] is not None and self.is_body(index)]
        return "\n".join(self.lines[index][1:] for index in indices), indices

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1


def needs_whole_files(patch: str) -> bool:
    """True when the hunks may show part of a private key: a BEGIN/END line, or a line of key material (also as
    a hunk header's function context: git picks the last line before the hunk that starts with a letter, and
    inside a key that is a line of its body)."""
    if "PRIVATE KEY" in patch:
        return True
    for line in patch.split("\n"):
        if len(line) > 40 and is_key_material(line.rsplit("@@ ", 1)[-1] if line.startswith("@@") else line[1:]):
            return True
    return False


def _from_side(parsed: ParsedPatch, indices: list[int], spans: Sequence[SecretSpan]) -> list[SecretSpan]:
    """Spans found in a reconstructed side, moved to where those characters are in the patch."""
    side_starts = [0]
    for index in indices[:-1]:
        side_starts.append(side_starts[-1] + len(parsed.lines[index]))  # the line without its prefix, plus \n

    def to_patch(offset: int) -> int:
        row = bisect.bisect_right(side_starts, offset) - 1
        return parsed.starts[indices[row]] + 1 + (offset - side_starts[row])

    return [SecretSpan(to_patch(span.start), to_patch(span.end - 1) + 1, span.kind) for span in spans]


def intrinsic_spans(parsed: ParsedPatch) -> tuple[SecretSpan, ...]:
    """What the hunks alone show (as they are, and as the two reconstructed sides), in patch coordinates."""
    spans = list(find_secrets(parsed.text))
    for side in ("new", "old"):
        side_text, indices = parsed.side(side)
        if indices:
            spans.extend(_from_side(parsed, indices, find_secrets(side_text)))
    return merge_spans(spans)


def file_spans(parsed: ParsedPatch, side: Side, view: LineView) -> list[SecretSpan] | None:
    """The whole file's findings on the lines the hunks show; None when a hunk line is not the file's line (the
    file read is not the one the patch was made from)."""
    numbers = parsed.new if side == "new" else parsed.old
    spans: list[SecretSpan] = []
    for index, number in enumerate(numbers):
        if number is None or not parsed.is_body(index):
            continue
        if number > view.line_count:
            return None
        text, on_line = view.line(number)
        shown = parsed.lines[index][1:]
        if shown.removesuffix("\r") != text:
            return None
        base = parsed.starts[index] + 1
        spans.extend(SecretSpan(base + span.start, base + span.end, span.kind) for span in on_line)
    if side == "old":
        spans.extend(_heading_spans(parsed, view))
    return spans


def _heading_spans(parsed: ParsedPatch, view: LineView) -> list[SecretSpan]:
    """Findings on the old-file line that git showed (cut to 80 bytes) as each hunk's function context: the
    nearest line above the hunk that starts with the heading text."""
    spans: list[SecretSpan] = []
    for index, number in enumerate(parsed.old):
        heading = parsed.heading(index)
        if number is None or not heading:
            continue
        for candidate in range(min(number - 1, view.line_count), 0, -1):
            text, on_line = view.line(candidate)
            if text.startswith(heading):
                base = parsed.starts[index] + parsed.content[index]
                spans.extend(
                    SecretSpan(base + span.start, base + min(span.end, len(heading)), span.kind)
                    for span in on_line
                    if span.start < len(heading)
                )
                break
    return spans


def fallback_spans(parsed: ParsedPatch) -> list[SecretSpan]:
    """Lines of key material, masked whole: when the hunks may show part of a key and the files could not be read."""
    spans = [
        SecretSpan(span.start + 1, span.end, span.kind)
        for span in key_material_spans(parsed.text)
        if parsed.is_body(parsed.line_of(span.start))
    ]
    for index in range(len(parsed.lines)):
        heading = parsed.heading(index)
        if heading and is_key_material(heading):
            start = parsed.starts[index] + parsed.content[index]
            spans.append(SecretSpan(start, start + len(heading), "private-key"))
    return spans


def _pieces(parsed: ParsedPatch, spans: Sequence[SecretSpan]) -> list[SecretSpan]:
    """Spans cut at line ends, and clipped so no prefix or `@@` header is ever masked."""
    pieces: list[SecretSpan] = []
    for span in spans:
        for index in range(parsed.line_of(span.start), parsed.line_of(max(span.end - 1, span.start)) + 1):
            line_start = parsed.starts[index]
            start = max(span.start, line_start + parsed.content[index])
            end = min(span.end, line_start + len(parsed.lines[index]))
            if start < end:
                pieces.append(SecretSpan(start, end, span.kind))
    return pieces


def _findings(parsed: ParsedPatch, pieces: Sequence[SecretSpan]) -> list[PatchFinding]:
    """One finding per credential: a piece that continues the previous line's piece (a PEM block) is the same one."""
    found: list[PatchFinding] = []
    previous: SecretSpan | None = None
    for piece in pieces:
        index = parsed.line_of(piece.start)
        continues = (
            previous is not None
            and previous.kind == piece.kind
            and parsed.line_of(previous.start) == index - 1
            and previous.end == parsed.starts[index - 1] + len(parsed.lines[index - 1])
            and piece.start == parsed.starts[index] + parsed.content[index]
        )
        previous = piece
        if continues:
            continue
        new, old = parsed.new[index], parsed.old[index]
        if new is not None:
            found.append(PatchFinding(piece.kind, new, "new"))
        elif old is not None:
            found.append(PatchFinding(piece.kind, old, "old"))
    return found


def guard_patch(parsed: ParsedPatch, spans: Sequence[SecretSpan]) -> GuardedPatch:
    """The patch with every span masked (prefixes and hunk headers kept) and what was found where."""
    pieces = merge_spans(_pieces(parsed, merge_spans(spans)))
    return GuardedPatch(redact(parsed.text, pieces), tuple(_findings(parsed, pieces)))
