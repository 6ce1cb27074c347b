"""KeyStore: issuing, reading, listing and revoking keys; only hashes at rest."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from bastion.auth.keys import KEY_LENGTH, KeyStore, hash_key, keys_match, parse_key_id
from bastion.config import Settings
from bastion.errors import InvalidInput, NotFound


def test_create_returns_a_well_formed_key_and_its_record(store: KeyStore) -> None:
    expires = datetime.now(UTC) + timedelta(days=30)
    record, key = store.create("alice", ["ops", "eng", "ops"], expires, "laptop")

    assert key.startswith(f"bst_{record.key_id}_")
    assert len(key) == KEY_LENGTH
    assert parse_key_id(key) == record.key_id
    assert len(record.key_id) == 12
    assert record.subject == "alice"
    assert record.groups == ("eng", "ops")  # sorted, no duplicates
    assert record.description == "laptop"
    assert record.expires_at == expires
    assert record.revoked_at is None
    assert record.status() == "active"
    assert record.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert keys_match(key, record.key_hash)
    assert not keys_match(key[:-1] + ("A" if key[-1] != "A" else "B"), record.key_hash)


def test_two_keys_never_share_id_or_secret(store: KeyStore) -> None:
    keys = [store.create("alice")[1] for _ in range(20)]
    assert len({parse_key_id(key) for key in keys}) == 20
    assert len({key.rsplit("_", 1)[-1] for key in keys}) == 20


def test_record_repr_never_shows_the_hash(store: KeyStore) -> None:
    record, _ = store.create("alice", ["eng"])
    assert record.key_hash not in repr(record)
    assert "key_hash" not in repr(record)


def test_get_reads_back_what_create_stored(store: KeyStore) -> None:
    record, _ = store.create("alice", ["eng"], datetime.now(UTC) + timedelta(hours=1), "ci")
    assert store.get(record.key_id) == record
    assert store.get("000000000000") is None


def test_list_is_oldest_first_and_can_hide_revoked_keys(store: KeyStore) -> None:
    first, _ = store.create("alice")
    second, _ = store.create("bob", ["ops"])
    third, _ = store.create("carol")
    store.revoke(second.key_id)

    assert [record.key_id for record in store.list()] == [first.key_id, second.key_id, third.key_id]
    assert [record.key_id for record in store.list(include_revoked=False)] == [first.key_id, third.key_id]


def test_revoke_records_when_and_a_second_revoke_changes_nothing(store: KeyStore) -> None:
    record, _ = store.create("alice")
    before = datetime.now(UTC)
    revoked = store.revoke(record.key_id)
    assert revoked.revoked_at is not None
    assert revoked.revoked_at >= before
    assert revoked.status() == "revoked"

    again = store.revoke(record.key_id)
    assert again.revoked_at == revoked.revoked_at
    assert store.get(record.key_id) == revoked


def test_revoking_an_unknown_key_says_how_to_find_ids(store: KeyStore) -> None:
    with pytest.raises(NotFound) as raised:
        store.revoke("ffffffffffff")
    assert raised.value.message == "no API key with id 'ffffffffffff'; `bastion keys list` shows the ids"


def test_status_reports_expiry(store: KeyStore) -> None:
    record, _ = store.create("alice", expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert record.status() == "active"
    assert record.status(datetime.now(UTC) + timedelta(hours=2)) == "expired"


@pytest.mark.parametrize(
    ("subject", "groups", "expires_at", "message"),
    [
        ("  ", [], None, "a key needs a subject (the user or service it acts as)"),
        ("alice", ["eng", " "], None, "a group name cannot be empty"),
        ("alice", [], datetime(2030, 1, 1), "expires_at must be timezone-aware (UTC)"),  # naive on purpose
        ("alice", [], datetime(2020, 1, 1, tzinfo=UTC), "expiry 2020-01-01T00:00:00+00:00 is in the past"),
        # printed by `keys list` and in logs: a line break or an escape sequence would forge lines or a terminal
        ("ali\nce", [], None, "a subject cannot contain line breaks, tabs or control characters"),
        ("mallory\x1b[2J", [], None, "a subject cannot contain line breaks, tabs or control characters"),
        ("alice", ["eng\rops"], None, "a group name cannot contain line breaks, tabs or control characters"),
        ("a" * 257, [], None, "a subject is at most 256 characters (got 257)"),
    ],
)
def test_create_refuses_bad_input(
    store: KeyStore, subject: str, groups: list[str], expires_at: datetime | None, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        store.create(subject, groups, expires_at)
    assert raised.value.message == message
    assert store.list() == []


def test_only_the_hash_is_stored(settings: Settings, engine: Engine, store: KeyStore) -> None:
    record, key = store.create("alice", ["eng"], description="hash-only check")
    secret = key[len(f"bst_{record.key_id}_") :]  # the secret itself may contain "_"
    engine.dispose()  # closing the last connection checkpoints the WAL into the main file

    stored = b"".join(path.read_bytes() for path in settings.data_dir.iterdir() if path.is_file())
    assert b"hash-only check" in stored  # the row really is in these bytes
    assert hash_key(key).encode() in stored
    assert key.encode() not in stored
    assert secret.encode() not in stored
