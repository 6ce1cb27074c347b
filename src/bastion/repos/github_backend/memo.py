"""Caches of the github backend: a byte-bounded LRU for file contents, and a TTL slot for mutable answers.

Everything addressed by a SHA (trees, blobs, commits, comparisons, pages of history at a commit) never changes, so
it is only evicted to bound memory; branch lists and repository metadata change, so they expire.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["SizedLRU", "TtlCache"]

K = TypeVar("K")
V = TypeVar("V")


class SizedLRU(Generic[K, V]):
    """An LRU bounded by the total `weight(value)` (bytes) of what it holds; one value over the budget is not kept."""

    def __init__(self, budget: int, weight: Callable[[V], int]) -> None:
        self.budget = budget
        self._weight = weight
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.used = 0

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None:
            return None
        self._items.move_to_end(key)
        return found[0]

    def put(self, key: K, value: V) -> V:
        weight = self._weight(value)
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old[1]
        if weight > self.budget:
            return value
        self._items[key] = (value, weight)
        self.used += weight
        while self.used > self.budget:
            _, (_, dropped) = self._items.popitem(last=False)
            self.used -= dropped
        return value

    def __len__(self) -> int:
        return len(self._items)


class TtlCache(Generic[K, V]):
    """Values that are fresh for `seconds` after they were stored (bounded by `capacity` entries)."""

    def __init__(
        self, seconds: float, capacity: int = 1024, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._monotonic = monotonic
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None or self._monotonic() - found[0] >= self.seconds:
            return None
        return found[1]

    def put(self, key: K, value: V) -> V:
        self._items.pop(key, None)
        self._items[key] = (self._monotonic(), value)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()
