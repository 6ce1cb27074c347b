"""PerIteration: one answer per event-loop iteration, never carried to another iteration or loop."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bastion.freshness import PerIteration


@pytest.mark.anyio
async def test_requests_in_one_iteration_share_an_answer_and_the_next_iteration_asks_again() -> None:
    numbers = itertools.count(1)
    cache: PerIteration[int] = PerIteration()
    assert [cache.get(lambda: next(numbers)) for _ in range(3)] == [1, 1, 1]
    await asyncio.sleep(0)
    assert cache.get(lambda: next(numbers)) == 2


@pytest.mark.anyio
async def test_an_answer_made_before_an_io_callback_is_forgotten_before_it_runs() -> None:
    """What makes sharing safe: a callback that I/O schedules after the answer was made (a new request's first
    step) runs after the answer is forgotten."""
    numbers = itertools.count(1)
    cache: PerIteration[int] = PerIteration()
    seen: list[int] = []
    loop = asyncio.get_running_loop()
    assert cache.get(lambda: next(numbers)) == 1
    loop.call_soon(lambda: seen.append(cache.get(lambda: next(numbers))))
    await asyncio.sleep(0.01)
    assert seen == [2]


def test_outside_a_loop_and_on_another_loop_nothing_is_shared() -> None:
    numbers = itertools.count(1)
    cache: PerIteration[int] = PerIteration()
    assert [cache.get(lambda: next(numbers)) for _ in range(2)] == [1, 2]

    async def twice() -> list[int]:
        return [cache.get(lambda: next(numbers)), cache.get(lambda: next(numbers))]

    assert asyncio.run(twice()) == [3, 3]
    assert asyncio.run(twice()) == [4, 4]


@pytest.mark.anyio
async def test_none_is_not_remembered() -> None:
    calls: list[int] = []
    cache: PerIteration[int | None] = PerIteration()

    def compute() -> int | None:
        calls.append(1)
        return None

    cache.get(compute)
    cache.get(compute)
    assert len(calls) == 2
