"""A long-lived `git cat-file --batch-command` process per repository, driven with asyncio.

One request/response at a time under a lock (the protocol is strictly ordered); pipelined batches of `info`
commands for listings. A process that dies is restarted on the next call (the read is retried once, reads are
idempotent); a timeout kills it and raises `Unavailable`. The cost is one pipe round trip per command
(tens of microseconds) instead of a ~2 ms process start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bastion.errors import Unavailable
from bastion.repos.gitcmd import kill_process_tree, spawn_git

__all__ = ["AmbiguousObjectName", "CatFile", "ObjectInfo"]

_T = TypeVar("_T")
# cat-file only ever sees object ids and `<oid>^{...}` expressions we build; a name that could not be one
# (spaces, newlines) would break the line protocol, so it is refused before writing.
_FORBIDDEN_IN_NAMES = (" ", "\n", "\r", "\0")
# Requests written before reading any answer: small enough that the answers (~60 bytes each) fit in the pipe
# buffer, or git would block writing them while we block writing more requests.
_PIPELINE_BATCH = 512
_READ_BUFFER = 1 << 20  # a 256 KB file arrives without the pipe being paused and resumed on the way


class AmbiguousObjectName(Exception):
    """An abbreviated object id matches more than one object."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    oid: str
    type: str  # blob, tree, commit, tag
    size: int


class _ProcessGone(Exception):
    """The cat-file process exited or its pipes broke mid-request."""


class CatFile:
    """`info` / `contents` against one repository's object database."""

    def __init__(self, git_dir: Path, *, timeout: float) -> None:
        self.git_dir = git_dir
        self.timeout = timeout
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The running process's id (None before the first call); tests use it to kill the process."""
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def info(self, name: str) -> ObjectInfo | None:
        """Type and size of an object (None when missing). Raises AmbiguousObjectName for an ambiguous prefix."""
        return (await self.infos([name]))[0]

    async def infos(self, names: Sequence[str]) -> list[ObjectInfo | None]:
        """`info` for many objects in pipelined writes; order preserved."""
        for name in names:
            _check_name(name)
        if len(names) > _PIPELINE_BATCH:
            answers: list[ObjectInfo | None] = []
            for start in range(0, len(names), _PIPELINE_BATCH):
                answers += await self.infos(names[start : start + _PIPELINE_BATCH])
            return answers
        if not names:
            return []
        payload = "".join(f"info {name}\n" for name in names).encode()

        async def exchange(process: asyncio.subprocess.Process) -> list[ObjectInfo | None]:
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(payload)
            await process.stdin.drain()
            answers = [_parse_header(await process.stdout.readline()) for _ in names]
            return [_no_ambiguity(answer) for answer in answers]  # raised only after every answer was read

        return await self._call(exchange)

    async def read(self, oid: str, max_bytes: int | None = None) -> tuple[ObjectInfo, bytes] | None:
        """The object's bytes (all of them, or the first `max_bytes`). Whatever git writes has to be drained,
        so callers keep large blobs away from here (see `ObjectReader`)."""
        _check_name(oid)
        command = f"contents {oid}\n".encode()

        async def exchange(process: asyncio.subprocess.Process) -> tuple[ObjectInfo, bytes] | None:
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(command)
            await process.stdin.drain()
            info = _no_ambiguity(_parse_header(await process.stdout.readline()))
            if info is None:
                return None
            data = await process.stdout.readexactly(info.size + 1)  # content + LF
            content = data[: info.size] if max_bytes is None else data[: min(info.size, max_bytes)]
            return info, content

        return await self._call(exchange)

    async def aclose(self) -> None:
        """Stop the process. Requests already waiting for the lock are served first (the lock is FIFO): after a
        sync the old reader is retired this way while reads that started on it finish."""
        async with self._lock:
            self._closed = True
            await self._stop()

    async def _call(self, exchange: Callable[[asyncio.subprocess.Process], Awaitable[_T]]) -> _T:
        async with self._lock:
            for attempt in (1, 2):
                process = await self._ensure_process()
                try:
                    async with asyncio.timeout(self.timeout):
                        return await exchange(process)
                except TimeoutError:
                    await self._stop()
                    message = f"reading objects of {self.git_dir.name} timed out after {self.timeout:g} s"
                    raise Unavailable(message) from None
                except (_ProcessGone, asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError) as exc:
                    await self._stop()
                    if attempt == 2:
                        raise Unavailable(f"git cat-file for {self.git_dir.name} keeps failing: {exc!r}") from exc
                except AmbiguousObjectName:
                    raise
                except BaseException:
                    # Cancelled mid-exchange: the protocol position is unknown, so the process cannot be reused.
                    await self._stop()
                    raise
            raise AssertionError("unreachable")

    async def _ensure_process(self) -> asyncio.subprocess.Process:
        if self._closed:
            raise Unavailable(f"object reader for {self.git_dir.name} is closed")
        process = self._process
        if process is not None and process.returncode is None:
            return process
        if process is not None:
            await self._stop()
        if not self.git_dir.is_dir():
            raise Unavailable(f"mirror {self.git_dir} is missing")
        self._process = await spawn_git(
            self.git_dir, ["cat-file", "--batch-command"], stdin=True, buffer_limit=_READ_BUFFER
        )
        return self._process

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.close()
        await kill_process_tree(process)


def _check_name(name: str) -> None:
    if not name or any(char in name for char in _FORBIDDEN_IN_NAMES):
        raise ValueError(f"not an object name: {name!r}")


def _no_ambiguity(answer: ObjectInfo | str | None) -> ObjectInfo | None:
    if isinstance(answer, str):
        raise AmbiguousObjectName(answer)
    return answer


def _parse_header(line: bytes) -> ObjectInfo | str | None:
    """ObjectInfo, None for a missing object, or the name itself when it is ambiguous."""
    if not line.endswith(b"\n"):
        raise _ProcessGone("cat-file closed its output")
    parts = line[:-1].decode("utf-8", "replace").split(" ")
    if len(parts) == 3 and parts[2].isdigit():
        return ObjectInfo(parts[0], parts[1], int(parts[2]))
    if parts[-1] == "missing":
        return None
    if parts[-1] == "ambiguous":
        return parts[0]
    raise _ProcessGone(f"unexpected cat-file answer {line[:200]!r}")
