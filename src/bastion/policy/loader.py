"""Loading the policy file, and keeping it current while the server runs.

`PolicyFile` re-reads the file when its identity changes (inode, size or mtime in nanoseconds), checked at most
every `check_interval` seconds with one `stat()`. Following the path on every check makes both common ways of
updating work: editors that write a new file and rename it over the old one, and Kubernetes ConfigMap volumes
that swap a `..data` symlink. A broken edit never takes the server down: the last good policy keeps serving,
and the problem is logged once and exposed as `last_error` (for `/ready` and `bastion doctor`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from bastion.errors import ConfigError
from bastion.policy.engine import Policy
from bastion.policy.parser import ParsedPolicy, parse_document

__all__ = ["PolicyFile", "load_policy", "parse_policy", "read_policy_text"]

log = logging.getLogger(__name__)

_HOW_TO_CREATE = (
    "create it (start from examples/policy.yaml in the mcp-bastion source, see docs/policy.md) or point "
    "BASTION_POLICY__FILE at an existing policy"
)


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """A compiled Policy from YAML text. Raises ConfigError naming every problem with `source:line`."""
    parsed = parse_document(text, source)
    _raise_on_problems(parsed)
    return Policy(parsed.defaults, parsed.rules, source=source)


def load_policy(path: Path) -> Policy:
    """A compiled Policy from a file. Raises ConfigError when the file is missing, unreadable or invalid."""
    return parse_policy(read_policy_text(path), str(path))


def read_policy_text(path: Path) -> str:
    """The file's text, or a ConfigError that says what to do about it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"policy file {path} does not exist: {_HOW_TO_CREATE}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"policy file {path} is not UTF-8 text: {exc.reason}", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc.strerror or exc}", file=str(path)) from None


def _raise_on_problems(parsed: ParsedPolicy) -> None:
    if not parsed.problems:
        return
    lines = [
        f"{parsed.source}:{p.line}: {p.message}" if p.line else f"{parsed.source}: {p.message}" for p in parsed.problems
    ]
    first = parsed.problems[0]
    message = lines[0] if len(lines) == 1 else f"{parsed.source} has {len(lines)} problems:\n  " + "\n  ".join(lines)
    raise ConfigError(message, file=parsed.source, line=first.line, problems=lines)


def _signature(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class PolicyFile:
    """The policy at `path`, reloaded when the file changes. `current()` is cheap: between checks it returns the
    cached Policy without touching the disk; a check costs one stat(); a reload parses the file (milliseconds) on
    the calling thread. Thread-safe: one reload at a time, readers never wait for it."""

    def __init__(self, path: Path, check_interval: float = 1.0) -> None:
        self.path = path
        self.check_interval = check_interval
        self.last_error: str | None = None
        self._lock = threading.Lock()
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ConfigError(f"policy file {path} does not exist: {_HOW_TO_CREATE}", file=str(path)) from None
        self._policy = load_policy(path)
        self._signature = _signature(stat)
        self._failed_signature: tuple[int, int, int, int] | None = None
        self.loaded_at = time.time()  # wall-clock seconds of the last successful load
        self._checked_at = time.monotonic()

    def current(self) -> Policy:
        now = time.monotonic()
        if now - self._checked_at < self.check_interval:
            return self._policy
        with self._lock:
            if now - self._checked_at >= self.check_interval:
                self._check()
                self._checked_at = time.monotonic()
            return self._policy

    def _check(self) -> None:
        try:
            before = _signature(self.path.stat())
        except OSError as exc:
            self._fail(
                None, f"policy file {self.path} cannot be read ({exc.strerror or exc}); keeping the last good policy"
            )
            return
        if before == self._signature:  # unchanged, or put back exactly as it was after a broken edit
            self.last_error, self._failed_signature = None, None
            return
        if before == self._failed_signature:  # still the same broken file: already logged
            return
        try:
            text = read_policy_text(self.path)
            after = _signature(self.path.stat())
            if after != before:  # written while we read: look again at the next check rather than trust a half
                return
            policy = parse_policy(text, str(self.path))
        except ConfigError as exc:
            self._fail(before, exc.message)
            return
        except OSError as exc:  # the file vanished between stat() and read()
            self._fail(before, f"policy file {self.path} cannot be read ({exc.strerror or exc})")
            return
        except Exception as exc:  # a parser bug must not take the service down either: keep the last good policy
            log.exception("policy file %s could not be parsed", self.path)
            self._fail(before, f"policy file {self.path} could not be parsed ({type(exc).__name__}: {exc})")
            return
        self._policy, self._signature, self._failed_signature = policy, before, None
        self.loaded_at, self.last_error = time.time(), None
        log.info("policy reloaded from %s (%d rules)", self.path, len(policy.rules))

    def _fail(self, signature: tuple[int, int, int, int] | None, message: str) -> None:
        """Log once per change of the file (or of the error), keep serving the last good policy."""
        if message != self.last_error or signature != self._failed_signature:
            log.error("policy reload failed, still serving the policy loaded at %s: %s", _when(self.loaded_at), message)
        self.last_error = message
        self._failed_signature = signature


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
