"""/health (liveness: the process answers) and /ready (readiness: the parts a request needs are usable)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import JSONResponse

from bastion import __version__
from bastion.principal import RequestInfo
from bastion.transport.edge import REQUEST_INFO_KEY

__all__ = ["ReadinessCheck", "ReadyDetails", "health", "readiness_endpoint"]

logger = logging.getLogger(__name__)
# Who sees *what* is wrong. /ready answers every address (the load balancer probes it), and its reasons name
# repositories and policy errors, so by default only callers on the host itself get them; everyone gets which
# checks fail, and the log always has the full reasons.
ReadyDetails = Literal["loopback", "always", "never"]


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    name: str
    run: Callable[[], Awaitable[str | None]]  # None when healthy, else what is wrong


async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


def _from_loopback(request: Request) -> bool:
    info = request.scope.get(REQUEST_INFO_KEY)
    address = info.source_ip if isinstance(info, RequestInfo) else None
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def readiness_endpoint(
    checks: Sequence[ReadinessCheck], timeout: float = 5.0, details: ReadyDetails = "loopback"
) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def ready(request: Request) -> JSONResponse:
        async def one(check: ReadinessCheck) -> str | None:
            try:
                return await asyncio.wait_for(check.run(), timeout)
            except TimeoutError:
                return f"no answer within {timeout:g}s"
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"

        problems = await asyncio.gather(*(one(check) for check in checks))
        healthy = not any(problems)
        if not healthy:
            failing = "; ".join(f"{c.name}: {p}" for c, p in zip(checks, problems, strict=True) if p)
            logger.warning("not ready: %s", failing)
        show = details == "always" or (details == "loopback" and _from_loopback(request))
        report = {
            check.name: "ok" if not problem else problem if show else "failing"
            for check, problem in zip(checks, problems, strict=True)
        }
        return JSONResponse(
            {"status": "ready" if healthy else "not_ready", "checks": report}, status_code=200 if healthy else 503
        )

    return ready
