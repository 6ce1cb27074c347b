"""One governed tool call: identity, policy, timing, error mapping and the audit record, in one place.

Every tool body runs inside `run_tool`, which guarantees exactly one audit event per call whatever happens,
and turns our errors into `isError` tool results with a message the model (and its user) can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, Implementation, TextContent

from bastion.audit.event import AuditEvent, Outcome, caller_fields
from bastion.errors import AccessDenied, BastionError, Unauthenticated
from bastion.observability.context import with_trace_id
from bastion.observability.metrics import METRICS
from bastion.observability.tracing import record_tool_span
from bastion.policy.types import Decision, Operation
from bastion.principal import Principal, RequestInfo
from bastion.services import Services
from bastion.tools.access import AuthorizedRef
from bastion.transport.authn import PRINCIPAL_KEY
from bastion.transport.edge import AUDITED_KEY, REQUEST_INFO_KEY

__all__ = [
    "DIRECT_CALLER",
    "ERROR_META_KEY",
    "DirectCaller",
    "ToolCall",
    "audit_event",
    "client_name",
    "error_result",
    "run_tool",
    "session_client",
]

logger = logging.getLogger(__name__)
ERROR_META_KEY = "mcp-bastion/error"

# The fields AuditEvent generates when they are not given (event id, time, empty lists). Left to model_construct,
# each factory goes through pydantic's get_default, which inspects the factory's signature on every call: about
# 20 µs per event with two of them, more than building the rest of the event (bench/, docs/benchmarks.md).
_GENERATED_FIELDS = tuple(
    (name, cast(Callable[[], Any], field.default_factory))
    for name, field in AuditEvent.model_fields.items()
    if field.default_factory is not None and not field.default_factory_takes_validated_data
)


def audit_event(**fields: Any) -> AuditEvent:
    """`AuditEvent.model_construct(**fields)` (unvalidated, like it), with the generated fields made here."""
    for name, make in _GENERATED_FIELDS:
        if name not in fields:
            fields[name] = make()
    return AuditEvent.model_construct(**fields)


class ToolCall:
    """What one tool body may use: the caller, policy helpers that record what they decided, the backend."""

    def __init__(self, services: Services, principal: Principal, tool: str) -> None:
        self.services = services
        self.backend = services.backend
        self.principal = principal
        self.tool = tool
        self.repo: str | None = None
        self.ref: str | None = None
        self.resolved_sha: str | None = None
        self.paths: list[str] = []
        self.bytes_returned = 0
        self.decision: Decision | None = None
        self.metadata: dict[str, Any] = {}

    async def repository(self, owner: str, repo: str, operation: Operation) -> str:
        self.repo = f"{owner}/{repo}"[:256]
        self.repo, self.decision = await self.services.access.repository(self.principal, owner, repo, operation)
        return self.repo

    async def authorize_ref(self, repo: str, ref: str | None, operation: Operation) -> AuthorizedRef:
        self.ref = ref
        target = await self.services.access.ref(self.principal, repo, ref, operation)
        self.ref = target.label
        self.resolved_sha = target.sha
        self.decision = target.decision
        return target

    def authorize_path(self, repo: str, target: AuthorizedRef, path: str, operation: Operation) -> str:
        self.paths.append(path[:1024])
        clean, decision = self.services.access.path(self.principal, repo, target, path, operation)
        self.paths[-1] = clean
        self.decision = decision
        return clean

    def require_size(self, repo: str, target: AuthorizedRef, path: str, size: int, operation: Operation) -> Decision:
        self.decision = self.services.access.require(
            self.principal, repo, operation, ref=target.policy_ref, path=path, size=size
        )
        return self.decision

    def path_filter(self, repo: str, target: AuthorizedRef, operation: Operation) -> Callable[[str], bool]:
        return self.services.access.path_filter(self.principal, repo, target, operation)


def error_result(exc: BastionError) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=f"{exc.title}: {exc.message}")],
        is_error=True,
        _meta={ERROR_META_KEY: exc.to_dict()},
    )


@dataclass(frozen=True, slots=True)
class DirectCaller:
    """Who makes a call that bastion.transport.direct dispatches without the SDK's per-request context: the
    request's ASGI scope (with what our middleware put there) and the clientInfo of its `_meta` envelope."""

    scope: MutableMapping[str, Any]
    client: Implementation | None


# Set by the direct dispatcher, in the request's own task, around the one tool function it calls.
DIRECT_CALLER: ContextVar[DirectCaller | None] = ContextVar("bastion_direct_caller", default=None)


def _caller(ctx: Context) -> tuple[MutableMapping[str, Any], Implementation | None]:
    """The request's scope and the client's clientInfo."""
    direct = DIRECT_CALLER.get()
    if direct is not None:
        return direct.scope, direct.client
    request = ctx.request_context.request
    return (getattr(request, "scope", None) or {}), session_client(ctx.request_context.session)


def _identity(scope: MutableMapping[str, Any]) -> tuple[Principal, RequestInfo | None]:
    principal = scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        # The authentication middleware wraps /mcp, so this means the server was assembled wrongly.
        raise Unauthenticated("no authenticated caller on this request")
    info = scope.get(REQUEST_INFO_KEY)
    scope[AUDITED_KEY] = True  # run_tool records this call's event, whatever happens next
    return principal, info if isinstance(info, RequestInfo) else None


def session_client(session: Any) -> Implementation | None:
    """The clientInfo of the SDK session (or connection) a call came on, if the client gave one."""
    params = session.client_params
    return params.client_info if params is not None else None


def client_name(client: Implementation | None, info: RequestInfo | None) -> str | None:
    """The MCP clientInfo name (modern requests carry it on every call; legacy ones only in the handshake, which
    a stateless server does not keep), else the User-Agent."""
    if client is not None and client.name:
        return f"{client.name}/{client.version}"[:128] if client.version else client.name[:128]
    return info.user_agent[:128] if info and info.user_agent else None


async def run_tool(
    services: Services, ctx: Context, tool: str, body: Callable[[ToolCall], Awaitable[CallToolResult]]
) -> CallToolResult:
    started = perf_counter()
    outcome: Outcome = "ok"
    reason: str | None = None
    rule: str | None = None
    decision = "none"
    info: RequestInfo | None = None
    principal: Principal | None = None
    call: ToolCall | None = None
    try:
        scope, client = _caller(ctx)
        principal, info = _identity(scope)
        principal = principal.with_client(client_name(client, info))
        call = ToolCall(services, principal, tool)
        result = await body(call)
        if call.decision is not None:
            decision, reason, rule = "allow", call.decision.reason, call.decision.rule
    except AccessDenied as exc:
        outcome, decision, reason, rule = "denied", "deny", exc.reason, exc.rule
        if call is not None:
            call.metadata.update(exc.audit_only)
        result = error_result(exc)
    except BastionError as exc:
        outcome, reason = _outcome(exc), exc.message
        if call is not None and call.decision is not None:
            decision, rule = "allow", call.decision.rule
        result = error_result(exc)
    except Exception:
        request_id = info.request_id if info else "unknown"
        logger.exception("tool %s failed (request %s)", tool, request_id)
        outcome, reason = "error", "internal error"
        result = CallToolResult(
            content=[TextContent(type="text", text=f"internal error: the server logged it (request id {request_id})")],
            is_error=True,
        )
    receipt = services.record(
        audit_event(
            **caller_fields(principal, info),
            client=principal.client if principal else None,
            tool=tool,
            repo=call.repo if call else None,
            ref=call.ref if call else None,
            resolved_sha=call.resolved_sha if call else None,
            paths=call.paths if call else [],
            bytes_returned=call.bytes_returned if call else 0,
            decision=decision,
            reason=reason,
            rule=rule,
            duration_ms=round((perf_counter() - started) * 1000, 3),
            outcome=outcome,
            metadata=with_trace_id(call.metadata if call else {}),
        )
    )
    if receipt is not None:
        await receipt  # the event is in the durable spool before the answer leaves (docs/audit.md)
    # Metrics and the tool span, in one place that sees every governed call (a few µs: docs/observability.md).
    elapsed = perf_counter() - started
    repository = call.repo if call else None
    METRICS.tool_call(tool, outcome, decision, elapsed, repository)
    record_tool_span(tool, repository, outcome, decision, elapsed)
    return result


_OUTCOMES: dict[str, Outcome] = {
    "invalid_input": "invalid_input",
    "not_found": "not_found",
    "unauthenticated": "unauthenticated",
    "rate_limited": "rate_limited",
    "unavailable": "unavailable",
}


def _outcome(exc: BastionError) -> Outcome:
    return _OUTCOMES.get(exc.kind, "error")
