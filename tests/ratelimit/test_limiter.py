"""The limiter against both stores: in-memory and a real redis-server (stopped and restarted mid-test)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from tests.support.redis_server import RedisServer, redis_server

from bastion.config import RateLimitSettings
from bastion.errors import ConfigError
from bastion.ratelimit.limiter import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    build_rate_limiter,
    redacted_url,
)
from bastion.ratelimit.rules import Bucket, parse_limit

pytestmark = pytest.mark.anyio


def bucket(scope: str, limit: str, *key: str, spent_on: str = "tool calls") -> Bucket:
    return Bucket(scope, parse_limit(scope, limit), key or (scope,), spent_on)


@pytest.fixture
async def limiter(storage_url: str) -> AsyncGenerator[RateLimiter]:
    built = build_rate_limiter(RateLimitSettings(storage_url=storage_url))
    assert isinstance(built, RedisRateLimiter if storage_url.startswith("redis") else MemoryRateLimiter)
    yield built
    await built.aclose()


async def test_each_request_spends_one_slot_and_the_next_is_refused_with_a_retry_time(limiter: RateLimiter) -> None:
    caller = bucket("caller", "3/minute", "calls", "alice")
    for _ in range(3):
        assert await limiter.acquire([caller]) is None
    refusal = await limiter.acquire([caller])
    assert refusal is not None
    assert refusal.bucket == caller
    assert 1 <= refusal.retry_after <= 60
    assert (
        refusal.message == f"rate limited: at most 3 tool calls per minute; retry after {refusal.retry_after} seconds"
    )


async def test_callers_have_separate_buckets(limiter: RateLimiter) -> None:
    assert await limiter.acquire([bucket("caller", "1/minute", "calls", "alice")]) is None
    assert await limiter.acquire([bucket("caller", "1/minute", "calls", "bob")]) is None
    assert await limiter.acquire([bucket("caller", "1/minute", "calls", "alice")]) is not None


async def test_a_call_refused_by_the_callers_bucket_spends_nothing_of_the_tools(limiter: RateLimiter) -> None:
    tool = bucket("tool:search_code", "3/minute", "tool", "alice", "search_code", spent_on="calls to search_code")
    caller = bucket("caller", "1/minute", "calls", "alice")
    assert await limiter.acquire([tool, caller]) is None  # tool 1/3, caller 1/1
    refusal = await limiter.acquire([tool, caller])
    assert refusal is not None
    assert refusal.bucket.scope == "caller"
    # Had the refused call spent a tool slot, only one would be left now, not two.
    assert await limiter.acquire([tool]) is None
    assert await limiter.acquire([tool]) is None
    refusal = await limiter.acquire([tool])
    assert refusal is not None
    assert refusal.bucket.scope == "tool:search_code"
    assert refusal.message.startswith("rate limited: at most 3 calls to search_code per minute; retry after ")


async def test_a_call_refused_by_its_tool_bucket_spends_nothing_of_the_callers(limiter: RateLimiter) -> None:
    tool = bucket("tool:analyze_repository", "1/minute", "tool", "alice", "analyze_repository")
    caller = bucket("caller", "3/minute", "calls", "alice")
    assert await limiter.acquire([tool, caller]) is None  # tool 1/1, caller 1/3
    refusal = await limiter.acquire([tool, caller])
    assert refusal is not None
    assert refusal.bucket.scope == "tool:analyze_repository"
    assert await limiter.acquire([caller]) is None
    assert await limiter.acquire([caller]) is None
    assert await limiter.acquire([caller]) is not None


async def test_the_refusal_names_the_window_that_is_full(limiter: RateLimiter) -> None:
    caller = bucket("caller", "50/minute;2/hour", "calls", "alice")
    assert await limiter.acquire([caller]) is None
    assert await limiter.acquire([caller]) is None
    refusal = await limiter.acquire([caller])
    assert refusal is not None
    assert refusal.window.amount == 2
    assert refusal.message.startswith("rate limited: at most 2 tool calls per hour; retry after ")
    assert 60 < refusal.retry_after <= 3600  # the hour window's oldest call frees the slot, not the minute's


async def test_redis_keeps_counters_under_the_bastion_prefix_keyed_by_subject(redis: RedisServer) -> None:
    assert redis.command("FLUSHALL").startswith(b"+OK")
    limiter = RedisRateLimiter(redis.url)
    try:
        assert await limiter.acquire([bucket("caller", "5/minute", "calls", "alice%40example.com")]) is None
    finally:
        await limiter.aclose()
    keys = redis.command("KEYS", "*").decode()
    assert "mcp-bastion:LIMITER/mcp-bastion/calls/alice%40example.com/5/1/minute" in keys
    assert not limiter.degraded
    assert limiter.storage_errors == 0


async def test_two_limiters_on_one_redis_share_counters_as_two_instances_would(redis: RedisServer) -> None:
    assert redis.command("FLUSHALL").startswith(b"+OK")
    first, second = RedisRateLimiter(redis.url), RedisRateLimiter(redis.url)
    caller = bucket("caller", "2/minute", "calls", "alice")
    try:
        assert await first.acquire([caller]) is None
        assert await second.acquire([caller]) is None
        refusal = await first.acquire([caller])
        assert refusal is not None
        assert refusal.bucket.scope == "caller"
    finally:
        await first.aclose()
        await second.aclose()


async def test_when_redis_stops_limits_go_on_per_instance_and_come_back_shared(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caller = bucket("caller", "2/minute", "calls", "alice")
    with redis_server(tmp_path / "redis", password="s3cret") as server:
        # retry_seconds=0: every request probes Redis while it is down, so the test needs no clock.
        limiter = RedisRateLimiter(server.url, retry_seconds=0)
        try:
            assert await limiter.acquire([caller]) is None
            assert await limiter.acquire([caller]) is None
            assert await limiter.acquire([caller]) is not None  # shared bucket full

            server.stop()
            with caplog.at_level(logging.WARNING, logger="bastion.ratelimit.limiter"):
                # Still answered, still limited: a fresh local bucket of 2, then a refusal.
                assert await limiter.acquire([caller]) is None
                assert await limiter.acquire([caller]) is None
                refusal = await limiter.acquire([caller])
            assert refusal is not None
            assert refusal.bucket.scope == "caller"
            assert limiter.degraded
            assert limiter.storage_errors == 3
            errors = [record for record in caplog.records if record.levelno == logging.ERROR]
            assert len(errors) == 1, "one ERROR per outage, not one per request"
            message = errors[0].getMessage()
            assert f"rate-limit store redis://:***@127.0.0.1:{server.port}/0 failed (ConnectionError" in message
            assert "limiting per instance until it answers again" in message
            assert "s3cret" not in caplog.text

            server.start()  # same port, empty: Redis lost its counters with the restart
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="bastion.ratelimit.limiter"):
                assert await limiter.acquire([caller]) is None
            assert not limiter.degraded
            assert "answers again: limits are shared again" in caplog.text
            assert b"LIMITER" in server.command("KEYS", "*"), "the call after recovery was counted in Redis"
        finally:
            await limiter.aclose()


def test_urls_lose_their_password_in_logs() -> None:
    assert redacted_url("rediss://default:hunter2@cache.example:6380/0") == "rediss://default:***@cache.example:6380/0"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("url", ["memcached://127.0.0.1:11211", "mongodb://db/x", "127.0.0.1:6379"])
def test_an_unsupported_store_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"rate_limit.storage_url: .* is not a supported store; use memory://"):
        build_rate_limiter(RateLimitSettings(storage_url=url))


def test_a_password_in_an_unsupported_url_is_not_repeated_in_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build_rate_limiter(RateLimitSettings(storage_url="valkey://user:hunter2@cache:6379"))
    assert "hunter2" not in caught.value.message


def test_a_malformed_redis_url_is_refused_without_its_password() -> None:
    """The limits library's own error repeats the URL, password and all, into the log (found by a probe)."""
    with pytest.raises(ConfigError) as caught:
        build_rate_limiter(RateLimitSettings(storage_url="redis://:hunter2secret@127.0.0.1:notaport/0"))
    assert "hunter2" not in caught.value.message
    assert caught.value.message.startswith("rate_limit.storage_url: 'redis://:***@127.0.0.1:notaport/0' is not a")


async def test_a_wrong_redis_password_is_reported_at_start_up_not_at_the_first_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caller = bucket("caller", "1/minute", "calls", "alice")
    with redis_server(tmp_path / "redis", password="s3cret") as server:
        right = RedisRateLimiter(server.url)
        wrong = RedisRateLimiter(server.url.replace(":s3cret@", ":wrong-password@"))
        try:
            with caplog.at_level(logging.WARNING, logger="bastion.ratelimit.limiter"):
                await right.probe()
                assert not right.degraded
                assert caplog.records == []
                await wrong.probe()
            assert wrong.degraded
            errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
            assert len(errors) == 1
            assert f"rate-limit store redis://:***@127.0.0.1:{server.port}/0 failed (" in errors[0]
            assert "limiting per instance until it answers again" in errors[0]
            assert "wrong-password" not in caplog.text
            assert "s3cret" not in caplog.text
            # requests are still limited, on this instance's counters, and the next one logs nothing new
            assert await wrong.acquire([caller]) is None
            assert await wrong.acquire([caller]) is not None
            assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
        finally:
            await right.aclose()
            await wrong.aclose()
