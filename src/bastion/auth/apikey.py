"""API-key authentication, on every request: a verified key is answered from memory.

The cache must never outlive a revocation. On SQLite one dedicated connection reads `PRAGMA data_version`, which
changes whenever any other connection (this process or `bastion keys revoke` in another one) commits; a change
empties the cache, so the very next request re-reads the store. That read of the WAL index in shared memory is
the only database touch on the warm path (~2-3 µs). Other engines cannot signal commits, so there entries expire
after `cache_seconds`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from bastion.auth.keys import KEY_LENGTH, KEY_PREFIX, ApiKeyRecord, KeyStore, keys_match, parse_key_id
from bastion.errors import Unauthenticated
from bastion.freshness import PerIteration
from bastion.principal import Principal
from bastion.store.db import is_sqlite

__all__ = ["ApiKeyAuthenticator"]

logger = logging.getLogger(__name__)

MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class _CachedKey:
    record: ApiKeyRecord
    principal: Principal  # built once: the warm path allocates nothing
    expires_at: float | None  # POSIX seconds, compared with time.time()
    fetched_at: float  # time.monotonic(), for the TTL fallback


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _CommitWatch:
    """`PRAGMA data_version` on one connection that never writes: a new value means someone else committed."""

    def __init__(self, store: KeyStore) -> None:
        self._pooled = store.engine.raw_connection()  # held for the authenticator's lifetime
        self._connection: Any = self._pooled.driver_connection
        self._lock = threading.Lock()  # sqlite3 connections must not be used by two threads at once

    def version(self) -> int:
        with self._lock:
            return self._connection.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self._pooled.close()


class ApiKeyAuthenticator:
    """Authenticates `bst_...` bearer tokens against a `KeyStore`.

    `cache_seconds` bounds how long a verified key is trusted on stores that cannot signal commits (not SQLite).
    `watch_commits` defaults to "when the store is SQLite"; False forces the TTL behaviour (used by tests)."""

    def __init__(self, store: KeyStore, cache_seconds: float = 5.0, *, watch_commits: bool | None = None) -> None:
        if watch_commits is None:
            watch_commits = is_sqlite(store.engine)
        elif watch_commits and not is_sqlite(store.engine):
            raise ValueError("watching commits needs a SQLite key store (PRAGMA data_version)")
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _CachedKey] = {}
        self._watch = _CommitWatch(store) if watch_commits else None
        self._version: PerIteration[int] = PerIteration()
        self._seen_version = self._watch.version() if self._watch else 0

    def accepts(self, token: str) -> bool:
        # The prefix claims the token, so a truncated key gets this authenticator's precise complaint.
        return token.startswith(KEY_PREFIX)

    async def authenticate(self, token: str) -> Principal:
        key_id = parse_key_id(token)
        if key_id is None:
            raise Unauthenticated(self._malformed_message(token))
        version = self._current_version()
        cached = self._cache.get(key_id)
        if cached is None or (self._watch is None and time.monotonic() - cached.fetched_at > self._cache_seconds):
            cached = await self._load(key_id, version)
        elif not keys_match(token, cached.record.key_hash):
            # Read the store as an unknown id does, so a wrong secret for a real (cached) key takes as long as an
            # unknown key: the answer's timing must not confirm that a key id exists (found by a probe).
            cached = await self._load(key_id, version)
        if cached is None or not keys_match(token, cached.record.key_hash):
            # To the caller, a wrong secret for a real key id reads exactly like an unknown key: the id alone proves
            # nothing. The operator is told the difference: someone holds a real key's id with the wrong secret.
            if cached is None:
                logger.info("API key rejected: unknown key (key id %s)", key_id)
            else:
                logger.warning(
                    "API key rejected: wrong secret for existing key id %s (subject %s)", key_id, cached.record.subject
                )
            raise Unauthenticated(
                f"API key not recognised (key id {key_id}): it was never issued by this server, was deleted, or "
                "was copied incompletely; check the key or ask an administrator for a new one"
            )
        record = cached.record
        if record.revoked_at is not None:
            logger.info("API key rejected: revoked (key id %s)", key_id)
            raise Unauthenticated(
                f"API key {key_id} was revoked at {_when(record.revoked_at)}; ask an administrator for a new key"
            )
        if cached.expires_at is not None and cached.expires_at <= time.time():
            assert record.expires_at is not None
            logger.info("API key rejected: expired (key id %s)", key_id)
            raise Unauthenticated(
                f"API key {key_id} expired at {_when(record.expires_at)}; ask an administrator for a new key"
            )
        return cached.principal

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()

    def _current_version(self) -> int:
        """The store's commit counter; a change since the last request empties the cache."""
        if self._watch is None:
            return 0
        version = self._version.get(self._watch.version)  # once per loop iteration (bastion.freshness)
        if version != self._seen_version:
            self._cache.clear()
            self._seen_version = version
        return version

    async def _load(self, key_id: str, version: int) -> _CachedKey | None:
        record = await anyio.to_thread.run_sync(self._store.get, key_id)
        if record is None:
            return None
        entry = _CachedKey(
            record=record,
            principal=Principal(
                subject=record.subject,
                groups=frozenset(record.groups),
                auth_method="api_key",
                credential_id=record.key_id,
            ),
            expires_at=record.expires_at.timestamp() if record.expires_at else None,
            fetched_at=time.monotonic(),
        )
        # Cache only what was read under the version still current: if a commit was noticed while this read was
        # in flight, the row may already be stale, and the next request reads it again.
        if version == self._seen_version:
            if len(self._cache) >= MAX_CACHED_KEYS:
                del self._cache[next(iter(self._cache))]
            self._cache[key_id] = entry
        return entry

    @staticmethod
    def _malformed_message(token: str) -> str:
        # Describes the token's shape only; no part of it is repeated back.
        if not token.startswith(KEY_PREFIX):
            return "not a bastion API key (bastion keys start with 'bst_'); send the key `bastion keys create` printed"
        if len(token) != KEY_LENGTH:
            return (
                f"not a bastion API key: it starts with 'bst_' but is {len(token)} characters long, and a key is "
                f"{KEY_LENGTH} (bst_<12 hex>_<43 base64url>); it was probably copied incompletely"
            )
        return (
            "not a bastion API key: it starts with 'bst_' and has the right length, but contains characters a key "
            "cannot have (bst_<12 hex>_<43 base64url>); copy it again from where it was stored"
        )
