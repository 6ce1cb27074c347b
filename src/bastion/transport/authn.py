"""Authentication at the HTTP edge: a bearer credential in, a Principal in the ASGI scope, or a 401.

Runs before the MCP SDK sees the request, so an unauthenticated caller never reaches JSON-RPC parsing.
Authenticators are tried in order; the first whose `accepts()` recognises the token's shape decides.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.audit.event import AuditEvent, caller_fields
from bastion.auth.base import Authenticator
from bastion.errors import BastionError, InsufficientScope, Unauthenticated, Unavailable
from bastion.observability.metrics import METRICS, auth_failure_kind
from bastion.principal import Principal, RequestInfo
from bastion.transport.edge import REQUEST_INFO_KEY, header, named_tool, send_json_error

__all__ = ["GATEWAY_IDENTITY_KEY", "PRINCIPAL_KEY", "AuthenticationMiddleware"]

PRINCIPAL_KEY = "bastion.principal"
# Set only by the Lambda adapter, from `requestContext.authorizer` of the API Gateway event (claims the gateway's
# authorizer verified): never from a header. Read only when the middleware is given a `gateway` mapper, i.e. when
# `auth.trust_gateway_authorizer` is on; otherwise the request needs its own bearer credential like any other.
GATEWAY_IDENTITY_KEY = "bastion.gateway_identity"
logger = logging.getLogger(__name__)


class AuthenticationMiddleware:
    """Requires `Authorization: Bearer <credential>` on every request it wraps."""

    def __init__(
        self,
        app: ASGIApp,
        authenticators: Sequence[Authenticator],
        *,
        record: Callable[[AuditEvent], Awaitable[None] | None],
        challenge: Callable[[Unauthenticated], str],
        gateway: Callable[[object], Principal] | None = None,
    ) -> None:
        self.app = app
        self.authenticators = tuple(authenticators)
        self.record = record
        self.challenge = challenge
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        try:
            principal = await self._authenticate(scope)
        except Unauthenticated as exc:  # 401, or 403 for InsufficientScope
            METRICS.auth_failure(auth_failure_kind(exc))
            await self._audit_failure(scope, exc, started)
            headers = {"WWW-Authenticate": self.challenge(exc)}
            await send_json_error(send, exc.http_status, exc.error, exc.message, headers=headers)
            return
        except Unavailable as exc:
            # The credential could not be checked (the identity provider's keys are unreachable): not the caller's
            # fault, so a 503 to retry, never a challenge that would send the client to log in again.
            METRICS.auth_failure("unavailable")
            await self._audit_failure(scope, exc, started)
            retry = {"Retry-After": str(exc.details["retry_after"])} if "retry_after" in exc.details else {}
            await send_json_error(send, 503, "temporarily_unavailable", exc.message, headers=retry)
            return
        scope[PRINCIPAL_KEY] = principal
        # The credential ends here: nothing behind this point (the SDK, tools, a federated upstream) can forward
        # what it never sees. MCP forbids passing a client's token through to any other service.
        scope["headers"] = [(name, value) for name, value in scope["headers"] if name != b"authorization"]
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Principal:
        identity = scope.get(GATEWAY_IDENTITY_KEY)
        if identity is not None and self.gateway is not None:
            return self.gateway(identity)  # Unauthenticated / InsufficientScope answer as for a bearer token
        token = self._bearer_token(scope)
        authenticator = next((a for a in self.authenticators if a.accepts(token)), None)
        if authenticator is None:
            raise Unauthenticated("the bearer token is not a credential this server issues or trusts")
        return await authenticator.authenticate(token)

    @staticmethod
    def _bearer_token(scope: Scope) -> str:
        if b"access_token=" in scope.get("query_string", b""):
            # RFC 6750 allows it, OAuth 2.1 and MCP forbid it: URLs end up in logs and browser history.
            raise Unauthenticated(
                "credentials in the query string are refused; send an Authorization: Bearer header",
                error="invalid_request",
            )
        value = header(scope, b"authorization")
        if not value:
            raise Unauthenticated("missing Authorization header: send 'Authorization: Bearer <key>'", error="")
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <credential>'", error="invalid_request")
        return token

    async def _audit_failure(self, scope: Scope, exc: BastionError, started: float) -> None:
        info: RequestInfo | None = scope.get(REQUEST_INFO_KEY)
        scoped = isinstance(exc, InsufficientScope)  # authenticated, but not allowed: a denial with a subject
        caller = caller_fields(None, info)
        caller["subject"] = exc.subject if scoped else None
        receipt = self.record(
            AuditEvent(
                **caller,
                tool=named_tool(scope),
                decision="deny",
                reason=exc.message,
                outcome="denied" if scoped else "unavailable" if isinstance(exc, Unavailable) else "unauthenticated",
                duration_ms=(perf_counter() - started) * 1000,
                metadata={"method": (header(scope, b"mcp-method") or str(scope.get("method")))[:64]},
            )
        )
        if receipt is not None:
            await receipt  # in the durable spool before the 401 leaves
