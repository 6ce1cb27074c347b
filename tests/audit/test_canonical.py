"""The request path's canonical encoder writes exactly what json.dumps writes for the event's document."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bastion.audit.canonical import canonical, event_body
from bastion.audit.chain import Chain, event_document
from bastion.audit.event import AuditEvent

ALPHABET = ["a", "Z", "0", " ", '"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "ß", "中", "\u2028", "😀"]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 9 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 7, 2**63, -(2**70), rng.randint(-(10**12), 10**12)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 0.1, 1e16, 1.5e-7, -123.456, rng.uniform(-1e6, 1e6)])
    if kind in (4, 5):
        return _text(rng)
    if kind in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _event(rng: random.Random) -> AuditEvent:
    moment = datetime(2026, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), 30, 15, tzinfo=UTC)
    moment = moment.replace(microsecond=rng.choice([0, 1, 999999, rng.randint(0, 999999)]))
    optional = lambda: rng.choice([None, _text(rng)])  # noqa: E731
    return AuditEvent.model_construct(  # as the request path builds them: unvalidated
        event_id=_text(rng) or "id",
        time=moment,
        request_id=optional(),
        subject=optional(),
        groups=[_text(rng) for _ in range(rng.randint(0, 3))],
        auth_method=optional(),
        credential_id=optional(),
        client=optional(),
        source_ip=optional(),
        user_agent=optional(),
        tool=optional(),
        repo=optional(),
        ref=optional(),
        resolved_sha=optional(),
        paths=[_text(rng) for _ in range(rng.randint(0, 3))],
        bytes_returned=rng.randint(0, 10**9),
        decision=rng.choice(["allow", "deny", "none"]),
        reason=optional(),
        rule=optional(),
        duration_ms=rng.choice([0.0, 0.42, 12.75, rng.uniform(0, 1e5)]),
        outcome=rng.choice(["ok", "error", "denied"]),
        metadata={_text(rng): _value(rng) for _ in range(rng.randint(0, 5))},
    )


def _expected(event: AuditEvent, instance_id: str, seq: int, prev_hash: str | None) -> str:
    """The general path: pydantic's JSON mode, chain fields set, `hash` removed, json.dumps canonically."""
    document = event_document(event)
    document.pop("hash")
    document.update(instance_id=instance_id, seq=seq, prev_hash=prev_hash)
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def test_event_body_equals_json_dumps_of_the_document_for_random_events() -> None:
    rng = random.Random(20261121)
    for number in range(3000):
        event = _event(rng)
        prev_hash = rng.choice([None, f"sha256:{number:064x}"])
        body = event_body(event, "0123456789abcdef", number + 1, prev_hash)
        assert body is not None
        assert body == _expected(event, "0123456789abcdef", number + 1, prev_hash), event
        assert canonical(json.loads(body)) == body  # what `verify` recomputes


def test_a_sealed_line_is_the_canonical_body_with_its_hash_appended() -> None:
    chain = Chain("0123456789abcdef")
    event = AuditEvent(subject="alice", metadata={"b": [1, 2.5], "a": {"z": None, "y": "ü"}})
    first = chain.seal(event)
    second = chain.seal(event)
    document = json.loads(second.line)
    assert document["prev_hash"] == first.hash
    assert second.line == f'{_expected(event, "0123456789abcdef", 2, first.hash)[:-1]},"hash":"{second.hash}"}}'


@pytest.mark.parametrize(
    "event",
    [
        AuditEvent(time=datetime(2026, 11, 21, 9, 30, tzinfo=timezone(timedelta(hours=2)))),  # not UTC
        AuditEvent(time=datetime(2026, 11, 21, 9, 30)),  # naive
        type("Extended", (AuditEvent,), {"__annotations__": {"extra": int}, "extra": 1})(),  # a subclass
    ],
    ids=["offset", "naive", "subclass"],
)
def test_event_body_leaves_what_it_does_not_cover_to_the_general_path(event: AuditEvent) -> None:
    assert event_body(event, "0123456789abcdef", 1, None) is None
    sealed = Chain("0123456789abcdef").seal(event)
    assert sealed.line.startswith(_expected(event, "0123456789abcdef", 1, None)[:-1])


def test_values_json_cannot_hold_fall_back_to_pydantics_json_mode() -> None:
    moment = datetime(2026, 11, 21, tzinfo=UTC)
    event = AuditEvent.model_construct(time=moment, metadata={"when": moment, "tags": {"b", "a"}})
    with pytest.raises(TypeError):
        event_body(event, "0123456789abcdef", 1, None)
    document = json.loads(Chain("0123456789abcdef").seal(event).line)
    assert document["metadata"]["when"] == "2026-11-21T00:00:00Z"
    assert sorted(document["metadata"]["tags"]) == ["a", "b"]
