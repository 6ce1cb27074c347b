"""Code search: ripgrep over the default branch's worktree, `git grep` at any other commit.

Ripgrep on a checked-out tree is several times faster than `git grep <sha>` (FACTS.md: 31-42 ms vs 177 ms on
git/git), so it is used whenever the commit asked for is the live worktree's. Either way results stream in,
only files for which `allow_path(path)` is true count, the process is stopped at `max_results` (+1 to know that
more exist) or at the time budget, and long lines are clipped around the match. Results are in path order
(`--sort=path` costs ripgrep its parallelism but makes answers repeatable).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import shutil
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from bastion.errors import InvalidInput, Unavailable
from bastion.repos.gitcmd import kill_process_tree, spawn, spawn_git
from bastion.repos.globs import glob_matcher
from bastion.repos.handle import MirrorHandle
from bastion.repos.types import SearchHit, SearchQuery, SearchResult
from bastion.repos.worktree import current_worktree

__all__ = ["GUARD_FETCH_FACTOR", "MAX_LINE_CHARS", "MAX_PATTERN_LENGTH", "ripgrep_executable", "search"]

_T = TypeVar("_T")

MAX_LINE_CHARS = 300
MAX_PATTERN_LENGTH = 1000
# search_code runs a search again for up to this many times its max_results when the content guard left hits out,
# so those never take places among the answer's first matches (bastion.tools.search); backends cap at this multiple.
GUARD_FETCH_FACTOR = 4
MAX_FILE_SIZE = "2M"  # minified bundles and data dumps are not code anyone searches
_MAX_JSON_LINE = 16 * 1024 * 1024  # one rg message: a matching line of a file below MAX_FILE_SIZE, escaped
_MAX_GREP_LINE = 64 * 1024


@functools.cache
def ripgrep_executable() -> str | None:
    """`rg` from this virtualenv (the `ripgrep` wheel ships it), else from PATH."""
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file():
        return str(beside)
    return shutil.which("rg")


def check_pattern(query: SearchQuery) -> None:
    """What every search backend refuses in a pattern."""
    if not query.pattern:
        raise InvalidInput("search pattern is empty")
    if len(query.pattern) > MAX_PATTERN_LENGTH:
        raise InvalidInput(f"search pattern is longer than {MAX_PATTERN_LENGTH} characters")
    if any(char in query.pattern for char in "\0\n\r"):
        raise InvalidInput("search pattern cannot contain NUL or line breaks (matches are line by line)")


def _check_query(query: SearchQuery) -> None:
    check_pattern(query)
    glob = query.path_glob
    if glob is not None and (glob.startswith("!") or any(ord(char) < 0x20 for char in glob) or len(glob) > 500):
        raise InvalidInput(f"path_glob {glob!r} is not accepted: no leading '!' (negation) or control characters")


def clip_line(line: str, start: int) -> str:
    """At most MAX_LINE_CHARS of `line`, keeping the match that begins at `start` in view."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    begin = max(0, min(start - MAX_LINE_CHARS // 3, len(line) - MAX_LINE_CHARS))
    clipped = line[begin : begin + MAX_LINE_CHARS]
    return ("…" if begin > 0 else "") + clipped + ("…" if begin + MAX_LINE_CHARS < len(line) else "")


class _Collector:
    """Applies allow_path and the path glob, counts hits, notices when there are more than `limit`."""

    def __init__(self, allow_path: Callable[[str], bool], limit: int, path_glob: str | None) -> None:
        self._allow_path = allow_path
        self._glob = glob_matcher(path_glob) if path_glob else None
        self._allowed: dict[str, bool] = {}
        self.limit = limit
        self.hits: list[SearchHit] = []
        self.truncated = False

    def allowed(self, path: str) -> bool:
        verdict = self._allowed.get(path)
        if verdict is None:
            verdict = (self._glob is None or self._glob(path)) and bool(self._allow_path(path))
            self._allowed[path] = verdict
        return verdict

    def add(self, path: str, line_number: int, line: str) -> bool:
        """Record a hit; True when the search should stop."""
        if len(self.hits) >= self.limit:
            self.truncated = True
            return True
        self.hits.append(SearchHit(path, line_number, line))
        return False


async def _lines(stream: asyncio.StreamReader, max_line: int) -> AsyncIterator[bytes]:
    """Lines without their newline; a line longer than `max_line` is cut there (the rest is skipped)."""
    pending = bytearray()
    skipping = False
    while True:
        chunk = await stream.read(262144)
        if not chunk:
            break
        pending += chunk
        # A read of buffered data does not suspend: give the event loop (and the search's time limit) a turn per
        # chunk, whatever the lines cost to judge.
        await asyncio.sleep(0)
        while True:
            newline = pending.find(b"\n")
            if newline < 0:
                if len(pending) > max_line:
                    if not skipping:
                        yield bytes(pending[:max_line])
                    skipping = True
                    pending.clear()
                break
            line = bytes(pending[:newline])
            del pending[: newline + 1]
            if not skipping:
                yield line[:max_line]
            skipping = False
    if pending and not skipping:
        yield bytes(pending[:max_line])


def _rg_text(value: dict[str, Any]) -> str:
    if "text" in value:
        return str(value["text"])
    return base64.b64decode(value.get("bytes", "")).decode("utf-8", "replace")


def _ripgrep_argv(rg: str, query: SearchQuery) -> list[str]:
    # No --max-columns: ripgrep ignores it in --json mode (checked with 14.1); lines are clipped by `_clip`, and
    # --max-filesize bounds how long one line can be. --no-ignore: a repository's own .ignore/.rgignore files
    # must not hide code from search (git grep does not honour them either).
    argv = [
        rg, "--json", "--no-config", "--no-ignore", "--hidden", "--no-follow", "--sort=path", "--encoding=none",
        "--glob=!.git", f"--max-filesize={MAX_FILE_SIZE}",
        "--case-sensitive" if query.case_sensitive else "--ignore-case",
    ]  # fmt: skip
    if not query.regex:
        argv.append("--fixed-strings")
    if query.path_glob:
        argv.append(f"--glob={query.path_glob}")
    argv.append(f"--regexp={query.pattern}")  # attached: a pattern like `--pre=x` stays a pattern
    return argv


async def _run_ripgrep(rg: str, directory: Path, query: SearchQuery, collector: _Collector) -> str:
    """Feed ripgrep's matches to the collector; returns ripgrep's stderr (for error messages)."""
    process = await spawn(_ripgrep_argv(rg, query), cwd=directory)
    assert process.stdout is not None
    async with _reaped(process) as stderr:
        async for raw in _lines(process.stdout, _MAX_JSON_LINE):
            try:
                message = json.loads(raw)
            except ValueError:
                continue  # a line cut at _MAX_JSON_LINE
            if message.get("type") != "match":
                continue
            data = message["data"]
            path = _rg_text(data["path"])
            if not collector.allowed(path):
                continue
            line = _rg_text(data["lines"])
            submatches = data.get("submatches") or [{"start": 0}]
            line_bytes = line.encode()
            start = len(line_bytes[: submatches[0]["start"]].decode("utf-8", "replace"))
            if collector.add(path, int(data["line_number"]), clip_line(line.rstrip("\r\n"), start)):
                break
        else:
            await process.wait()
    return stderr.decode("utf-8", "replace")


async def _read_all(stream: asyncio.StreamReader, cap: int) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk[: max(0, cap - len(kept))]
    return bytes(kept)


@contextlib.asynccontextmanager
async def _reaped(process: asyncio.subprocess.Process) -> AsyncGenerator[bytearray]:
    """Collect the child's stderr; on leaving, kill the child unless it already exited (stopped early, timed out,
    failed), and always reap it. The yielded buffer holds stderr once the block is left."""
    assert process.stderr is not None
    stderr_task = asyncio.ensure_future(_read_all(process.stderr, 65536))
    collected = bytearray()
    try:
        yield collected
    finally:
        if process.returncode is None:
            await kill_process_tree(process)
        try:
            collected += await stderr_task
        except (asyncio.CancelledError, Exception):
            stderr_task.cancel()


# `git grep -P` needs git built with PCRE; without it, regexes fall back to POSIX extended (-E).
_REGEX_FLAG = ["-P"]


async def _run_git_grep(
    handle: MirrorHandle, commit: str, query: SearchQuery, collector: _Collector
) -> tuple[int | None, str]:
    """Feed git grep's matches to the collector; returns (exit status or None when stopped early, stderr)."""
    # --column: git says where the match starts (for clipping long lines), so the caller's pattern never runs in
    # Python, whose regex dialect differs from git's and backtracks.
    args = ["grep", "-I", "-n", "--column", "--null", "--no-color", "--full-name"]
    if not query.case_sensitive:
        args.append("--ignore-case")
    # `-e` takes the next argument as the pattern whatever it looks like (`--upload-pack=x` included).
    args += [*(_REGEX_FLAG if query.regex else ["-F"]), "-e", query.pattern, commit, "--"]
    process = await spawn_git(handle.git_dir, args)
    assert process.stdout is not None
    prefix = f"{commit}:".encode()
    status: int | None = None
    async with _reaped(process) as stderr:
        async for raw in _lines(process.stdout, _MAX_GREP_LINE):
            # Every hit starts with `<commit>:`; a line that does not is the rest of a file name with a newline in
            # it, whose tail must not pass for a path of its own (`secrets/x\nnotes.txt` is not `notes.txt`).
            if not raw.startswith(prefix):
                continue
            path_bytes, _, rest = raw.removeprefix(prefix).partition(b"\0")
            number, _, rest = rest.partition(b"\0")
            column, _, text = rest.partition(b"\0")
            path = path_bytes.decode("utf-8", "replace")
            if not number.isdigit() or not column.isdigit() or not collector.allowed(path):
                continue
            line = text.decode("utf-8", "replace")
            start = len(text[: int(column) - 1].decode("utf-8", "replace"))  # git counts bytes from 1
            if collector.add(path, int(number), clip_line(line.rstrip("\r\n"), start)):
                break
        else:
            status = await process.wait()
    return status, stderr.decode("utf-8", "replace")


async def _search_with(
    run: Callable[[], Awaitable[_T]], collector: _Collector, time_limit: float, on_timeout: _T
) -> _T:
    try:
        async with asyncio.timeout(time_limit):
            return await run()
    except TimeoutError:
        collector.truncated = True  # the time budget ran out: what was found so far is returned
        return on_timeout


async def search(
    handle: MirrorHandle,
    commit: str,
    query: SearchQuery,
    *,
    time_limit: float,
    allow_path: Callable[[str], bool],
    max_results_cap: int,
) -> SearchResult:
    _check_query(query)
    limit = max(1, min(query.max_results, max_results_cap))
    collector = _Collector(allow_path, limit, query.path_glob)
    worktree = current_worktree(handle.worktree_root)
    rg = ripgrep_executable()
    if rg is not None and worktree is not None and worktree[0] == commit and worktree[1].is_dir():
        directory = worktree[1].resolve()  # pinned now: a swap during the search does not move us
        stderr = await _search_with(lambda: _run_ripgrep(rg, directory, query, collector), collector, time_limit, "")
        if "regex parse error" in stderr or "error parsing" in stderr:
            raise InvalidInput(f"invalid regular expression: {stderr.strip().splitlines()[-1]}")
        return SearchResult(tuple(collector.hits), collector.truncated, "ripgrep")
    status: int | None = None
    stderr = ""
    for _attempt in (1, 2):
        status, stderr = await _search_with(
            lambda: _run_git_grep(handle, commit, query, collector), collector, time_limit, (None, "")
        )
        if status == 128 and query.regex and _REGEX_FLAG == ["-P"] and "PCRE" in stderr.upper():
            _REGEX_FLAG[:] = ["-E"]  # this git has no PCRE: retry with extended regexes
            continue
        break
    if status not in (None, 0, 1):
        last = (stderr.strip().splitlines() or [f"exit status {status}"])[-1].removeprefix("fatal: ")
        if query.pattern in last:
            raise InvalidInput(f"invalid regular expression: {last}")
        raise Unavailable(f"git grep failed in {handle.name}: {last}")
    return SearchResult(tuple(collector.hits), collector.truncated, "git-grep")
