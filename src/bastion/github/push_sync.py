"""Near-instant freshness after a push: one debounced background sync per repository.

`request(name)` (a webhook arrived) starts a sync after `delay` seconds, so a burst of pushes (a merge train, a
tag after a commit) costs one fetch. A push that arrives while that repository's sync is already running queues
exactly one more round after it; never two syncs of one repository at once, never an unbounded queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bastion.errors import BastionError

__all__ = ["PushSync"]

log = logging.getLogger(__name__)


class PushSync:
    """Debounced syncs of single repositories; `sync(name)` does the work (e.g. `sync_repository`)."""

    def __init__(self, sync: Callable[[str], Awaitable[object]], *, delay: float = 2.0) -> None:
        self._sync = sync
        self.delay = delay
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: set[str] = set()
        self._again: set[str] = set()
        self.completed = 0  # finished syncs (tests, diagnostics)

    def request(self, name: str) -> None:
        """Sync `name` soon. Call from the event loop (a request handler)."""
        key = name.lower()
        task = self._tasks.get(key)
        if task is not None and not task.done():
            if key in self._running:  # the fetch under way may have missed this push
                self._again.add(key)
            return  # still waiting out the delay: that sync will see this push too
        self._tasks[key] = asyncio.get_running_loop().create_task(self._run(key, name), name=f"push-sync {name}")

    async def _run(self, key: str, name: str) -> None:
        try:
            while True:
                await asyncio.sleep(self.delay)
                self._again.discard(key)
                self._running.add(key)
                try:
                    await self._sync(name)
                except BastionError as exc:
                    log.warning("sync of %s after a push failed: %s", name, exc.message)
                except Exception:
                    log.exception("sync of %s after a push failed", name)
                finally:
                    self._running.discard(key)
                    self.completed += 1
                if key not in self._again:
                    return
        finally:
            self._tasks.pop(key, None)

    async def wait_idle(self) -> None:
        """Until no sync is waiting or running (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
