"""Where a credential is in a text, and how overlapping findings from the two scanners become one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["GENERIC_KINDS", "SecretSpan", "is_word_char", "marker", "merge_spans"]

# Kinds that say "something secret" without saying what: when one overlaps a specific kind, the specific one
# names the merged span.
GENERIC_KINDS = frozenset({"generic-secret", "url-password"})


@dataclass(frozen=True, slots=True, order=True)
class SecretSpan:
    """A credential at `text[start:end]` (character offsets), of a stable short `kind` such as `github-pat`."""

    start: int
    end: int
    kind: str


def is_word_char(char: str) -> bool:
    """A regex word character (`\\w`): where a token, and a word boundary, stop."""
    return char.isalnum() or char == "_"


def marker(kind: str) -> str:
    """What replaces a credential: visible, greppable, and naming only the kind, never any of the value."""
    return f"[REDACTED:{kind}]"


def _preferred(current: SecretSpan, other: SecretSpan) -> str:
    current_generic, other_generic = current.kind in GENERIC_KINDS, other.kind in GENERIC_KINDS
    if current_generic != other_generic:
        return other.kind if current_generic else current.kind
    return current.kind if current.end - current.start >= other.end - other.start else other.kind


def merge_spans(spans: Iterable[SecretSpan]) -> tuple[SecretSpan, ...]:
    """Spans sorted by start, overlapping ones joined (the union of both scanners' findings)."""
    merged: list[SecretSpan] = []
    for span in sorted(spans):
        if span.end <= span.start:
            continue
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = SecretSpan(last.start, max(last.end, span.end), _preferred(last, span))
        else:
            merged.append(span)
    return tuple(merged)
