"""Serving `/metrics`: on the main port (a Starlette route) or on a port of its own (a small WSGI server thread).

On the main port, which a load balancer may expose to the world, `/metrics` answers only to a bearer token
(`metrics.token`) or, when no token is set, to callers on loopback: the figures name tools, repositories and
organisations. A separate port (`metrics.port`) is the usual Prometheus set-up: it is not behind the load balancer,
so it needs no token unless one is set.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bastion.observability.metrics import Metrics
from bastion.principal import RequestInfo
from bastion.transport.edge import REQUEST_INFO_KEY

__all__ = ["MetricsPortServer", "check_scrape", "metrics_endpoint"]

logger = logging.getLogger(__name__)


def _bearer_matches(authorization: str | None, token: str) -> bool:
    scheme, _, presented = (authorization or "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_scrape(
    authorization: str | None, token: str | None, source_ip: str | None, *, loopback_only: bool
) -> tuple[int, str, str] | None:
    """None when the scrape may proceed, else (HTTP status, error, description)."""
    if token is not None:
        if _bearer_matches(authorization, token):
            return None
        return 401, "unauthenticated", "/metrics needs 'Authorization: Bearer <metrics token>' (metrics.token)"
    if loopback_only and not _is_loopback(source_ip):
        return (
            403,
            "forbidden",
            "/metrics on the main port answers only to loopback callers when no token is set: set "
            "BASTION_METRICS__TOKEN (scrape with a bearer token) or BASTION_METRICS__PORT (a port of its own)",
        )
    return None


def metrics_endpoint(metrics: Metrics, token: str | None) -> Callable[[Request], Any]:
    """The `/metrics` route for the main port."""

    async def endpoint(request: Request) -> Response:
        info = request.scope.get(REQUEST_INFO_KEY)
        source_ip = info.source_ip if isinstance(info, RequestInfo) else None
        refused = check_scrape(request.headers.get("authorization"), token, source_ip, loopback_only=True)
        if refused is not None:
            status, error, description = refused
            headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else None
            return JSONResponse({"error": error, "error_description": description}, status, headers=headers)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return endpoint


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line each
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class MetricsPortServer:
    """`/metrics` alone on `port`, served from a thread. With several worker processes only one can hold the
    port; the others keep trying every `retry_seconds`, so one of them takes over when its holder exits (every
    worker exposes the same merged figures)."""

    def __init__(
        self, metrics: Metrics, host: str, port: int, token: str | None, *, retry_seconds: float = 10.0
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.token = token
        self.retry_seconds = retry_seconds
        self._server: WSGIServer | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: this port serves /metrics only\n"]
        refused = check_scrape(environ.get("HTTP_AUTHORIZATION"), self.token, None, loopback_only=False)
        if refused is not None:
            _, _, description = refused
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
            )
            return [description.encode() + b"\n"]
        try:
            body = self.metrics.exposition()
        except Exception:
            logger.exception("rendering /metrics failed")
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"internal error\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"metrics-{self.port}", daemon=True)
        self._thread.start()

    def _bind(self) -> WSGIServer | None:
        server_class = _ThreadingServer6 if ":" in self.host else _ThreadingServer
        try:
            return make_server(self.host, self.port, self._app, server_class=server_class, handler_class=_QuietHandler)
        except OSError as exc:
            logger.info(
                "metrics port %s:%d is not free (%s); retrying every %.0fs",
                self.host,
                self.port,
                exc,
                self.retry_seconds,
            )
            return None

    def _run(self) -> None:
        while not self._stopping.is_set():
            server = self._bind()
            if server is None:
                self._stopping.wait(self.retry_seconds)
                continue
            self._server = server
            if self._stopping.is_set():
                break
            logger.info("serving /metrics on %s:%d", self.host, self.port)
            server.serve_forever(poll_interval=0.2)
            break
        if self._server is not None:
            self._server.server_close()

    @property
    def bound(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        self._stopping.set()
        server = self._server
        if server is not None:
            with contextlib.suppress(Exception):
                server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
