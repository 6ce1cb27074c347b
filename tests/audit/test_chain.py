"""The hash chain: numbering, linkage, the canonical form, HMAC, and events that do not serialise."""

from __future__ import annotations

import hashlib
import hmac
import json
import math

from bastion.audit.chain import Chain, canonical, document_hash
from bastion.audit.event import AuditEvent


def test_each_event_is_numbered_and_linked_to_the_one_before() -> None:
    chain = Chain("inst")
    first, second, third = (chain.seal(AuditEvent(subject=name)) for name in ("a", "b", "c"))
    assert [event.seq for event in (first, second, third)] == [1, 2, 3]
    documents = [json.loads(event.line) for event in (first, second, third)]
    assert [document["prev_hash"] for document in documents] == [None, first.hash, second.hash]
    assert [document["hash"] for document in documents] == [first.hash, second.hash, third.hash]
    assert {document["instance_id"] for document in documents} == {"inst"}
    assert (chain.seq, chain.head_hash) == (3, third.hash)


def test_the_hash_is_sha256_of_the_canonical_document_without_hash() -> None:
    sealed = Chain("inst").seal(AuditEvent(subject="ålice", reason="naïve ✓", duration_ms=4.56))
    document = json.loads(sealed.line)
    claimed = document.pop("hash")
    payload = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert claimed == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert sealed.line == canonical(document)[:-1] + f',"hash":"{claimed}"}}'  # canonical body, hash last
    assert "ålice" in sealed.line  # UTF-8 as is, not \\u escapes


def test_with_a_key_the_hash_is_an_hmac() -> None:
    key = b"0123456789abcdef-secret"
    sealed = Chain("inst", key=key).seal(AuditEvent(subject="alice"))
    document = json.loads(sealed.line)
    claimed = document.pop("hash")
    expected = hmac.new(key, canonical(document).encode(), hashlib.sha256).hexdigest()
    assert claimed == f"hmac-sha256:{expected}"
    assert document_hash(document, None) != claimed


def test_a_chain_resumes_from_a_stored_head() -> None:
    earlier = Chain("inst")
    last = [earlier.seal(AuditEvent()) for _ in range(4)][-1]
    resumed = Chain("inst", seq=earlier.seq, head_hash=earlier.head_hash)
    fifth = resumed.seal(AuditEvent())
    assert fifth.seq == 5
    assert json.loads(fifth.line)["prev_hash"] == last.hash


def test_metadata_that_is_not_json_is_stored_as_its_repr() -> None:
    sealed = Chain("inst").seal(AuditEvent(metadata={"handle": object(), "ratio": math.nan}))
    stored = json.loads(sealed.line)["metadata"]["unserializable"]
    assert stored.startswith("{'handle': <object object at ")
    assert json.loads(Chain("inst").seal(AuditEvent(metadata={"ratio": math.nan})).line)["metadata"] == {
        "ratio": None  # pydantic's JSON mode already turns NaN into null
    }
