"""`BASTION_REPOS__BOOTSTRAP`: mirror the listed repositories at start when they are missing.

It runs in the background so the process answers /health at once (the load balancer keeps it), while /ready
reports "not ready" until every listed repository is mirrored. Repositories already registered are left to the
scheduled sync. A failure (the GitHub App key not put into Secrets Manager yet, GitHub unreachable) is logged,
shown by /ready, and retried with a growing pause (10 s doubling to 5 min) until it succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bastion.config import Settings
from bastion.errors import BastionError, ConfigError, InvalidInput
from bastion.repos.names import validate_repo_name
from bastion.repos.registry import Registry, name_from_url, validate_remote_url
from bastion.repos.sync import add_repository

if TYPE_CHECKING:
    from bastion.github.git_auth import GitRemoteAuth

__all__ = ["Bootstrap", "BootstrapEntry", "bootstrap_entries"]

log = logging.getLogger(__name__)

_CONCURRENCY = 4  # clones at once: enough to overlap network waits, few enough not to starve the server's CPU


@dataclass(frozen=True, slots=True)
class BootstrapEntry:
    name: str
    url: str


def bootstrap_entries(settings: Settings) -> list[BootstrapEntry]:
    """The configured list, validated (ConfigError: refuse to start with a clear message)."""
    entries: dict[str, BootstrapEntry] = {}
    for index, item in enumerate(settings.repos.bootstrap):
        try:
            url = validate_remote_url(item.url)
            name = validate_repo_name(item.name) if item.name else name_from_url(url)
        except InvalidInput as exc:
            raise ConfigError(f"BASTION_REPOS__BOOTSTRAP[{index}]: {exc.message}") from None
        entries.setdefault(name.lower(), BootstrapEntry(name, url))
    return list(entries.values())


class Bootstrap:
    """Mirrors missing entries; `problem()` is the /ready answer (None once everything is mirrored)."""

    def __init__(
        self,
        settings: Settings,
        entries: list[BootstrapEntry],
        *,
        auth: GitRemoteAuth | None = None,
        retry_first: float = 10.0,
        retry_max: float = 300.0,
    ) -> None:
        self._settings = settings
        self._auth = auth
        self._retry_first = retry_first
        self._retry_max = retry_max
        self.pending: dict[str, BootstrapEntry] = {entry.name.lower(): entry for entry in entries}
        self.failures: dict[str, str] = {}
        self.total = len(entries)

    def problem(self) -> str | None:
        if not self.pending:
            return None
        waiting = ", ".join(sorted(entry.name for entry in self.pending.values()))
        text = f"mirroring at start: {len(self.pending)} of {self.total} not ready yet ({waiting})"
        if self.failures:
            first = sorted(self.failures.items())[0]
            text += f"; {len(self.failures)} failed, e.g. {first[0]}: {first[1]}"
        return text

    async def run(self) -> None:
        """Until every entry is mirrored (cancel it to stop)."""
        pause = self._retry_first
        while True:
            registry = Registry(self._settings.data_dir)
            for key in [key for key in self.pending if registry.find(key) is not None]:
                self.pending.pop(key)  # already there (an earlier start, or `bastion repo add`)
            if not self.pending:
                break
            semaphore = asyncio.Semaphore(_CONCURRENCY)
            await asyncio.gather(*(self._mirror(entry, semaphore) for entry in list(self.pending.values())))
            if not self.pending:
                break
            log.warning("bootstrap: %s; retrying in %g s", self.problem(), pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, self._retry_max)
        log.info("bootstrap: all %d listed repositories are mirrored", self.total)

    async def _mirror(self, entry: BootstrapEntry, semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            try:
                info = await add_repository(self._settings, entry.url, entry.name, auth=self._auth)
            except BastionError as exc:
                if Registry(self._settings.data_dir).find(entry.name) is not None:  # added meanwhile by someone else
                    self.pending.pop(entry.name.lower(), None)
                    return
                self.failures[entry.name] = exc.message
                log.warning("bootstrap: cannot mirror %s from %s: %s", entry.name, entry.url, exc.message)
                return
        self.pending.pop(entry.name.lower(), None)
        self.failures.pop(entry.name, None)
        log.info("bootstrap: mirrored %s (head %s)", info.name, (info.head_sha or "-")[:12])
