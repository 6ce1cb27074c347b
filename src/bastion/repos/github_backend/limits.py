"""GitHub's rate limits, as its response headers state them.

Every API response carries `x-ratelimit-limit/remaining/used/reset/resource` (docs: "Rate limits for the REST
API"). The client keeps the latest numbers per resource (`core`, `search`, `code_search`, ...) and refuses to call
a resource that is used up until its reset time, instead of spending requests on answers it knows will be 403:
GitHub may ban an integration that keeps calling while limited. Secondary limits (403/429 with `retry-after`, or
a "secondary rate limit" message without it) block the resource the same way for as long as GitHub asked.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_SECONDARY_WAIT",
    "RateLimitSnapshot",
    "RateLimits",
    "limited_wait",
    "snapshot_from_headers",
    "whole_seconds",
]

logger = logging.getLogger(__name__)

# GitHub: "If the retry-after response header is not present ... wait for at least one minute before retrying."
DEFAULT_SECONDARY_WAIT = 60.0


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """One resource's primary limit after the latest response (reset in epoch seconds, as GitHub sends it)."""

    resource: str
    limit: int
    remaining: int
    used: int
    reset_at: float

    def seconds_to_reset(self, now: float) -> float:
        return max(0.0, self.reset_at - now)


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def snapshot_from_headers(headers: Mapping[str, str]) -> RateLimitSnapshot | None:
    """The primary-limit state a response reports, or None when it reports none (GHES with limits off)."""
    limit, remaining, reset = (_int(headers, f"x-ratelimit-{name}") for name in ("limit", "remaining", "reset"))
    if limit is None or remaining is None or reset is None:
        return None
    used = _int(headers, "x-ratelimit-used")
    return RateLimitSnapshot(
        resource=headers.get("x-ratelimit-resource", "core").strip() or "core",
        limit=limit,
        remaining=remaining,
        used=used if used is not None else max(0, limit - remaining),
        reset_at=float(reset),
    )


def limited_wait(status: int, headers: Mapping[str, str], body_message: str, now: float) -> float | None:
    """Seconds GitHub asks us to wait when a 403/429 is a rate limit, None when it is another refusal.

    Order from GitHub's docs: `retry-after` wins; a used-up primary limit waits for `x-ratelimit-reset`; a
    secondary limit without either waits a minute."""
    if status not in (403, 429):
        return None
    retry_after = _int(headers, "retry-after")
    if retry_after is not None:
        return float(max(retry_after, 0))
    if _int(headers, "x-ratelimit-remaining") == 0:
        reset = _int(headers, "x-ratelimit-reset")
        if reset is not None:
            return max(0.0, float(reset) - now)
    if status == 429 or "rate limit" in body_message.lower():
        return DEFAULT_SECONDARY_WAIT
    return None


class RateLimits:
    """The latest snapshot per resource, and resources blocked until a time GitHub named."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        on_update: Callable[[RateLimitSnapshot], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_update = on_update
        self._snapshots: dict[str, RateLimitSnapshot] = {}
        self._blocked_until: dict[str, float] = {}
        self._warned: dict[str, float] = {}  # resource -> the reset time already warned about

    def record(self, headers: Mapping[str, str]) -> RateLimitSnapshot | None:
        snapshot = snapshot_from_headers(headers)
        if snapshot is not None:
            self._snapshots[snapshot.resource] = snapshot
            if self._on_update is not None:
                self._on_update(snapshot)
            low = snapshot.remaining <= snapshot.limit // 10
            if low and self._warned.get(snapshot.resource) != snapshot.reset_at:
                self._warned[snapshot.resource] = snapshot.reset_at  # once per window, not per request
                logger.warning(
                    "GitHub %s rate limit low: %d of %d left until %s",
                    snapshot.resource,
                    snapshot.remaining,
                    snapshot.limit,
                    time.strftime("%H:%M:%S UTC", time.gmtime(snapshot.reset_at)),
                )
        return snapshot

    def block(self, resource: str, seconds: float) -> None:
        until = self._clock() + seconds
        self._blocked_until[resource] = max(until, self._blocked_until.get(resource, 0.0))

    def wait_needed(self, resource: str) -> float:
        """Seconds until `resource` may be called again (0 when it may be called now)."""
        now = self._clock()
        wait = self._blocked_until.get(resource, 0.0) - now
        snapshot = self._snapshots.get(resource)
        if snapshot is not None and snapshot.remaining <= 0:
            wait = max(wait, snapshot.seconds_to_reset(now))
        return max(0.0, wait)

    def snapshots(self) -> dict[str, RateLimitSnapshot]:
        return dict(self._snapshots)


def whole_seconds(seconds: float) -> int:
    """A Retry-After value: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))
