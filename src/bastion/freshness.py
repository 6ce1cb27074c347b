"""A check made once per event-loop iteration and shared by the requests handled in it.

Some checks ask the operating system whether something changed: has another process committed to the key store
(a revocation), has a sync replaced a mirror's refs. Each costs system calls on every request. Requests whose
work runs in the same loop iteration may share one answer without losing anything a caller can observe: a
request sent after a change was complete has its first step run in a later iteration than the one whose epoll
saw it arrive. An answer is forgotten by a callback queued when it was made (which runs before anything that
iteration schedules after it) and is never used on another loop, nor outside one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerIteration"]

T = TypeVar("T")


class PerIteration(Generic[T]):
    """`get(compute)` is `compute()`, remembered until the running loop's current iteration ends."""

    __slots__ = ("_loop", "_value")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def get(self, compute: Callable[[], T]) -> T:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return compute()
        if self._loop is loop and self._value is not None:
            return self._value
        value = compute()
        if value is not None:
            self._loop, self._value = loop, value
            loop.call_soon(self.forget)
        return value

    def forget(self) -> None:
        self._loop, self._value = None, None
