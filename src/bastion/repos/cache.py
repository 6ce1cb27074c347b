"""Small LRU maps for immutable git facts (trees by oid, listings, ancestry, blob contents): entries never go
stale, they are only evicted to bound memory. `LRU` bounds the number of entries, `ByteLRU` the total size of
its values (blob bytes), so one budget can be shared by every mirror of a server."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["LRU", "ByteLRU"]

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


class ByteLRU:
    """bytes by key, at most `budget` bytes of values in total and none larger than `max_entry` (those are
    not kept: one large file must not push out hundreds of small hot ones). A budget of 0 keeps nothing."""

    def __init__(self, budget: int, max_entry: int) -> None:
        self.budget = budget
        self.max_entry = min(max_entry, budget)
        self.total = 0  # bytes held now
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: bytes) -> None:
        size = len(value)
        if size > self.max_entry or not self.budget:
            return
        items = self._items
        previous = items.pop(key, None)
        if previous is not None:
            self.total -= len(previous)
        items[key] = value
        self.total += size
        while self.total > self.budget:
            _, evicted = items.popitem(last=False)
            self.total -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.total = 0
