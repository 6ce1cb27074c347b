"""The composition root: build every long-lived part from Settings and assemble the ASGI application.

Request path, outermost first: EdgeMiddleware (request id, client address, body limit) -> IpAllowlistMiddleware
(when server.ip_allowlist is set) -> routes. /health and /ready answer without authentication (and from any
address); /mcp goes through AuthenticationMiddleware and RateLimitMiddleware into the SDK's streamable HTTP
transport, which serves 2026-07-28 stateless requests and legacy handshake clients on the same endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.inbound import x_mcp_header_map
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.audit.pipeline import AuditLog
from bastion.audit.setup import build_audit_log
from bastion.auth.apikey import ApiKeyAuthenticator
from bastion.auth.keys import KeyStore
from bastion.auth.oidc import OidcAuthenticator
from bastion.aws.gateway import GatewayClaims
from bastion.config import Settings
from bastion.errors import Unauthenticated
from bastion.github.runtime import GitHubRuntime
from bastion.observability.setup import Observability
from bastion.policy.remote import PolicySource, open_policy_source
from bastion.ratelimit import RateLimitMiddleware, RateLimitRules, build_rate_limiter
from bastion.repos.github_backend import GitHubBackend
from bastion.repos.mirror import MirrorBackend
from bastion.repos.sync import run_scheduled_sync
from bastion.server import TOOL_NAMES, GovernedMCPServer, build_mcp
from bastion.services import Services
from bastion.store.db import open_state
from bastion.tools.access import Access
from bastion.transport.authn import AuthenticationMiddleware
from bastion.transport.direct import DirectToolCalls
from bastion.transport.edge import EdgeMiddleware
from bastion.transport.health import ReadinessCheck, health, readiness_endpoint
from bastion.transport.metadata import protected_resource_routes, resource_metadata_url, unserved_well_known
from bastion.transport.network import OPEN_PATHS, IpAllowlist, IpAllowlistMiddleware
from bastion.transport.protocol import ProtocolGuardMiddleware

__all__ = ["Runtime", "build_runtime", "create_app"]

logger = logging.getLogger(__name__)
_LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


@dataclass(slots=True)
class Runtime:
    """Everything a running server holds; `create_app` wires it into HTTP."""

    settings: Settings
    services: Services
    policy: PolicySource  # the policy file, or ssm:/s3:// (policy.url)
    engine: Engine
    audit: AuditLog
    backend: MirrorBackend | GitHubBackend
    authenticators: list[ApiKeyAuthenticator | OidcAuthenticator]
    mcp: GovernedMCPServer
    github: GitHubRuntime | None = None  # credentials, bootstrap mirrors, webhooks


def build_runtime(settings: Settings) -> Runtime:
    """Build every part; raises ConfigError (refuse to start) when something required is missing."""
    # First, so a configuration error is raised before anything holding a file or connection exists.
    oidc = OidcAuthenticator(settings.auth.oidc, settings.resource_url) if settings.auth.oidc.issuer else None
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    policy = open_policy_source(settings)
    github = GitHubRuntime(settings)  # secrets cache and GitHub credentials, shared by every part that calls GitHub
    engine = open_state(settings)
    audit = build_audit_log(settings)  # the spool and every configured sink (docs/audit.md)
    backend = _backend(settings, github)
    access = Access(policy, backend)
    services = Services(settings=settings, backend=backend, access=access, record=audit.record)
    authenticators: list[ApiKeyAuthenticator | OidcAuthenticator] = [
        ApiKeyAuthenticator(KeyStore(engine), cache_seconds=settings.auth.key_cache_seconds)
    ]
    if oidc is not None:  # the token's shape picks the verifier: bst_... keys, JWTs
        authenticators.append(oidc)
    return Runtime(settings, services, policy, engine, audit, backend, authenticators, build_mcp(services), github)


def _backend(settings: Settings, github: GitHubRuntime) -> MirrorBackend | GitHubBackend:
    """Local mirrors, or GitHub's REST API read through (repos.backend=github: Lambda, no disk)."""
    if settings.repos.backend == "github":
        return GitHubBackend(settings, github.credentials)
    return MirrorBackend(settings)


def _challenge(settings: Settings):
    oidc = settings.auth.oidc
    # With OIDC on, every challenge tells the client where to learn how to get a token (RFC 9728 §5.1) and which
    # scopes to ask for (MCP authorization: 401s should carry scope=, insufficient_scope names what is missing).
    discovery = [f'resource_metadata="{resource_metadata_url(settings.resource_url)}"'] if oidc.issuer else []
    if oidc.issuer and oidc.required_scopes:
        discovery.append(f'scope="{" ".join(oidc.required_scopes)}"')

    def challenge(exc: Unauthenticated) -> str:
        # Quoted-string values may not hold quotes or backslashes (RFC 7235); our messages never need them.
        description = exc.message.replace("\\", "").replace('"', "'")
        parts = ['Bearer realm="mcp-bastion"']
        if exc.error:
            parts.append(f'error="{exc.error}"')
            parts.append(f'error_description="{description}"')
        return ", ".join([*parts, *discovery])

    return challenge


def _transport_security(settings: Settings) -> TransportSecuritySettings:
    hosts = [*_LOOPBACK_HOSTS, *settings.server.allowed_hosts]
    origins = [*_LOOPBACK_ORIGINS, *settings.server.allowed_origins]
    if settings.public_url:
        public = urlsplit(settings.public_url)
        if public.netloc:
            hosts.append(public.netloc)
            origins.append(f"{public.scheme}://{public.netloc}")
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def _readiness(runtime: Runtime) -> list[ReadinessCheck]:
    async def state_store() -> str | None:
        def probe() -> None:
            with runtime.engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        await asyncio.to_thread(probe)
        return None

    async def policy() -> str | None:
        runtime.policy.current()
        return f"serving the last good policy: {runtime.policy.last_error}" if runtime.policy.last_error else None

    async def mirrors() -> str | None:
        broken: list[str] = []
        for info in await runtime.backend.list_repositories():
            try:
                await runtime.backend.refs(info.name)
            except Exception as exc:
                broken.append(f"{info.name}: {exc}")
        return "; ".join(broken) or None

    return [
        ReadinessCheck("state_store", state_store),
        ReadinessCheck("policy", policy),
        *(runtime.github.readiness() if runtime.github else []),  # bootstrap mirrors still being made
        ReadinessCheck("mirrors" if runtime.settings.repos.backend == "mirror" else "github", mirrors),
    ]


def _skip_param_header_walk(mcp: MCPServer) -> None:
    """Spare the SDK a walk of the whole input schema on every 2026-07-28 `tools/call`.

    The SDK checks `Mcp-Param-*` headers against the `x-mcp-header` annotations of the called tool's input schema
    (SEP-2243), walking every schema position per call: about a tenth of the request's CPU for get_file_contents.
    A tool without annotations has nothing to check, and "no schema" is how the SDK is told so; tools that do
    declare headers keep their schema and their check.
    """
    lowlevel = mcp.session_manager.app
    lookup = lowlevel.get_tool_input_schema
    if lookup is None:
        return
    annotated = {name for name in TOOL_NAMES if x_mcp_header_map(lookup(name) or {})}

    def schema_with_headers(name: str) -> Mapping[str, Any] | None:
        return lookup(name) if name in annotated else None

    lowlevel.get_tool_input_schema = schema_with_headers


def _transport_first(sdk_app: Starlette) -> ASGIApp:
    """The SDK's Starlette app, with requests for /mcp handed straight to its transport.

    The SDK wraps its one `/mcp` route in a Starlette app of its own (error middleware, exception middleware, a
    router) inside ours, which already has all three: about 20 µs per request spent routing twice. Every other
    path still goes through the SDK's app (its 404s and slash redirects are unchanged), and an exception from the
    transport reaches our own error middleware, which answers 500 as the SDK's would have.
    """
    transport = next((route.app for route in sdk_app.routes if isinstance(route, Route) and route.path == "/mcp"), None)
    if transport is None:  # an SDK that builds its app differently: keep it whole
        return sdk_app

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/mcp":
            await transport(scope, receive, send)
        else:
            await sdk_app(scope, receive, send)

    return app


def create_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    # Before anything starts: a bad CIDR, limit or store URL is a ConfigError at start-up, not at the first request.
    allowlist = IpAllowlist.parse(settings.server.ip_allowlist)
    limit_rules = RateLimitRules(settings.rate_limit, TOOL_NAMES) if settings.rate_limit.enabled else None
    limiter = build_rate_limiter(settings.rate_limit) if limit_rules is not None else None
    observability = Observability(settings)  # metrics, EMF, tracing (a missing OpenTelemetry SDK fails here)
    runtime = runtime or build_runtime(settings)
    server = settings.server
    security = _transport_security(settings)
    sdk_app = runtime.mcp.streamable_http_app(
        streamable_http_path="/mcp",
        json_response=server.json_response,
        stateless_http=server.stateless,
        max_request_body_size=server.max_body_bytes,
        transport_security=security,
    )
    _skip_param_header_walk(runtime.mcp)
    direct = DirectToolCalls(
        _transport_first(sdk_app),
        tools=runtime.mcp.governed,
        accepted=runtime.mcp.accepted,
        server_info=runtime.mcp.session_manager.app,
        security=security,
        json_response=server.json_response,
        enabled=not settings.tracing.enabled,  # with tracing on, the SDK's tools/call span stays in the trace
    )
    mcp_app: ASGIApp = ProtocolGuardMiddleware(direct, record=runtime.audit.record)
    if limit_rules is not None and limiter is not None:
        # After authentication (buckets belong to the subject), before the SDK (a 429 must come before its 200).
        mcp_app = RateLimitMiddleware(mcp_app, limit_rules, limiter, record=runtime.audit.record)
    protected: ASGIApp = AuthenticationMiddleware(
        mcp_app,
        runtime.authenticators,
        record=runtime.audit.record,
        challenge=_challenge(settings),
        # Behind API Gateway with a Cognito/JWT authorizer: the caller is who the authorizer's claims say.
        gateway=GatewayClaims(settings.auth.oidc) if settings.auth.trust_gateway_authorizer else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncGenerator[None]:
        runtime.audit.start()
        if limiter is not None:
            await limiter.probe()  # a Redis that is down or refuses the password is said at start, not at a request
        stop_token_metric = None
        if runtime.github is not None:
            runtime.github.start()  # mirrors BASTION_REPOS__BOOTSTRAP in the background: /health answers meanwhile
            # UpstreamTokenSecondsToExpiry{Organization}, for each organisation a token was handed out for
            stop_token_metric = observability.metrics.add_token_expiry_source(runtime.github.token_expiries)
        observability.start(runtime.audit.stats)
        sync_task = None
        if settings.repos.sync_interval_seconds > 0 and settings.repos.backend == "mirror":
            git_auth = runtime.github.git_auth if runtime.github else None
            sync_task = asyncio.create_task(run_scheduled_sync(settings, auth=git_auth))
        try:
            async with runtime.mcp.session_manager.run():
                logger.info("mcp-bastion serving %s", settings.resource_url)
                yield
        finally:
            if sync_task is not None:
                sync_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sync_task
            await observability.aclose()
            if runtime.github is not None:
                await runtime.github.aclose()
            if stop_token_metric is not None:
                stop_token_metric()
            await runtime.backend.aclose()
            if limiter is not None:
                await limiter.aclose()
            await runtime.audit.aclose()
            for authenticator in runtime.authenticators:
                authenticator.close()  # holds a pooled connection that dispose() would not close
            runtime.engine.dispose()

    oidc = settings.auth.oidc
    metadata_routes = (
        protected_resource_routes(settings.resource_url, oidc.issuer, oidc.required_scopes) if oidc.issuer else []
    )
    github_routes = runtime.github.routes if runtime.github else []
    # The allowlist guards /mcp; GitHub's webhook deliveries authenticate by signature and come from GitHub's addresses.
    open_paths = OPEN_PATHS | {route.path for route in github_routes if isinstance(route, Route)}
    network = (
        [Middleware(IpAllowlistMiddleware, allowlist=allowlist, record=runtime.audit.record, open_paths=open_paths)]
        if allowlist
        else []
    )
    app = Starlette(
        routes=[
            Route("/mcp", endpoint=protected),  # the hot path first (every method); Mount below takes the rest
            Route("/health", health, methods=["GET"]),
            Route(
                "/ready",
                readiness_endpoint(_readiness(runtime), details=settings.server.ready_details),
                methods=["GET"],
            ),
            *metadata_routes,
            unserved_well_known(oauth=bool(oidc.issuer)),  # the rest of /.well-known/: 404, never a 401
            *github_routes,  # POST /webhooks/github: HMAC-signed, no bearer token
            *observability.routes,  # /metrics (unless metrics.port serves it apart)
            Mount("/", app=protected),
        ],
        middleware=[
            Middleware(
                EdgeMiddleware,
                max_body_bytes=server.max_body_bytes,
                trusted_proxies=server.trusted_proxies,
                record=runtime.audit.record,
            ),
            *observability.middleware,  # request id + trace id for logs and audit; the HTTP span
            *network,  # right after the edge: a refused address learns nothing and costs no key lookup
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.rate_limiter = limiter
    app.state.observability = observability  # the Lambda adapter prints EMF figures at each invocation's end
    return app


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory bastion.app:create_app_from_env` (and multi-worker serving): settings come
    from BASTION_* environment variables only."""
    from bastion.heap import freeze_startup_heap
    from bastion.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log)
    app = create_app(settings)
    freeze_startup_heap()
    return app
