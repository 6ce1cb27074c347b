"""The AWS Lambda entry point: `bastion.aws.lambda_handler.handler` (docs/dev/deploy-contract.md).

Mangum turns API Gateway REST (payload 1.0), HTTP API (2.0) and Function URL events into ASGI requests for the
same app `bastion serve` runs, configured from BASTION_* variables (stateless JSON mode on Lambda: API Gateway
cannot stream SSE; `subscriptions/listen` is the only SSE method and the server offers no subscriptions).

The app's lifespan (audit spool and sinks, the MCP session manager, the GitHub client) runs ONCE per execution
environment. Mangum drives a lifespan cycle around every invocation, and the SDK's session manager can be entered
only once per instance (FACTS.md): so the adapter answers Mangum's cycles itself, enters the real lifespan on the
first one and keeps it open in a task on Mangum's event loop, which Lambda freezes between invocations and resumes
with the next. At the end of each invocation the audit log is flushed (bounded by AUDIT_FLUSH_SECONDS) so its
sinks have stored the invocation's events before the environment freezes; the durable spool in /tmp keeps
anything later.

For each request the adapter copies, from the event's `requestContext` (written by API Gateway, never by the
client), the source IP into `scope[SOURCE_IP_KEY]` and the authorizer's claims into `scope[GATEWAY_IDENTITY_KEY]`
(used only with `auth.trust_gateway_authorizer`; otherwise the request needs its own bearer credential).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from mangum import Mangum
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from bastion.app import Runtime, create_app
from bastion.aws.gateway import identity_from_event, source_ip_from_event
from bastion.config import Settings
from bastion.heap import freeze_startup_heap
from bastion.transport.authn import GATEWAY_IDENTITY_KEY
from bastion.transport.edge import SOURCE_IP_KEY

__all__ = ["AUDIT_FLUSH_SECONDS", "LambdaAdapter", "LambdaHandler", "handler"]

logger = logging.getLogger(__name__)

AUDIT_FLUSH_SECONDS = 2.0  # of the function's 29 s: a slow sink keeps its backlog in the spool instead


class LambdaAdapter:
    """ASGI in front of the app: one real lifespan per environment, the gateway's facts put into each request."""

    def __init__(self, app: Starlette, runtime: Runtime, *, flush_seconds: float = AUDIT_FLUSH_SECONDS) -> None:
        self.app = app
        self.runtime = runtime
        self.flush_seconds = flush_seconds
        self.lifespans_started = 0  # real lifespans entered (1 per environment unless start-up failed)
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._invocation_lifespan(receive, send)
            return
        if scope["type"] == "http":
            event = scope.get("aws.event")
            scope.pop(GATEWAY_IDENTITY_KEY, None)  # only ever what this event's requestContext says
            if isinstance(event, Mapping):
                source_ip = source_ip_from_event(event)
                if source_ip is not None:
                    scope[SOURCE_IP_KEY] = source_ip
                identity = identity_from_event(event)
                if identity is not None:
                    scope[GATEWAY_IDENTITY_KEY] = identity
        await self.app(scope, receive, send)

    async def _invocation_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            await self.start()
        except Exception as exc:
            logger.exception("mcp-bastion failed to start")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown: the invocation is answered
        await self.runtime.audit.flush(timeout=self.flush_seconds)
        # Lambda may freeze the environment now and recycle it without warning: the EMF figures collected during
        # this invocation leave with it (the publisher's periodic tick only runs while an invocation does).
        observability = getattr(self.app.state, "observability", None)
        if observability is not None and observability.emf is not None:
            observability.emf.flush()
        await send({"type": "lifespan.shutdown.complete"})

    async def start(self) -> None:
        """Enter the app's lifespan once; later calls return at once (a failed start is retried)."""
        if self._task is not None and not self._task.done():
            return
        self._started, self._stop = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(self._hold(self._started, self._stop), name="bastion-lifespan")
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({self._task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not self._started.is_set():
            started.cancel()
            await self._task  # raises what start-up raised
            raise RuntimeError("the app's lifespan ended during start-up")
        self.lifespans_started += 1

    async def _hold(self, started: asyncio.Event, stop: asyncio.Event) -> None:
        async with self.app.router.lifespan_context(self.app):
            started.set()
            await stop.wait()

    async def stop(self) -> None:
        """Leave the lifespan (closes the audit log, the backend, the session manager)."""
        if self._task is None or self._stop is None:
            return
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


class LambdaHandler:
    """One execution environment: settings, the app, its event loop and the Mangum adapter."""

    def __init__(self, settings: Settings | None = None, *, flush_seconds: float = AUDIT_FLUSH_SECONDS) -> None:
        from bastion.logs import configure_logging

        self.settings = settings or Settings()
        configure_logging(self.settings.log)
        # A fresh loop per environment: Mangum runs every invocation on the current one, and the lifespan task
        # (and the GitHub client's connection pool) live on it between invocations.
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.app = create_app(self.settings)  # raises ConfigError: the environment fails to initialise
        self.runtime: Runtime = self.app.state.runtime
        self.adapter = LambdaAdapter(self.app, self.runtime, flush_seconds=flush_seconds)
        self.mangum = Mangum(self.adapter, lifespan="on")

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return self.mangum(event, context)
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError, binascii.Error) as exc:
            # An event API Gateway would not send (a null header value, a body that is not base64, no
            # requestContext, an unknown event source): a 400 with a reason rather than Lambda's bare 502.
            logger.warning(
                "refused an invocation event that is not a usable HTTP request: %s: %s", type(exc).__name__, exc
            )
            return _invalid_event(
                f"the invocation event is not a usable API Gateway HTTP request ({type(exc).__name__})"
            )

    def close(self) -> None:
        """What the end of the environment would do; tests call it (Lambda just stops the process)."""
        self.loop.run_until_complete(self.adapter.stop())
        self.loop.close()
        with contextlib.suppress(RuntimeError):
            asyncio.set_event_loop(None)


def _invalid_event(reason: str) -> dict[str, Any]:
    body = json.dumps({"error": "invalid_event", "error_description": reason})
    return {"statusCode": 400, "headers": {"content-type": "application/json"}, "body": body, "isBase64Encoded": False}


_environment: LambdaHandler | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler: the first invocation of an environment builds it (cold start), later ones reuse it."""
    global _environment
    if _environment is None:
        _environment = LambdaHandler()
        freeze_startup_heap()
    return _environment(event, context)
