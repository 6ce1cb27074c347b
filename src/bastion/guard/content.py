"""Turning repository bytes into text a model may read: binary detection, decoding, line ranges, budgets."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.errors import InvalidInput

__all__ = ["TextSlice", "describe_binary", "detect_binary", "slice_text", "truncate_utf8"]

# Same heuristic as git: a NUL byte in the first 8000 bytes means binary.
_SNIFF_BYTES = 8000
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "ZIP archive (also jar/docx/xlsx)"),
    (b"\x1f\x8b", "gzip archive"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"\xca\xfe\xba\xbe", "Mach-O or Java class file"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"\x00asm", "WebAssembly module"),
)


def detect_binary(data: bytes) -> bool:
    return b"\x00" in data[:_SNIFF_BYTES]


def describe_binary(data: bytes) -> str:
    """A human description of binary content from its magic bytes; never any of the bytes themselves."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    return "binary data"


def truncate_utf8(data: bytes, limit: int) -> bytes:
    """At most `limit` bytes, cut back to a character boundary so decoding never ends in a broken character."""
    if len(data) <= limit:
        return data
    cut = limit
    # Step back over UTF-8 continuation bytes (10xxxxxx) to the start of the character the limit falls in. A
    # character has at most three of them; a longer run is not UTF-8 (Latin-1 text, say), where stepping further
    # would only throw away budget.
    while cut > max(limit - 3, 0) and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut] if (data[cut] & 0xC0) != 0x80 else data[:limit]


@dataclass(frozen=True, slots=True)
class TextSlice:
    text: str
    start_line: int
    end_line: int
    total_lines: int | None  # None when the file was not read to its end
    truncated: bool
    returned_bytes: int


def _line_count(data: bytes) -> int:
    """`len(data.splitlines())` without building the lines (they end at \\n, \\r\\n or a lone \\r)."""
    if b"\r" in data:
        return len(data.splitlines())
    unterminated = 1 if data and not data.endswith(b"\n") else 0
    return data.count(b"\n") + unterminated


def slice_text(
    data: bytes, *, complete: bool, start_line: int | None, end_line: int | None, max_bytes: int
) -> TextSlice:
    """Lines `start_line..end_line` (1-based, inclusive) of `data`, within `max_bytes`.

    `complete` says whether `data` is the whole file; when it is not, the slice is marked truncated if it
    reaches the end of what was read, and the total line count is unknown.
    """
    if start_line is not None and end_line is not None and end_line < start_line:
        raise InvalidInput(f"end_line ({end_line}) is before start_line ({start_line})")
    if (start_line or 1) == 1 and end_line is None and len(data) <= max_bytes:
        # The usual call (all of it, within budget) gives the same answer as the general path below without
        # splitting the text into lines: ~15 µs instead of ~40 µs for 10 KB, on every read.
        count = _line_count(data)
        return TextSlice(
            text=data.decode("utf-8", errors="replace"),
            start_line=1,
            end_line=count,
            total_lines=count if complete else None,
            truncated=not complete,
            returned_bytes=len(data),
        )
    lines = data.splitlines(keepends=True)
    total = len(lines) if complete else None
    first = (start_line or 1) - 1
    if first >= len(lines) and (first > 0 or lines):
        where = f"the file has {len(lines)} lines" if complete else f"the first {len(lines)} lines were read"
        raise InvalidInput(f"start_line {first + 1} is past the end ({where})")
    last = len(lines) if end_line is None else min(end_line, len(lines))
    chosen = b"".join(lines[first:last])
    truncated = not complete and last == len(lines)
    if len(chosen) > max_bytes:
        chosen = truncate_utf8(chosen, max_bytes)
        truncated = True
        # Counted the way `lines` was split (\n, \r\n and a lone \r), a partly shown last line included.
        last = first + len(chosen.splitlines())
    text = chosen.decode("utf-8", errors="replace")
    return TextSlice(
        text=text,
        start_line=first + 1,
        end_line=max(last, first),
        total_lines=total,
        truncated=truncated,
        returned_bytes=len(chosen),
    )
