"""The hash chain that makes tampering with stored audit events detectable.

Each instance (one data directory + spool slot) numbers its events 1, 2, 3, ... and seals each one:

    document  = the event as JSON (pydantic's JSON mode), with instance_id, seq and prev_hash set, without hash
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hash      = "sha256:" + sha256(canonical).hexdigest()                  (no key configured)
              | "hmac-sha256:" + HMAC-SHA256(key, canonical).hexdigest()   (BASTION_AUDIT__HMAC_KEY_SECRET)

`prev_hash` is the previous event's `hash` (None for seq 1), so the canonical bytes bind each event to the
whole history before it. The stored line is the canonical text with `"hash":"..."` appended as its last member
(one serialisation per event); every sink stores that line verbatim, and `verify` parses it, drops `hash`,
re-serialises canonically and recomputes the hash, so the line's own key order never matters.

Without a key anyone who can write to a sink can also recompute hashes; the chain then still catches edits,
deletions, insertions and reordering made without doing so, and `verify` compares a sink with the spool's own
head. With an HMAC key (held outside the sinks) a forged record cannot be sealed at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any, TypeAlias

from bastion.audit.canonical import canonical, event_body
from bastion.audit.event import AuditEvent
from bastion.audit.sink import SealedEvent

__all__ = ["HMAC_SHA256", "SHA256", "Chain", "canonical", "document_hash", "event_document", "sealed_event"]

logger = logging.getLogger(__name__)

SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"


def document_hash(document: dict[str, Any], key: bytes | None) -> str:
    """The hash of `document` (which must not contain `hash`)."""
    payload = canonical(document).encode("utf-8")
    if key is None:
        return f"{SHA256}:{hashlib.sha256(payload).hexdigest()}"
    return f"{HMAC_SHA256}:{hmac.new(key, payload, hashlib.sha256).hexdigest()}"


def event_document(event: AuditEvent) -> dict[str, Any]:
    """The event as a JSON document (pydantic's JSON mode)."""
    return event.model_dump(mode="json")


def _fallback_document(event: AuditEvent, exc: Exception) -> dict[str, Any]:
    # Recording must not fail a request: an unserialisable `metadata` value is stored as its repr.
    logger.warning("audit event %s: metadata is not JSON (%s); storing its repr", event.event_id, exc)
    return event.model_copy(update={"metadata": {"unserializable": repr(event.metadata)[:1000]}}).model_dump(
        mode="json"
    )


def _time(event: AuditEvent) -> datetime:
    moment = event.time
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Chain:
    """The head of one instance's chain. `seal` is not thread-safe: the spool calls it under its lock, which
    is what makes the order of `seq` the order of `record()` calls."""

    def __init__(self, instance_id: str, seq: int = 0, head_hash: str | None = None, key: bytes | None = None) -> None:
        self.instance_id = instance_id
        self.seq = seq  # the last seq sealed
        self.head_hash = head_hash  # its hash
        self.key = key

    def _body(self, event: AuditEvent, seq: int) -> str:
        with contextlib.suppress(ValueError, TypeError, RecursionError):  # not plain JSON: pydantic's JSON mode
            body = event_body(event, self.instance_id, seq, self.head_hash)
            if body is not None:
                return body
        try:
            document = event_document(event)
        except (ValueError, TypeError) as exc:
            document = _fallback_document(event, exc)
        try:
            return canonical(self._place(document, seq))
        except (ValueError, TypeError) as exc:  # NaN or infinity that pydantic let through
            return canonical(self._place(_fallback_document(event, exc), seq))

    def _place(self, document: dict[str, Any], seq: int) -> dict[str, Any]:
        document.pop("hash", None)
        document["instance_id"] = self.instance_id
        document["seq"] = seq
        document["prev_hash"] = self.head_hash
        return document

    def seal_line(self, event: AuditEvent) -> tuple[int, str, str]:
        """Seal `event` as the chain's next record: (seq, hash, line). The spool's request path uses this; the
        indexed columns of a SealedEvent are taken from the event later, off the request path (`sealed_event`)."""
        seq = self.seq + 1
        body = self._body(event, seq)
        payload = body.encode("utf-8")
        if self.key is None:
            digest = f"{SHA256}:{hashlib.sha256(payload).hexdigest()}"
        else:
            digest = f"{HMAC_SHA256}:{hmac.new(self.key, payload, hashlib.sha256).hexdigest()}"
        self.seq, self.head_hash = seq, digest
        return seq, digest, f'{body[:-1]},"hash":"{digest}"}}'  # the canonical body, `hash` appended last

    def seal(self, event: AuditEvent) -> SealedEvent:
        seq, digest, line = self.seal_line(event)
        return sealed_event(self.instance_id, seq, event, digest, line)


# The indexed columns of a sealed event, as a flat tuple of strings, ints and a datetime: what the spool keeps in
# memory for its sinks. The garbage collector stops tracking such a tuple at its first pass, so thousands of them
# held for seconds add nothing to a full collection (keeping the AuditEvent models alive instead promoted ~10
# tracked objects per event to the oldest generation and made its collections pause requests for 30-80 ms).
SealedRecord: TypeAlias = tuple[int, str, str, str, datetime, str | None, str | None, str, str | None, str]


def sealed_record(seq: int, event: AuditEvent, digest: str, line: str) -> SealedRecord:
    """(seq, hash, line, event_id, time, subject, repo, decision, tool, outcome) of a line `Chain.seal_line` made."""
    return (
        seq,
        digest,
        line,
        event.event_id,
        _time(event),
        event.subject,
        event.repo,
        str(event.decision),
        event.tool,
        str(event.outcome),
    )


def sealed_from_record(instance_id: str, record: SealedRecord) -> SealedEvent:
    seq, digest, line, event_id, moment, subject, repo, decision, tool, outcome = record
    return SealedEvent(
        instance_id=instance_id,
        seq=seq,
        event_id=event_id,
        time=moment,
        subject=subject,
        repo=repo,
        decision=decision,
        tool=tool,
        outcome=outcome,
        hash=digest,
        line=line,
    )


def sealed_event(instance_id: str, seq: int, event: AuditEvent, digest: str, line: str) -> SealedEvent:
    """The SealedEvent of a line `Chain.seal_line` made from `event`."""
    return sealed_from_record(instance_id, sealed_record(seq, event, digest, line))
