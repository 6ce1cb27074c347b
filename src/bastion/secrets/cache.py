"""The TTL cache every consumer reads secrets through.

- Fresh for `ttl` seconds after a read (seed 000: 5 minutes); then the next `get` reads the store again, so a
  rotation (a new AWSCURRENT version) is seen at most `ttl` after it happened. `invalidate(name)` (GitHub said
  401) makes the very next `get` read again.
- One read per name at a time: concurrent callers wait for the read in flight instead of adding their own.
- The store unreachable: a cached value is served stale until the credential's own expiry when the secret
  states one, else until `stale_grace` past its cache time, and the store is retried at most every few seconds.
  An invalidated value is never served stale: it was rejected.
- "No such secret" is remembered for `ttl` too (per-organisation lookups fall back to a default name; without
  this every sync would ask the store for a secret that does not exist).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bastion.errors import Unavailable
from bastion.secrets.base import Secret, SecretNotFound, SecretsProvider

__all__ = ["KeyedLocks", "SecretsCache"]

log = logging.getLogger(__name__)

_ERROR_RETRY_SECONDS = 10.0  # during an outage, the store is asked again at most this often per name


class KeyedLocks:
    """One asyncio.Lock per key, for the event loop that is running. A Lock belongs to one loop; a process that
    runs several loops one after another (Lambda: one per invocation) gets fresh locks for each."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def __call__(self, key: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._locks = loop, {}
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


@dataclass(slots=True)
class _Entry:
    secret: Secret | None  # None: the store said there is no such secret
    fetched_at: float
    fresh_until: float
    missing_reason: str = ""
    serving_stale: bool = False


class SecretsCache:
    """Secrets by name from `provider`, cached. `clock` returns POSIX seconds (tests move it)."""

    def __init__(
        self,
        provider: SecretsProvider,
        *,
        ttl: float = 300.0,
        stale_grace: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.ttl = ttl
        self.stale_grace = stale_grace
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks = KeyedLocks()
        self.fetches = 0  # reads of the store (what the cache saves; tests and `doctor` look at it)

    def describe(self) -> str:
        return self.provider.describe()

    async def get(self, name: str) -> Secret:
        """The value of `name`; raises SecretNotFound, or Unavailable when the store cannot answer and nothing
        usable is cached."""
        entry = self._entries.get(name)
        if entry is not None and self._clock() < entry.fresh_until:
            return _answer(entry)
        async with self._locks(name):
            entry = self._entries.get(name)  # someone else may have read it while we waited
            if entry is not None and self._clock() < entry.fresh_until:
                return _answer(entry)
            return await self._read(name, entry)

    async def first(self, names: Sequence[str]) -> Secret:
        """The first of `names` that exists (a per-organisation secret, then the default)."""
        reasons: list[str] = []
        for name in dict.fromkeys(names):  # once each, in order
            try:
                return await self.get(name)
            except SecretNotFound as exc:
                reasons.append(exc.message)
        raise SecretNotFound("; ".join(reasons) or "no secret names given")

    def invalidate(self, name: str) -> None:
        """Forget `name`: its value was rejected (GitHub answered 401) or is known to have changed."""
        if self._entries.pop(name, None) is not None:
            log.info("secret %s invalidated; the next use reads it again from %s", name, self.describe())

    def cached_version(self, name: str) -> str | None:
        entry = self._entries.get(name)
        return entry.secret.version if entry is not None and entry.secret is not None else None

    async def _read(self, name: str, previous: _Entry | None) -> Secret:
        now = self._clock()
        self.fetches += 1
        try:
            secret = await self.provider.fetch(name)
        except SecretNotFound as exc:
            self._entries[name] = _Entry(None, now, now + self.ttl, missing_reason=exc.message)
            raise
        except Unavailable as exc:
            if previous is not None and previous.secret is not None and now < self._stale_until(previous):
                if not previous.serving_stale:
                    log.warning(
                        "secret %s: %s; serving the value read at %s until the store answers again",
                        name,
                        exc.message,
                        _when(previous.fetched_at),
                    )
                previous.serving_stale = True
                previous.fresh_until = now + min(_ERROR_RETRY_SECONDS, self.ttl)
                return previous.secret
            raise
        if previous is not None and previous.secret is not None and previous.secret.version != secret.version:
            log.info("secret %s rotated (version %s -> %s)", name, previous.secret.version, secret.version)
        elif previous is not None and previous.serving_stale:
            log.info("secret %s: %s answers again", name, self.describe())
        self._entries[name] = _Entry(secret, now, now + self.ttl)
        return secret

    def _stale_until(self, entry: _Entry) -> float:
        assert entry.secret is not None
        if entry.secret.expires_at is not None:
            return entry.secret.expires_at.timestamp()
        return entry.fetched_at + self.ttl + self.stale_grace


def _answer(entry: _Entry) -> Secret:
    if entry.secret is None:
        raise SecretNotFound(entry.missing_reason)
    return entry.secret


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
