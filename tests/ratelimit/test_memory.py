"""The in-process moving-window storage, driven by a clock the test moves (no sleeping)."""

from __future__ import annotations

import pytest
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter

from bastion.ratelimit.memory import LocalMovingWindowStorage

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_window_holds_at_most_its_limit_and_frees_a_slot_when_the_oldest_call_leaves_it() -> None:
    clock = Clock()
    storage = LocalMovingWindowStorage(clock=clock)
    assert await storage.acquire_entry("k", 2, 60)
    clock.now += 10
    assert await storage.acquire_entry("k", 2, 60)
    assert not await storage.acquire_entry("k", 2, 60)
    assert await storage.get_moving_window("k", 2, 60) == (1_000_000.0, 2)
    clock.now = 1_000_000.0 + 59.999
    assert not await storage.acquire_entry("k", 2, 60)
    clock.now = 1_000_000.0 + 60  # exactly when the strategy said a slot frees (what Retry-After promises)
    assert await storage.acquire_entry("k", 2, 60), "the first call left the window"
    assert await storage.get_moving_window("k", 2, 60) == (1_000_010.0, 2)


async def test_an_empty_window_starts_now() -> None:
    clock = Clock()
    storage = LocalMovingWindowStorage(clock=clock)
    assert await storage.get_moving_window("never-used", 5, 60) == (clock.now, 0)
    assert not await storage.acquire_entry("k", 2, 60, amount=3), "more than the limit at once is refused"


async def test_limits_strategy_reports_when_the_next_slot_frees() -> None:
    clock = Clock()
    strategy = MovingWindowRateLimiter(LocalMovingWindowStorage(clock=clock))
    item = parse("2/minute")
    assert await strategy.hit(item, "alice")
    clock.now += 15
    assert await strategy.hit(item, "alice")
    assert not await strategy.test(item, "alice")
    stats = await strategy.get_window_stats(item, "alice")
    assert stats.remaining == 0
    assert stats.reset_time == 1_000_000.0 + 60


async def test_idle_keys_are_forgotten_by_the_periodic_sweep_only() -> None:
    clock = Clock()
    storage = LocalMovingWindowStorage(clock=clock, sweep_seconds=300)
    for caller in range(100):
        assert await storage.acquire_entry(f"caller-{caller}", 10, 60)
    clock.now += 120  # every window is empty now, but nothing has swept yet
    assert storage.keys() == 100
    clock.now += 200  # past the sweep time: the next use sweeps
    assert await storage.acquire_entry("active", 10, 60)
    assert storage.keys() == 1


async def test_a_key_still_in_use_survives_the_sweep() -> None:
    clock = Clock()
    storage = LocalMovingWindowStorage(clock=clock, sweep_seconds=30)
    assert await storage.acquire_entry("hourly", 1, 3600)
    clock.now += 31
    assert await storage.acquire_entry("other", 1, 60)
    assert storage.keys() == 2
    assert not await storage.acquire_entry("hourly", 1, 3600), "its call is still inside the hour"


async def test_fixed_window_counters_expire_and_reset() -> None:
    clock = Clock()
    storage = LocalMovingWindowStorage(clock=clock)
    assert await storage.incr("c", 60) == 1
    assert await storage.incr("c", 60, amount=2) == 3
    assert await storage.get("c") == 3
    assert await storage.get_expiry("c") == clock.now + 60
    clock.now += 60
    assert await storage.get("c") == 0
    assert await storage.incr("c", 60) == 1
    await storage.clear("c")
    assert await storage.get("c") == 0
    assert await storage.acquire_entry("k", 1, 60)
    assert await storage.reset() == 1
    assert await storage.check()
