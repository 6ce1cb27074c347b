"""The set of mirrored repositories: one JSON file, `<data_dir>/repositories.json`.

Writers (the CLI, the server's scheduled sync) take an fcntl lock, re-read the file, change it and replace it
atomically (temp file + rename), so two `bastion repo add` runs never lose each other's entry. A running server
re-reads the file when its stat signature changes, checked at most once per `check_interval` seconds: one
`stat()` per second on the request path, one small JSON parse per change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bastion.errors import ConfigError, InvalidInput, NotFound
from bastion.repos.names import validate_repo_name
from bastion.repos.types import RepoInfo
from bastion.store.db import ensure_private_dir

__all__ = [
    "REGISTRY_FILE",
    "Registry",
    "RepoRecord",
    "mirror_path",
    "name_from_url",
    "new_record",
    "validate_remote_url",
    "worktree_root",
]

REGISTRY_FILE = "repositories.json"
_ALLOWED_SCHEMES = ("https", "http", "ssh", "git", "file")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)$")


@dataclass(frozen=True, slots=True)
class RepoRecord:
    """One registered repository as stored in the registry file."""

    name: str
    url: str
    default_branch: str | None
    added_at: datetime
    last_sync_at: datetime | None = None
    last_sync_error: str | None = None
    head_sha: str | None = None

    def to_info(self) -> RepoInfo:
        return RepoInfo(
            name=self.name,
            url=self.url,
            default_branch=self.default_branch,
            last_sync_at=self.last_sync_at,
            last_sync_error=self.last_sync_error,
            head_sha=self.head_sha,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("added_at", "last_sync_at"):
            value = data[key]
            data[key] = value.isoformat() if isinstance(value, datetime) else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepoRecord:
        def when(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        return cls(
            name=str(data["name"]),
            url=str(data["url"]),
            default_branch=data.get("default_branch"),
            added_at=when("added_at") or datetime.fromtimestamp(0, UTC),
            last_sync_at=when("last_sync_at"),
            last_sync_error=data.get("last_sync_error"),
            head_sha=data.get("head_sha"),
        )


def mirror_path(data_dir: Path, name: str) -> Path:
    """`<data_dir>/mirrors/<owner>/<repo>.git`, lowercased so `Org/Repo` and `org/repo` share one mirror."""
    *parents, last = validate_repo_name(name).lower().split("/")
    return data_dir.joinpath("mirrors", *parents, f"{last}.git")


def worktree_root(data_dir: Path, name: str) -> Path:
    """`<data_dir>/worktrees/<owner>/<repo>`: holds one checkout per SHA plus the `current` link."""
    return data_dir.joinpath("worktrees", *validate_repo_name(name).lower().split("/"))


def validate_remote_url(raw: str) -> str:
    """A fetchable URL without credentials, or a local path (returned absolute)."""
    url = raw.strip()
    if not url:
        raise InvalidInput("repository URL is empty")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url) or " " in url:
        raise InvalidInput("repository URL contains whitespace or control characters")
    if url.startswith("-"):
        raise InvalidInput(f"repository URL {url!r} starts with '-' (looks like an option)")
    if "::" in url.split("/", 1)[0]:
        raise InvalidInput(f"repository URL {url!r} uses a '<transport>::' remote helper, which is not allowed")
    if "://" in url:
        return _validate_scheme_url(url)
    scp = _SCP_LIKE.match(url)
    if scp is not None and not url.startswith((".", "/", "~")):
        if scp["host"].startswith("-"):
            raise InvalidInput(f"repository URL {url!r} has a host starting with '-' (looks like an option)")
        return url  # user@host:path, git's scp-like ssh syntax; a user name alone is not a credential
    path = Path(url).expanduser()
    return str(path.resolve())


def _validate_scheme_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        allowed = ", ".join(_ALLOWED_SCHEMES)
        raise InvalidInput(f"repository URL scheme {parts.scheme!r} is not allowed; use one of {allowed} or a path")
    has_credentials = parts.password is not None or (scheme in ("https", "http") and parts.username is not None)
    if has_credentials:
        raise InvalidInput(
            "repository URL contains credentials; give the plain URL (e.g. https://github.com/org/repo.git): "
            "credentials come from the configured credential helper, never from the URL or the registry"
        )
    if scheme != "file" and not parts.hostname:
        raise InvalidInput(f"repository URL {url!r} has no host")
    if (parts.hostname or "").startswith("-"):
        raise InvalidInput(f"repository URL {url!r} has a host starting with '-' (looks like an option)")
    return url


def name_from_url(url: str) -> str:
    """`owner/repo` from the last two path segments of a URL or path, without `.git`."""
    path = urlsplit(url).path if "://" in url else url.split(":", 1)[-1] if _SCP_LIKE.match(url) else url
    segments = [segment for segment in path.rstrip("/").split("/") if segment]
    if len(segments) < 2:
        raise InvalidInput(f"cannot derive 'owner/repo' from {url!r}: pass --name owner/repo")
    owner, repo = segments[-2], segments[-1].removesuffix(".git")
    return validate_repo_name(f"{owner}/{repo}")


def _now() -> datetime:
    return datetime.now(UTC)


class Registry:
    """Registered repositories, backed by the JSON file; safe for several processes."""

    def __init__(self, data_dir: Path, *, check_interval: float = 1.0) -> None:
        self.data_dir = data_dir
        self.path = data_dir / REGISTRY_FILE
        self._check_interval = check_interval
        self._next_check = 0.0
        self._signature: tuple[int, int, int] | None = None
        self._records: dict[str, RepoRecord] = {}  # lowercased name -> record

    # -- reading -----------------------------------------------------------------------------------------

    def records(self) -> list[RepoRecord]:
        """Every registered repository, sorted by name (case-insensitively)."""
        self._maybe_reload()
        return sorted(self._records.values(), key=lambda record: record.name.lower())

    def find(self, name: str) -> RepoRecord | None:
        self._maybe_reload()
        return self._records.get(name.lower())

    def get(self, name: str) -> RepoRecord:
        record = self.find(name)
        if record is None:
            raise NotFound(f"repository {name!r} is not registered (see `bastion repo list`)")
        return record

    def mirror_path(self, name: str) -> Path:
        return mirror_path(self.data_dir, self.get(name).name)

    def _maybe_reload(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_check:
            return
        self._next_check = now + self._check_interval
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._signature, self._records = None, {}
            return
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature != self._signature:
            self._records = self._read_file()
            self._signature = signature

    def _read_file(self) -> dict[str, RepoRecord]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"repository registry {self.path} is unreadable: {exc}") from exc
        entries = raw.get("repositories", []) if isinstance(raw, dict) else []
        try:
            records = [RepoRecord.from_json(entry) for entry in entries if isinstance(entry, dict)]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"repository registry {self.path} has a malformed entry: {exc!r}") from exc
        return {record.name.lower(): record for record in records}

    # -- writing -----------------------------------------------------------------------------------------

    def add(self, record: RepoRecord) -> RepoRecord:
        validate_repo_name(record.name)
        with self._locked() as records:
            existing = records.get(record.name.lower())
            if existing is not None:
                raise InvalidInput(f"repository {existing.name!r} is already registered (url {existing.url})")
            records[record.name.lower()] = record
        return record

    def update(self, name: str, **changes: Any) -> RepoRecord:
        """Change fields of one record (e.g. `last_sync_at=...`), re-reading the file under the lock first."""
        with self._locked() as records:
            current = records.get(name.lower())
            if current is None:
                raise NotFound(f"repository {name!r} is not registered (see `bastion repo list`)")
            updated = replace(current, **changes)
            records[name.lower()] = updated
        return updated

    def remove(self, name: str) -> RepoRecord:
        with self._locked() as records:
            removed = records.pop(name.lower(), None)
            if removed is None:
                raise NotFound(f"repository {name!r} is not registered (see `bastion repo list`)")
        return removed

    @contextlib.contextmanager
    def _locked(self) -> Generator[dict[str, RepoRecord]]:
        """Hold the writer lock, yield the file's current records for changing, then write them atomically."""
        ensure_private_dir(self.data_dir)
        lock_path = self.path.with_name(REGISTRY_FILE + ".lock")
        with lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                records = self._read_file()
                yield records
                self._write_file(records)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        self._maybe_reload(force=True)

    def _write_file(self, records: dict[str, RepoRecord]) -> None:
        ordered = sorted(records.values(), key=lambda record: record.name.lower())
        payload = json.dumps({"version": 1, "repositories": [r.to_json() for r in ordered]}, indent=2)
        fd, temp_name = tempfile.mkstemp(prefix=".repositories.", suffix=".tmp", dir=self.data_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise


def new_record(name: str, url: str, default_branch: str | None) -> RepoRecord:
    return RepoRecord(name=name, url=url, default_branch=default_branch, added_at=_now())
