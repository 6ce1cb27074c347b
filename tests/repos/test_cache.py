"""The LRU maps: eviction order, the entry-count bound and the byte budget."""

from __future__ import annotations

from bastion.repos.cache import LRU, ByteLRU


def test_lru_evicts_the_least_recently_used() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)
    cache.clear()
    assert (len(cache), cache.get("a")) == (0, None)


def test_byte_lru_keeps_to_its_budget_oldest_out_first() -> None:
    cache = ByteLRU(budget=10, max_entry=8)
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # "b" is now the least recent
    cache.put("c", b"cccc")  # 12 bytes: "b" goes
    assert (cache.get("b"), cache.get("a"), cache.get("c"), cache.total, len(cache)) == (None, b"aaaa", b"cccc", 8, 2)
    cache.put("d", b"dddddddd")  # 16 bytes: both older entries go
    assert (cache.get("a"), cache.get("c"), cache.get("d"), cache.total) == (None, None, b"dddddddd", 8)


def test_byte_lru_refuses_large_entries_and_counts_replacements_once() -> None:
    cache = ByteLRU(budget=100, max_entry=8)
    cache.put("big", b"x" * 9)  # larger than one entry may be: not kept, nothing evicted for it
    assert (cache.get("big"), cache.total) == (None, 0)
    cache.put("a", b"12345678")
    cache.put("a", b"123")  # the same key again: the total follows the new value
    assert (cache.get("a"), cache.total, len(cache)) == (b"123", 3, 1)
    cache.put("empty", b"")
    assert cache.get("empty") == b""  # an empty file is a value, not a miss
    cache.clear()
    assert (cache.total, len(cache), cache.get("a")) == (0, 0, None)


def test_byte_lru_with_no_budget_keeps_nothing() -> None:
    cache = ByteLRU(budget=0, max_entry=256 * 1024)
    cache.put("a", b"a")
    cache.put("empty", b"")
    assert (cache.get("a"), cache.get("empty"), cache.total, len(cache)) == (None, None, 0, 0)
