"""/health (liveness: the process answers) and /ready (readiness: the parts a request needs are usable)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse

from bastion import __version__

__all__ = ["ReadinessCheck", "health", "readiness_endpoint"]


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    name: str
    run: Callable[[], Awaitable[str | None]]  # None when healthy, else what is wrong


async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


def readiness_endpoint(
    checks: Sequence[ReadinessCheck], timeout: float = 5.0
) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def ready(_: Request) -> JSONResponse:
        async def one(check: ReadinessCheck) -> str | None:
            try:
                return await asyncio.wait_for(check.run(), timeout)
            except TimeoutError:
                return f"no answer within {timeout:g}s"
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"

        problems = await asyncio.gather(*(one(check) for check in checks))
        report = {check.name: problem or "ok" for check, problem in zip(checks, problems, strict=True)}
        healthy = not any(problems)
        return JSONResponse(
            {"status": "ready" if healthy else "not_ready", "checks": report}, status_code=200 if healthy else 503
        )

    return ready
