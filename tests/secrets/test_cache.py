"""SecretsCache over a real file store: TTL, one read per name at a time, invalidation, stale serving while the store
cannot answer (bounded by the stated expiry or the grace period), remembered misses, rotation noticed."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.errors import Unavailable
from bastion.secrets import SecretNotFound, SecretsCache
from bastion.secrets.base import Secret
from bastion.secrets.file import FileSecretsProvider


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text)
    os.replace(temp, path)


def _break(path: Path) -> None:
    """The store stops answering for this secret: a directory where the file was (reads fail with EISDIR)."""
    path.unlink()
    path.mkdir()


def _repair(path: Path, text: str) -> None:
    shutil.rmtree(path)
    path.write_text(text)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.mark.anyio
async def test_a_value_is_reused_until_its_ttl_and_a_rotation_is_seen_after_it(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bastion.secrets")
    _write(tmp_path / "token", "first")
    cache = SecretsCache(FileSecretsProvider(tmp_path), ttl=300, clock=clock)
    assert (await cache.get("token")).value.get_secret_value() == "first"
    _write(tmp_path / "token", "second")
    clock.now += 299
    assert (await cache.get("token")).value.get_secret_value() == "first"
    assert cache.fetches == 1
    clock.now += 2
    assert (await cache.get("token")).value.get_secret_value() == "second"
    assert cache.fetches == 2
    assert "secret token rotated (version" in caplog.text
    assert "second" not in caplog.text


@pytest.mark.anyio
async def test_invalidate_reads_again_at_once(tmp_path: Path, clock: Clock) -> None:
    _write(tmp_path / "token", "first")
    cache = SecretsCache(FileSecretsProvider(tmp_path), ttl=300, clock=clock)
    await cache.get("token")
    _write(tmp_path / "token", "second")
    cache.invalidate("token")
    assert (await cache.get("token")).value.get_secret_value() == "second"


@pytest.mark.anyio
async def test_concurrent_callers_share_one_read(tmp_path: Path, clock: Clock) -> None:
    _write(tmp_path / "token", "value")
    cache = SecretsCache(FileSecretsProvider(tmp_path), ttl=300, clock=clock)
    answers = await asyncio.gather(*(cache.get("token") for _ in range(20)))
    assert {secret.value.get_secret_value() for secret in answers} == {"value"}
    assert cache.fetches == 1


@pytest.mark.anyio
async def test_an_outage_is_served_from_cache_within_the_grace_period_then_refused(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    _write(path, "cached-value")
    cache = SecretsCache(FileSecretsProvider(tmp_path), ttl=300, stale_grace=3600, clock=clock)
    await cache.get("token")
    _break(path)
    clock.now += 301
    assert (await cache.get("token")).value.get_secret_value() == "cached-value"
    assert "serving the value read at" in caplog.text
    clock.now += 5  # within the retry pause: the store is not asked again
    fetches = cache.fetches
    assert (await cache.get("token")).value.get_secret_value() == "cached-value"
    assert cache.fetches == fetches
    clock.now += 300 + 3600  # beyond ttl + grace since the read
    with pytest.raises(Unavailable, match="cannot read"):
        await cache.get("token")
    _repair(path, "repaired")
    assert (await cache.get("token")).value.get_secret_value() == "repaired"


@pytest.mark.anyio
async def test_a_stated_expiry_bounds_stale_serving(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "token"
    expires = clock.now + 1000
    stamp = datetime.fromtimestamp(expires, UTC).isoformat()
    _write(path, f'{{"token": "t", "expires_at": "{stamp}"}}')
    cache = SecretsCache(FileSecretsProvider(tmp_path), ttl=300, stale_grace=100_000, clock=clock)
    await cache.get("token")
    _break(path)
    clock.now += 999
    assert "t" in (await cache.get("token")).value.get_secret_value()
    clock.now += 20
    with pytest.raises(Unavailable):
        await cache.get("token")


@pytest.mark.anyio
async def test_an_invalidated_value_is_never_served_stale(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "token"
    _write(path, "rejected-value")
    cache = SecretsCache(FileSecretsProvider(tmp_path), ttl=300, clock=clock)
    await cache.get("token")
    _break(path)
    cache.invalidate("token")
    with pytest.raises(Unavailable, match="cannot read"):
        await cache.get("token")


@pytest.mark.anyio
async def test_a_missing_secret_is_remembered_for_the_ttl_and_first_falls_back(tmp_path: Path, clock: Clock) -> None:
    _write(tmp_path / "default", "fallback")
    cache = SecretsCache(FileSecretsProvider(tmp_path), ttl=300, clock=clock)
    secret: Secret = await cache.first(["acme", "default"])
    assert (secret.name, secret.value.get_secret_value()) == ("default", "fallback")
    assert cache.fetches == 2
    await cache.first(["acme", "default"])
    assert cache.fetches == 2  # the miss is cached too
    _write(tmp_path / "acme", "own")
    clock.now += 301
    assert (await cache.first(["acme", "default"])).value.get_secret_value() == "own"
    with pytest.raises(SecretNotFound, match=r"nope.*does not exist.*other.*does not exist"):
        await cache.first(["nope", "other"])
