"""Finding credentials in text: betterleaks (pinned; its Go engine ships in the wheel) and the regex layer, merged.

betterleaks finds most credentials with few false positives at high and medium confidence (FACTS.md: 10 of 11
planted kinds); its low-confidence "generic" findings (UUIDs in JSON, `password = "..."` in tests) are noise and
are not used. The regex layer (`patterns.py`) covers what it misses. Both always run; their spans are merged.

Cost: ~0.04 ms for 10 KB of code without findings, ~0.3 ms for 110 KB (measured, docs/content-guard.md). Results
are cached by content identity (a blob's oid, a patch's digest), so a file read twice is scanned once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

import anyio
import betterleaks

from bastion.errors import Unavailable
from bastion.guard.patterns import regex_spans
from bastion.guard.spans import SecretSpan, is_word_char, merge_spans

__all__ = ["SCAN_CACHE", "ScanCache", "find_secrets", "find_secrets_cached", "kind_for"]

logger = logging.getLogger(__name__)

_CONFIDENT = frozenset({"high", "medium"})
# betterleaks rule ids -> the kind named in markers and audit events (stable, short, what a person recognises).
# Rules not listed keep their own id (`gitlab-pat`, `npm-access-token`, ...), which is already such a name.
_KINDS = {
    "aws-access-token": "aws-access-key",
    "aws-secret-access-key": "aws-secret-key",
    "github-oauth": "github-oauth-token",
    "stripe-access-token": "stripe-key",
    "generic-credential-uri": "url-password",
    "generic-api-key": "generic-secret",
    "generic-password": "generic-secret",
}
_KIND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# Texts above this size are scanned in a worker thread (the Go engine releases the GIL): ~0.5 ms and more for
# ordinary code, and betterleaks can take seconds on a pathological text (thousands of findings on one long line:
# 225 KB with 5,000 tokens took 2-8 s here), which must never stall the event loop. The hop costs ~0.1 ms.
_THREAD_SCAN_CHARS = 32 * 1024
_ELSEWHERE_VALUES = 64  # distinct found values also looked for elsewhere in the text


def kind_for(rule_id: str) -> str:
    """The marker kind for a betterleaks rule id."""
    if rule_id in _KINDS:
        return _KINDS[rule_id]
    if rule_id.startswith("slack-") and rule_id.endswith("-token"):
        return "slack-token"
    cleaned = "".join(char for char in rule_id.lower() if char in _KIND_CHARS)[:48]
    return cleaned or "secret"


class _Lines:
    """Character offsets of line starts (lines end at \\n, as betterleaks counts them), built only when betterleaks
    reported something: its locations are (line, byte column) and spans need character offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()  # then byte columns are character columns
        self.starts = [0]
        position = text.find("\n")
        while position >= 0:
            self.starts.append(position + 1)
            position = text.find("\n", position + 1)

    def offset(self, line: int, byte_column: int) -> int:
        """The character offset of byte `byte_column` (0-based) of line `line` (1-based)."""
        index = min(max(line, 1), len(self.starts)) - 1
        start = self.starts[index]
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.text)
        if self.ascii:
            return min(start + byte_column, end)
        # A character is at least one byte, so the first `byte_column` characters hold the position.
        head = self.text[start : min(start + byte_column, end)]
        return start + len(head.encode("utf-8")[:byte_column].decode("utf-8", "ignore"))


def _occurrences(text: str, value: str, kind: str) -> list[SecretSpan]:
    spans: list[SecretSpan] = []
    position = text.find(value)
    while position >= 0:
        spans.append(SecretSpan(position, position + len(value), kind))
        position = text.find(value, position + 1)
    return spans


def _item_spans(text: str, lines: _Lines, item: dict[str, Any], kind: str) -> list[SecretSpan]:
    """Spans of one betterleaks finding (or component): the value where it is."""
    match: dict[str, Any] = item.get("match") or {}
    where: dict[str, Any] = item.get("location") or {}
    full, value = str(match.get("full") or ""), str(match.get("value") or "")
    start = lines.offset(int(where.get("start_line") or 1), int(where.get("start_column") or 1) - 1)
    end = lines.offset(int(where.get("end_line") or 1), int(where.get("end_column") or 0))
    spans: list[SecretSpan] = []
    located = text[start:end]
    inside = located.find(value) if value and located == full else -1
    if inside >= 0:
        spans.append(SecretSpan(start + inside, start + inside + len(value), kind))
    elif end > start:
        spans.append(SecretSpan(start, end, kind))  # a decoded or oddly located finding: mask what it points at
    return spans


def _betterleaks_spans(text: str) -> list[SecretSpan]:
    # The engine takes a C string: a NUL would end the scan there (a text file may hold one past the binary sniff),
    # so NULs become spaces, which keeps every offset.
    scanned = text.replace("\x00", " ") if "\x00" in text else text
    try:
        findings = betterleaks.scan_string(scanned)
    except (betterleaks.BetterleaksError, UnicodeEncodeError) as exc:
        logger.exception("the secret scanner failed")
        raise Unavailable("the content guard could not scan this content, so none of it is returned") from exc
    spans: list[SecretSpan] = []
    lines: _Lines | None = None
    for finding in findings:
        if finding.confidence not in _CONFIDENT:
            continue
        lines = lines or _Lines(scanned)
        raw: dict[str, Any] = finding.raw
        spans.extend(_item_spans(scanned, lines, raw, kind_for(finding.rule_id)))
        for component_set in raw.get("component_sets") or ():
            for component in component_set.get("components") or ():
                kind = kind_for(str(component.get("rule_id") or ""))
                spans.extend(_item_spans(scanned, lines, component, kind))
    return spans


def _elsewhere(text: str, spans: Sequence[SecretSpan], *, whole_tokens: bool) -> list[SecretSpan]:
    """The same values where they recur in the text without what made a scanner find them (a key repeated bare, in
    a comment). One pass over the text per distinct value of at least 8 characters, so only for the first few: a
    text with thousands of findings has them located already. `whole_tokens`: a recurrence counts only with no
    word character on either side (for the regex layer's values, which can be ordinary words: a URL's password)."""
    values: dict[str, str] = {}
    for span in spans:
        value = text[span.start : span.end]
        if len(value) >= 8:
            values.setdefault(value, span.kind)
            if len(values) == _ELSEWHERE_VALUES:
                break
    found = [span for value, kind in values.items() for span in _occurrences(text, value, kind)]
    if whole_tokens:
        found = [span for span in found if _alone(text, span.start, span.end)]
    return found


def _alone(text: str, start: int, end: int) -> bool:
    return not (start > 0 and is_word_char(text[start - 1])) and not (end < len(text) and is_word_char(text[end]))


def _looks_generated(value: str) -> bool:
    """Letters with digits or symbols: `s3cr3t-Pa55`, not `password` or `localhost`, which a URL can hold too."""
    classes = (any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value))
    return sum(classes) + (not value.isalnum()) >= 2


def find_secrets(text: str) -> tuple[SecretSpan, ...]:
    """Every credential in `text`, wherever it recurs, as sorted, non-overlapping spans (both scanners, merged)."""
    if not text:
        return ()
    found, matched = _betterleaks_spans(text), regex_spans(text)
    if not found and not matched:
        return ()
    generated = [span for span in matched if _looks_generated(text[span.start : span.end])]
    again = [*_elsewhere(text, found, whole_tokens=False), *_elsewhere(text, generated, whole_tokens=True)]
    return merge_spans([*found, *matched, *again])


class ScanCache:
    """Scan results by content identity, least recently used dropped first. Blob content never changes under its
    oid, so an entry never goes stale; an entry is a few spans (usually none), so thousands cost little memory."""

    def __init__(self, max_entries: int = 8192) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[SecretSpan, ...]] = OrderedDict()
        self._lock = threading.Lock()  # scans of large texts finish in worker threads

    def get(self, key: Hashable) -> tuple[SecretSpan, ...] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, spans: tuple[SecretSpan, ...]) -> None:
        with self._lock:
            self._entries[key] = spans
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


SCAN_CACHE = ScanCache()


async def find_secrets_cached(
    text: str, key: Hashable | None = None, cache: ScanCache = SCAN_CACHE
) -> tuple[SecretSpan, ...]:
    """`find_secrets(text)`, remembered under `key` (which must identify `text` exactly: a blob oid with the
    length read, a digest); large texts are scanned in a worker thread so the event loop keeps serving."""
    if key is not None:
        found = cache.get(key)
        if found is not None:
            return found
    if len(text) > _THREAD_SCAN_CHARS:
        spans = await anyio.to_thread.run_sync(find_secrets, text)
    else:
        spans = find_secrets(text)
    if key is not None:
        cache.put(key, spans)
    return spans
