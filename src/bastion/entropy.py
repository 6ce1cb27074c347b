"""Random bytes for identifiers (request ids, audit event ids), taken from the OS in blocks.

Every `os.urandom` call is a `getrandom()` system call, and system calls are dear on the virtual machines this runs
on (several µs each). A request needs two ids, so the bytes come from a 4 KiB block read from the OS once per ~200
requests. They are the OS's random bytes all the same, and none is handed out twice: a forked child starts with an
empty block (`os.register_at_fork`), so two processes never share one.
"""

from __future__ import annotations

import os
import threading

__all__ = ["random_bytes"]

_BLOCK = 4096


class _Pool:
    def __init__(self) -> None:
        self._block = b""
        self._used = 0
        self._lock = threading.Lock()  # ids are also made in worker threads

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._used + count > len(self._block):
                self._block, self._used = os.urandom(max(_BLOCK, count)), 0
            start = self._used
            self._used += count
            return self._block[start : self._used]

    def forget(self) -> None:
        self._block, self._used = b"", 0
        self._lock = threading.Lock()


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.forget)


def random_bytes(count: int) -> bytes:
    """`count` bytes from the OS's random source, never the same bytes twice in this process or its children."""
    return _POOL.take(count)
