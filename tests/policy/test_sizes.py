"""Sizes as written in the policy file and as shown in denial reasons."""

from __future__ import annotations

import pytest

from bastion.policy.sizes import format_size, format_size_pair, parse_size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2048, 2048),
        ("2048", 2048),
        ("512KiB", 512 * 1024),
        ("1MiB", 1024 * 1024),
        ("1 MiB", 1024 * 1024),
        ("1.5MB", 1_500_000),
        ("2GB", 2_000_000_000),
        ("1GiB", 1024**3),
        ("10kb", 10_000),
        ("100B", 100),
        (1.9, 1),
        ("1.5KiB", 1536),
    ],
)
def test_parse_size(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1M", "'1M' is not a size"),
        ("lots", "'lots' is not a size"),
        ("-5", "'-5' is not a size"),
        (0, "more than 0 bytes"),
        ("0KiB", "more than 0 bytes"),
        (True, "got True"),
        (None, "got None"),
        ([1], r"got \[1\]"),
    ],
)
def test_parse_size_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_size(value)


def test_format_size() -> None:
    assert format_size(512) == "512 bytes"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(2 * 1024 * 1024) == "2.0 MiB"
    assert format_size(3 * 1024**3) == "3.0 GiB"


def test_format_size_pair_falls_back_to_bytes_when_rounding_hides_the_difference() -> None:
    assert format_size_pair(2 * 1024 * 1024, 1024 * 1024) == ("2.0 MiB", "1.0 MiB")
    assert format_size_pair(1_500_001, 1_500_000) == ("1,500,001 bytes", "1,500,000-byte")
    assert format_size_pair(2048, 100) == ("2,048 bytes", "100-byte")
