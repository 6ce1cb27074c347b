"""ApiKeyAuthenticator: principals for good keys, precise refusals for bad ones, revocations seen at once."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bastion.auth.apikey import ApiKeyAuthenticator
from bastion.auth.keys import KeyStore
from bastion.config import Settings
from bastion.errors import Unauthenticated
from bastion.principal import Principal
from bastion.store.db import api_keys, open_state, write_transaction

pytestmark = pytest.mark.anyio


@pytest.fixture
def authenticator(store: KeyStore) -> Iterator[ApiKeyAuthenticator]:
    authenticator = ApiKeyAuthenticator(store, cache_seconds=5.0)
    yield authenticator
    authenticator.close()


class StatementCounter:
    """Counts SQL statements the engine runs (the warm path must run none)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


async def _refusal(authenticator: ApiKeyAuthenticator, token: str) -> str:
    with pytest.raises(Unauthenticated) as raised:
        await authenticator.authenticate(token)
    assert raised.value.error == "invalid_token"
    message = raised.value.message
    assert token not in message
    return message


async def test_a_valid_key_authenticates_as_its_subject_and_groups(
    store: KeyStore, authenticator: ApiKeyAuthenticator
) -> None:
    record, key = store.create("alice", ["eng", "ops"])
    principal = await authenticator.authenticate(key)
    assert principal == Principal(
        subject="alice", groups=frozenset({"eng", "ops"}), auth_method="api_key", credential_id=record.key_id
    )


async def test_accepts_claims_tokens_by_prefix_only(authenticator: ApiKeyAuthenticator) -> None:
    assert authenticator.accepts("bst_0123456789ab_" + "x" * 43)
    assert authenticator.accepts("bst_truncated")
    assert not authenticator.accepts("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln")
    assert not authenticator.accepts("ghp_abcdef")


async def test_malformed_tokens_are_described_without_being_repeated(
    store: KeyStore, authenticator: ApiKeyAuthenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, key = store.create("alice")

    assert await _refusal(authenticator, "ghp_notours") == (
        "not a bastion API key (bastion keys start with 'bst_'); send the key `bastion keys create` printed"
    )
    assert await _refusal(authenticator, key[:-5]) == (
        "not a bastion API key: it starts with 'bst_' but is 55 characters long, and a key is 60 "
        "(bst_<12 hex>_<43 base64url>); it was probably copied incompletely"
    )
    assert await _refusal(authenticator, key[:-1] + "!") == (
        "not a bastion API key: it starts with 'bst_' and has the right length, but contains characters a key "
        "cannot have (bst_<12 hex>_<43 base64url>); copy it again from where it was stored"
    )
    assert key[4:] not in caplog.text


async def test_an_unknown_key_and_a_wrong_secret_read_the_same(
    store: KeyStore, authenticator: ApiKeyAuthenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    record, key = store.create("alice")
    unknown = "bst_0123456789ab_" + "A" * 43
    wrong_secret = f"bst_{record.key_id}_" + "B" * 43

    assert await _refusal(authenticator, unknown) == (
        "API key not recognised (key id 0123456789ab): it was never issued by this server, was deleted, or was "
        "copied incompletely; check the key or ask an administrator for a new one"
    )
    assert await _refusal(authenticator, wrong_secret) == (
        f"API key not recognised (key id {record.key_id}): it was never issued by this server, was deleted, or "
        "was copied incompletely; check the key or ask an administrator for a new one"
    )
    assert "A" * 43 not in caplog.text
    assert "B" * 43 not in caplog.text
    assert "unknown key (key id 0123456789ab)" in caplog.text
    # only the operator's log tells the two apart: a real key's id with the wrong secret is worth a warning
    [wrong] = [r for r in caplog.records if record.key_id in r.getMessage()]
    assert (wrong.levelno, wrong.getMessage()) == (
        logging.WARNING,
        f"API key rejected: wrong secret for existing key id {record.key_id} (subject alice)",
    )
    assert key not in caplog.text


async def test_a_wrong_secret_for_a_cached_key_reads_the_store_as_an_unknown_key_does(
    engine: Engine, store: KeyStore, authenticator: ApiKeyAuthenticator
) -> None:
    """Timing: an unknown id is read from the store, a real one was answered from the cache, about 0.4 ms apart
    (a probe told them apart by the median). Both refusals now read the store once; the right key still none."""
    record, key = store.create("alice")
    await authenticator.authenticate(key)  # cached
    counter = StatementCounter(engine)
    await _refusal(authenticator, f"bst_{record.key_id}_" + "B" * 43)
    after_wrong = counter.count
    await _refusal(authenticator, "bst_0123456789ab_" + "A" * 43)
    assert after_wrong >= 1
    assert counter.count == 2 * after_wrong
    await authenticator.authenticate(key)
    assert counter.count == 2 * after_wrong


async def test_a_revoked_key_is_refused_saying_when(
    store: KeyStore, authenticator: ApiKeyAuthenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    record, key = store.create("alice")
    revoked = store.revoke(record.key_id)
    assert revoked.revoked_at is not None
    when = revoked.revoked_at.strftime("%Y-%m-%d %H:%M:%S UTC")

    assert await _refusal(authenticator, key) == (
        f"API key {record.key_id} was revoked at {when}; ask an administrator for a new key"
    )
    assert key not in caplog.text
    assert f"revoked (key id {record.key_id})" in caplog.text


async def test_an_expired_key_is_refused_saying_when(
    engine: Engine, store: KeyStore, authenticator: ApiKeyAuthenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    record, key = store.create("alice", expires_at=datetime.now(UTC) + timedelta(days=1))
    assert (await authenticator.authenticate(key)).subject == "alice"  # now warm in the cache

    # Another connection moves the expiry into the past: the warm cache must notice the commit.
    expired_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with write_transaction(engine) as connection:
        connection.execute(api_keys.update().where(api_keys.c.key_id == record.key_id).values(expires_at=expired_at))
    assert await _refusal(authenticator, key) == (
        f"API key {record.key_id} expired at 2026-01-02 03:04:05 UTC; ask an administrator for a new key"
    )
    assert key not in caplog.text


async def test_a_cached_key_expires_on_the_clock_without_any_store_change(
    store: KeyStore, authenticator: ApiKeyAuthenticator
) -> None:
    record, key = store.create("alice", expires_at=datetime.now(UTC) + timedelta(seconds=2))
    assert (await authenticator.authenticate(key)).subject == "alice"
    assert record.expires_at is not None
    await anyio.sleep((record.expires_at - datetime.now(UTC)).total_seconds() + 0.05)
    message = await _refusal(authenticator, key)
    assert message.startswith(f"API key {record.key_id} expired at ")


async def test_warm_checks_run_no_sql(engine: Engine, store: KeyStore, authenticator: ApiKeyAuthenticator) -> None:
    _, key = store.create("alice", ["eng"])
    await authenticator.authenticate(key)
    counter = StatementCounter(engine)
    for _ in range(100):
        assert (await authenticator.authenticate(key)).subject == "alice"
    assert counter.count == 0


async def test_a_revocation_by_another_process_is_seen_on_the_next_request(
    settings: Settings, store: KeyStore, authenticator: ApiKeyAuthenticator
) -> None:
    record, key = store.create("alice")
    other_record, other_key = store.create("bob")
    for _ in range(3):  # warm
        assert (await authenticator.authenticate(key)).subject == "alice"
    assert (await authenticator.authenticate(other_key)).subject == "bob"

    revoke = ["--data-dir", str(settings.data_dir), "keys", "revoke", record.key_id]
    result = await anyio.run_process(
        [sys.executable, "-c", "from bastion.cli.main import main; main()", *revoke], check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert f"Revoked key {record.key_id} (alice)" in result.stdout.decode()

    message = await _refusal(authenticator, key)
    assert message.startswith(f"API key {record.key_id} was revoked at ")
    assert (await authenticator.authenticate(other_key)).credential_id == other_record.key_id


async def test_a_revocation_through_a_second_engine_is_seen_on_the_next_request(
    settings: Settings, store: KeyStore, authenticator: ApiKeyAuthenticator
) -> None:
    record, key = store.create("alice")
    assert (await authenticator.authenticate(key)).subject == "alice"
    second_engine = open_state(settings)
    try:
        KeyStore(second_engine).revoke(record.key_id)
    finally:
        second_engine.dispose()
    assert (await _refusal(authenticator, key)).startswith(f"API key {record.key_id} was revoked at ")


async def test_a_new_key_from_elsewhere_works_at_once(settings: Settings, authenticator: ApiKeyAuthenticator) -> None:
    second_engine = open_state(settings)
    try:
        record, key = KeyStore(second_engine).create("carol")
    finally:
        second_engine.dispose()
    assert (await authenticator.authenticate(key)).credential_id == record.key_id


async def test_without_commit_watching_the_cache_lasts_cache_seconds(engine: Engine, store: KeyStore) -> None:
    """The behaviour for stores that cannot signal commits (PostgreSQL): a TTL."""
    record, key = store.create("alice")
    long_lived = ApiKeyAuthenticator(store, cache_seconds=3600, watch_commits=False)
    uncached = ApiKeyAuthenticator(store, cache_seconds=0, watch_commits=False)
    assert (await long_lived.authenticate(key)).subject == "alice"
    assert (await uncached.authenticate(key)).subject == "alice"

    store.revoke(record.key_id)
    # Within its TTL the cached verification stands; with no TTL the revocation is seen at once.
    assert (await long_lived.authenticate(key)).subject == "alice"
    assert (await _refusal(uncached, key)).startswith(f"API key {record.key_id} was revoked at ")

    counter = StatementCounter(engine)
    await _refusal(uncached, key)
    assert counter.count > 0  # cache_seconds=0 really re-reads


async def test_concurrent_cold_lookups_all_succeed(store: KeyStore, authenticator: ApiKeyAuthenticator) -> None:
    issued = [store.create(f"user{number}") for number in range(20)]
    results: dict[str, str] = {}

    async def check(key: str, key_id: str) -> None:
        results[key_id] = (await authenticator.authenticate(key)).subject

    async with anyio.create_task_group() as group:
        for record, key in issued:
            group.start_soon(check, key, record.key_id)
    assert results == {record.key_id: record.subject for record, _ in issued}
