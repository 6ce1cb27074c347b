"""Content guard: binary sniffing and naming, UTF-8-safe truncation, line slices within a byte budget."""

from __future__ import annotations

import pytest

from bastion.errors import InvalidInput
from bastion.guard.content import TextSlice, describe_binary, detect_binary, slice_text, truncate_utf8

# -- detect_binary -------------------------------------------------------------------------------------------


def test_plain_and_utf8_text_is_not_binary() -> None:
    assert detect_binary(b"") is False
    assert detect_binary(b"def main():\n    return 1\n") is False
    assert detect_binary("naïve café ☕ 😀\n".encode()) is False


def test_a_nul_byte_in_the_first_8000_bytes_means_binary() -> None:
    assert detect_binary(b"\x00") is True
    assert detect_binary(b"a" * 7999 + b"\x00") is True  # the 8000th byte is still sniffed


def test_a_nul_byte_after_the_first_8000_bytes_is_not_looked_at() -> None:
    # git's heuristic: only the start of the file is sniffed, so a late NUL does not make text binary.
    assert detect_binary(b"a" * 8000 + b"\x00") is False


def test_utf16_text_counts_as_binary() -> None:
    assert detect_binary("hello".encode("utf-16-le")) is True


# -- describe_binary -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG image"),
        (b"GIF89a\x01\x00\x01\x00", "GIF image"),
        (b"GIF87a\x01\x00", "GIF image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF document"),
        (b"PK\x03\x04\x14\x00\x00\x00", "ZIP archive (also jar/docx/xlsx)"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip archive"),
        (b"\x7fELF\x02\x01\x01\x00", "ELF executable"),
        (b"MZ\x90\x00\x03\x00", "Windows executable"),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x34", "Mach-O or Java class file"),
        (b"SQLite format 3\x00\x10\x00", "SQLite database"),
        (b"\x00asm\x01\x00\x00\x00", "WebAssembly module"),
        (b"\x00\x01\x02\x03", "binary data"),
        (b"", "binary data"),
    ],
)
def test_describe_binary_names_the_format_from_its_magic_bytes(data: bytes, expected: str) -> None:
    assert describe_binary(data) == expected


def test_describe_binary_needs_the_whole_signature() -> None:
    assert describe_binary(b"\x89PNG\r\n") == "binary data"  # a PNG signature cut short
    assert describe_binary(b"SQLite format 2\x00") == "binary data"
    assert describe_binary(b"xPK\x03\x04") == "binary data"  # the magic must be at the start


def test_describe_binary_never_repeats_the_content() -> None:
    secret = b"\x00\x01sk_live_abcdef0123456789"
    assert describe_binary(secret) == "binary data"
    assert "sk_live" not in describe_binary(b"PK\x03\x04" + secret)


# -- truncate_utf8 -------------------------------------------------------------------------------------------


def _char_boundaries(text: str) -> list[int]:
    """Byte offsets at which `text`'s UTF-8 encoding may be cut without splitting a character."""
    offsets = [0]
    for char in text:
        offsets.append(offsets[-1] + len(char.encode()))
    return offsets


@pytest.mark.parametrize(
    "text",
    [
        "aé" * 4,  # 2-byte characters
        "x€€€y€",  # 3-byte characters
        "😀a😀😀",  # 4-byte characters
        "é€😀aé😀€",  # all widths next to each other
        "𝄞",  # a lone 4-byte character: every cut inside it leaves nothing
    ],
)
def test_truncate_utf8_never_splits_a_character_at_any_cut(text: str) -> None:
    data = text.encode()
    boundaries = _char_boundaries(text)
    for limit in range(len(data) + 2):
        cut = truncate_utf8(data, limit)
        expected = max(b for b in boundaries if b <= limit)
        assert cut == data[:expected], f"limit {limit}"
        cut.decode("utf-8")  # strict: raises if a character was split


def test_truncate_utf8_returns_short_data_unchanged() -> None:
    data = "€uro".encode()
    assert truncate_utf8(data, len(data)) is data
    assert truncate_utf8(data, 100) is data
    assert truncate_utf8(b"", 0) == b""


def test_truncate_utf8_steps_back_at_most_one_character_in_text_that_is_not_utf8() -> None:
    # Latin-1 text: 0xA0 (no-break space) and 0xB0 (degree sign) look like UTF-8 continuation bytes. A UTF-8
    # character has at most three of those, so stepping back further would only throw away the caller's budget.
    data = b"temp " + b"\xb0\xa0" * 50
    cut = truncate_utf8(data, 60)
    assert 57 <= len(cut) <= 60
    assert data.startswith(cut)


# -- slice_text ----------------------------------------------------------------------------------------------

FIVE_LINES = b"one\ntwo\nthree\nfour\nfive\n"


def _slice(
    data: bytes,
    start: int | None = None,
    end: int | None = None,
    *,
    complete: bool = True,
    max_bytes: int = 1_000_000,
) -> TextSlice:
    return slice_text(data, complete=complete, start_line=start, end_line=end, max_bytes=max_bytes)


def test_the_whole_file_when_no_range_is_given() -> None:
    piece = _slice(FIVE_LINES)
    assert piece == TextSlice(
        text="one\ntwo\nthree\nfour\nfive\n",
        start_line=1,
        end_line=5,
        total_lines=5,
        truncated=False,
        returned_bytes=len(FIVE_LINES),
    )


def test_a_middle_range_is_inclusive_on_both_ends() -> None:
    piece = _slice(FIVE_LINES, 2, 4)
    assert (piece.text, piece.start_line, piece.end_line, piece.total_lines) == ("two\nthree\nfour\n", 2, 4, 5)
    assert piece.truncated is False
    assert piece.returned_bytes == len(b"two\nthree\nfour\n")


def test_the_first_line_alone() -> None:
    piece = _slice(FIVE_LINES, 1, 1)
    assert (piece.text, piece.start_line, piece.end_line) == ("one\n", 1, 1)


def test_the_last_line_alone_and_from_a_start_to_the_end() -> None:
    assert (_slice(FIVE_LINES, 5, 5).text, _slice(FIVE_LINES, 5, 5).end_line) == ("five\n", 5)
    piece = _slice(FIVE_LINES, 4)
    assert (piece.text, piece.start_line, piece.end_line) == ("four\nfive\n", 4, 5)


def test_only_an_end_line_starts_at_line_one() -> None:
    piece = _slice(FIVE_LINES, None, 2)
    assert (piece.text, piece.start_line, piece.end_line) == ("one\ntwo\n", 1, 2)


def test_an_end_line_past_the_end_stops_at_the_last_line() -> None:
    piece = _slice(FIVE_LINES, 3, 99)
    assert (piece.text, piece.end_line, piece.total_lines, piece.truncated) == ("three\nfour\nfive\n", 5, 5, False)


def test_end_before_start_is_refused_with_both_numbers() -> None:
    with pytest.raises(InvalidInput, match=r"^end_line \(2\) is before start_line \(3\)$"):
        _slice(FIVE_LINES, 3, 2)


def test_a_start_past_the_end_names_the_line_count() -> None:
    with pytest.raises(InvalidInput) as caught:
        _slice(FIVE_LINES, 6)
    assert caught.value.message == "start_line 6 is past the end (the file has 5 lines)"


def test_a_start_past_what_was_read_of_an_incomplete_file_says_so() -> None:
    with pytest.raises(InvalidInput) as caught:
        _slice(b"one\ntwo\n", 3, complete=False)
    assert caught.value.message == "start_line 3 is past the end (the first 2 lines were read)"


def test_an_empty_file_has_no_lines_but_can_be_read() -> None:
    piece = _slice(b"")
    assert (piece.text, piece.start_line, piece.end_line, piece.total_lines, piece.truncated) == ("", 1, 0, 0, False)
    with pytest.raises(InvalidInput, match="start_line 2 is past the end"):
        _slice(b"", 2)


def test_a_file_without_a_trailing_newline_keeps_its_last_line() -> None:
    data = b"alpha\nbeta\ngamma"
    piece = _slice(data)
    assert (piece.text, piece.end_line, piece.total_lines) == ("alpha\nbeta\ngamma", 3, 3)
    last = _slice(data, 3, 3)
    assert (last.text, last.start_line, last.end_line) == ("gamma", 3, 3)


def test_crlf_line_endings_are_one_line_break_and_are_kept() -> None:
    data = b"one\r\ntwo\r\nthree\r\n"
    piece = _slice(data, 2, 3)
    assert (piece.text, piece.start_line, piece.end_line, piece.total_lines) == ("two\r\nthree\r\n", 2, 3, 3)


def test_max_bytes_truncates_and_end_line_names_the_last_line_shown() -> None:
    # "one\ntwo\nthr" is 11 bytes: lines 1 and 2 whole, line 3 cut.
    piece = _slice(FIVE_LINES, max_bytes=11)
    assert (piece.text, piece.start_line, piece.end_line, piece.truncated) == ("one\ntwo\nthr", 1, 3, True)
    assert piece.returned_bytes == 11
    assert piece.total_lines == 5  # the file was complete; only the answer was cut


def test_max_bytes_ending_exactly_after_a_newline_does_not_count_the_next_line() -> None:
    piece = _slice(FIVE_LINES, 2, 5, max_bytes=len(b"two\nthree\n"))
    assert (piece.text, piece.start_line, piece.end_line, piece.truncated) == ("two\nthree\n", 2, 3, True)


def test_max_bytes_on_a_crlf_file() -> None:
    data = b"one\r\ntwo\r\nthree\r\n"
    piece = _slice(data, max_bytes=len(b"one\r\ntwo\r\n"))
    assert (piece.text, piece.end_line, piece.truncated) == ("one\r\ntwo\r\n", 2, True)
    cut_in_line_break = _slice(data, max_bytes=len(b"one\r"))
    assert (cut_in_line_break.text, cut_in_line_break.end_line) == ("one\r", 1)


def test_max_bytes_on_a_file_with_old_mac_line_endings() -> None:
    data = b"one\rtwo\rthree\r"
    assert _slice(data).total_lines == 3
    piece = _slice(data, max_bytes=len(b"one\rtwo\r"))
    assert (piece.text, piece.start_line, piece.end_line, piece.truncated) == ("one\rtwo\r", 1, 2, True)


def test_max_bytes_never_splits_a_multibyte_character() -> None:
    data = "ab€\nnext\n".encode()  # the euro sign is bytes 2..4
    piece = _slice(data, max_bytes=4)
    assert (piece.text, piece.returned_bytes, piece.end_line, piece.truncated) == ("ab", 2, 1, True)
    assert "\ufffd" not in piece.text


def test_a_budget_smaller_than_the_first_character_returns_nothing_and_says_truncated() -> None:
    piece = _slice("😀\n".encode(), max_bytes=3)
    assert (piece.text, piece.returned_bytes, piece.truncated) == ("", 0, True)
    assert piece.end_line == piece.start_line - 1  # an empty range: no line was shown


def test_an_incomplete_read_is_truncated_when_the_slice_reaches_its_end() -> None:
    data = b"one\ntwo\nthr"  # the first bytes of a longer file
    piece = _slice(data, complete=False)
    assert (piece.text, piece.end_line, piece.total_lines, piece.truncated) == ("one\ntwo\nthr", 3, None, True)


def test_an_incomplete_read_is_not_truncated_when_the_range_ends_before_what_was_read() -> None:
    piece = _slice(b"one\ntwo\nthr", 1, 2, complete=False)
    assert (piece.text, piece.end_line, piece.total_lines, piece.truncated) == ("one\ntwo\n", 2, None, False)


def test_invalid_utf8_is_replaced_not_raised() -> None:
    piece = _slice(b"caf\xe9\n")
    assert piece.text == "caf\ufffd\n"
    assert piece.returned_bytes == 5
