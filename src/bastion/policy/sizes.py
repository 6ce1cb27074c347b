"""File sizes as people write them in YAML (`512KiB`, `1.5MB`) and as denial reasons print them."""

from __future__ import annotations

import math
import re

__all__ = ["format_size", "format_size_pair", "parse_size"]

# Decimal and binary units both exist in the wild; accepting both (case-insensitively) and nothing else keeps
# `1M` (which one?) an error instead of a guess.
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z]*)")


def parse_size(value: object) -> int:
    """Bytes from an int or a string like `512KiB`, `1MiB`, `1.5MB`, `2048`. Raises ValueError with a message
    naming the accepted forms. Fractions round down to whole bytes; the result is always positive."""
    size: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):  # YAML `yes` is a bool, and bool is an int
        size = value
    elif isinstance(value, float):
        if not math.isfinite(value):  # YAML's .inf and .nan
            raise ValueError(f"a size must be a finite number of bytes, got {value!r}")
        size = int(value)
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        unit = (match.group("unit") if match else "").lower() or "b"
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"'{value}' is not a size: write bytes (1048576) or a number with a unit "
                "(B, KB, MB, GB = powers of 1000; KiB, MiB, GiB = powers of 1024), e.g. '512KiB', '1.5MB'"
            )
        size = int(float(match.group("number")) * _UNITS[unit])
    if size is None:
        raise ValueError(f"expected a size such as 1048576 or '1MiB', got {value!r}")
    if size <= 0:
        raise ValueError(f"a size must be more than 0 bytes, got {value!r}")
    return size


def format_size(size: int) -> str:
    """Binary units with one decimal (`2.0 MiB`), plain bytes below 1 KiB."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def format_size_pair(size: int, limit: int) -> tuple[str, str]:
    """Both sizes for a message; exact bytes when rounding would print them the same (`1.4 MiB, over 1.4 MiB`)."""
    shown_size, shown_limit = format_size(size), format_size(limit)
    if shown_size == shown_limit or limit < 1024:
        return f"{size:,} bytes", f"{limit:,}-byte"
    return shown_size, shown_limit
