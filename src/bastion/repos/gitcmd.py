"""Every git invocation goes through here: a hardened environment, a timeout that kills the whole process
group, and output caps.

Rules the callers follow (and reviewers check): caller-supplied values only ever after `--`, attached to an
option with `=`, or on stdin; revisions are only validated SHAs, never a caller's ref string.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bastion.errors import Unavailable

__all__ = [
    "PARSE_IN_THREAD",
    "GitResult",
    "git_argv",
    "git_env",
    "git_executable",
    "kill_process_tree",
    "parse_output",
    "run_git",
    "spawn",
    "spawn_git",
]

# Config that must hold for every command, whatever the repository or the machine says.
_HARDENING_CONFIG = (
    "protocol.ext.allow=never",
    "core.quotepath=off",
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "credential.interactive=never",
)
# Inherited variables that could redirect git elsewhere (GIT_DIR, GIT_INDEX_FILE, GIT_CONFIG_*...) are dropped;
# these few are kept because ssh transport needs them.
_KEEP_GIT_VARS = ("GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT")
_STDERR_CAP = 64 * 1024


@functools.cache
def git_executable() -> str:
    return shutil.which("git") or "git"


@functools.cache
def _base_env() -> tuple[tuple[str, str], ...]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_") or key in _KEEP_GIT_VARS}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_LITERAL_PATHSPECS="1",  # paths are file names, never pathspec magic like ':(top)' or globs
        GIT_NO_REPLACE_OBJECTS="1",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_ASKPASS="/bin/false",
        SSH_ASKPASS="/bin/false",
        LC_ALL="C",
        LANG="C",
    )
    return tuple(sorted(env.items()))


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every git child runs with."""
    env = dict(_base_env())
    if extra:
        env.update(extra)
    return env


def git_argv(git_dir: Path | None, args: Sequence[str], *, config: Sequence[str] = ()) -> list[str]:
    """`git [--git-dir=DIR] -c ... --no-pager <args>`."""
    argv = [git_executable()]
    if git_dir is not None:
        argv.append(f"--git-dir={git_dir}")
    for item in (*_HARDENING_CONFIG, *config):
        argv += ["-c", item]
    argv.append("--no-pager")
    argv.extend(args)
    return argv


@dataclass(frozen=True, slots=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False  # stdout hit `max_output` and the process was stopped

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def error_text(self) -> str:
        return self.stderr.decode("utf-8", "replace").strip()


async def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: bool = False,
    buffer_limit: int = 2**16,
) -> asyncio.subprocess.Process:
    """Start a child in its own process group (so a timeout can kill it and anything it started).
    `buffer_limit` is the StreamReader limit: reading stops while twice that much is buffered, so a reader of
    large objects wants it large (fewer pause/resume cycles)."""
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env if env is not None else git_env(),
            start_new_session=True,
            limit=buffer_limit,
        )
    except OSError as exc:
        raise Unavailable(f"cannot start {argv[0]}: {exc}") from exc


async def spawn_git(
    git_dir: Path | None,
    args: Sequence[str],
    *,
    config: Sequence[str] = (),
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: bool = False,
    buffer_limit: int = 2**16,
) -> asyncio.subprocess.Process:
    return await spawn(
        git_argv(git_dir, args, config=config), cwd=cwd, env=git_env(env), stdin=stdin, buffer_limit=buffer_limit
    )


async def kill_process_tree(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group, drain what it left in the stdout pipe, and reap it.

    The drain matters: asyncio only reports a process as finished once its pipes are closed, and a reader that
    stopped early (a truncated read, a search at max_results) left the pipe paused, so `wait()` alone would
    hang. The writer is dead, so at most a pipe buffer's worth is left to read. `os.killpg` is used rather than
    `process.kill()`, whose `Popen.poll()` would reap the child behind asyncio's back."""
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            if process.stdout is not None:
                while await process.stdout.read(65536):
                    pass
            await process.wait()


async def _read_capped(stream: asyncio.StreamReader, limit: int | None) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return b"".join(chunks), False
        if limit is not None and total + len(chunk) > limit:
            chunks.append(chunk[: limit - total])
            return b"".join(chunks), True
        chunks.append(chunk)
        total += len(chunk)


async def _read_stderr(stream: asyncio.StreamReader, on_line: Callable[[str], None] | None) -> bytes:
    """Collect stderr (capped), feeding progress lines (git ends them with CR or LF) to `on_line`."""
    kept = bytearray()
    pending = b""
    while True:
        chunk = await stream.read(4096)
        if not chunk:
            break
        if len(kept) < _STDERR_CAP:
            kept += chunk[: _STDERR_CAP - len(kept)]
        if on_line is None:
            continue
        pending += chunk
        *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
        for line in lines:
            if line:
                on_line(line.decode("utf-8", "replace"))
    return bytes(kept)


_Parsed = TypeVar("_Parsed")

# Bytes of git output above which it is parsed in a worker thread. Parsing costs ~10 µs per record (a file of a
# diff, an entry of a listing), so a 200,000-file commit or tree parsed on the event loop stalls every other
# caller for seconds; below this size the thread hand-off would cost more than it saves.
PARSE_IN_THREAD = 256 * 1024


async def parse_output(parse: Callable[[bytes], _Parsed], output: bytes) -> _Parsed:
    """`parse(output)`, off the event loop when the output is large. `parse` must be pure (no shared state)."""
    if len(output) > PARSE_IN_THREAD:
        return await asyncio.to_thread(parse, output)
    return parse(output)


def _gist(stderr: str, returncode: int) -> str:
    """The line of git's complaint that says what went wrong: its last `fatal:` or `error:` line (the last line
    alone can be the tail of a sentence, "and the repository exists."), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    verdicts = [line for line in lines if line.startswith(("fatal:", "error:"))]
    if verdicts:
        return verdicts[-1]
    return lines[-1] if lines else f"exit status {returncode}"


async def run_git(
    git_dir: Path | None,
    args: Sequence[str],
    *,
    time_limit: float,
    stdin: bytes | None = None,
    max_output: int | None = None,
    ok_returncodes: Sequence[int] = (0,),
    config: Sequence[str] = (),
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
) -> GitResult:
    """Run one git command to completion. A return code outside `ok_returncodes` or a timeout raises
    `Unavailable` (naming the command and git's own message); output beyond `max_output` stops the command
    and sets `truncated`."""
    process = await spawn_git(git_dir, args, config=config, cwd=cwd, env=env, stdin=stdin is not None)
    assert process.stdout is not None
    assert process.stderr is not None
    command = f"git {args[0]}" if args else "git"
    stderr_task = asyncio.ensure_future(_read_stderr(process.stderr, on_stderr_line))
    try:
        async with asyncio.timeout(time_limit):
            if stdin is not None:
                assert process.stdin is not None
                process.stdin.write(stdin)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await process.stdin.drain()
                process.stdin.close()
            stdout, truncated = await _read_capped(process.stdout, max_output)
            if truncated:
                await kill_process_tree(process)
            stderr = await stderr_task
            returncode = await process.wait()
    except TimeoutError:
        await kill_process_tree(process)
        stderr_task.cancel()
        raise Unavailable(f"{command} did not finish within {time_limit:g} s") from None
    except BaseException:
        await kill_process_tree(process)
        stderr_task.cancel()
        raise
    if truncated:
        return GitResult(returncode, stdout, stderr, truncated=True)
    if returncode not in ok_returncodes:
        raise Unavailable(f"{command} failed: {_gist(stderr.decode('utf-8', 'replace'), returncode)}")
    return GitResult(returncode, stdout, stderr)
