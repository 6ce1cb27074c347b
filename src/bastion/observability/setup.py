"""What `create_app` wires in for observability: the /metrics route, the middleware, and what runs beside the
server (sources for scrape-time gauges, the EMF publisher, the metrics port, the multiprocess refresher)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from bastion.audit.pipeline import AuditStats
from bastion.config import Settings
from bastion.logs import register_settings_secrets
from bastion.observability import tracing
from bastion.observability.emf import EmfPublisher
from bastion.observability.exposition import MetricsPortServer, metrics_endpoint
from bastion.observability.metrics import METRICS, Metrics, MirrorState
from bastion.observability.middleware import ObservabilityMiddleware
from bastion.observability.multiprocess import mark_worker_stopped, refresh_periodically
from bastion.repos.registry import Registry

__all__ = ["Observability", "mirror_states"]


def mirror_states(registry: Registry) -> Callable[[], Iterable[MirrorState]]:
    def read() -> list[MirrorState]:
        return [
            MirrorState(record.name, record.last_sync_at, record.last_sync_error is not None)
            for record in registry.records()
        ]

    return read


class Observability:
    """Built by create_app (a tracing ConfigError surfaces there, before anything starts); `start()` and
    `aclose()` run in the server's lifespan."""

    def __init__(self, settings: Settings, *, metrics: Metrics = METRICS) -> None:
        self.settings = settings
        self.metrics = metrics
        register_settings_secrets(settings)  # the log filter scrubs their values, should any code log one
        if not tracing.configure_tracing(settings.tracing):
            tracing.reset_tracing()
        # Its own registry instance: the scrape may run in the metrics port's thread, apart from the request path.
        self.registry = Registry(settings.data_dir)
        self.emf: EmfPublisher | None = None
        self.port_server: MetricsPortServer | None = None
        self._removers: list[Callable[[], None]] = []
        self._refresher: asyncio.Task[None] | None = None

    @property
    def token(self) -> str | None:
        token = self.settings.metrics.token
        return token.get_secret_value() if token is not None else None

    @property
    def routes(self) -> list[BaseRoute]:
        metrics = self.settings.metrics
        if not metrics.enabled or metrics.port is not None:
            return []
        return [Route("/metrics", metrics_endpoint(self.metrics, self.token), methods=["GET"])]

    @property
    def middleware(self) -> list[Middleware]:
        return [Middleware(ObservabilityMiddleware)]

    def start(self, audit_stats: Callable[[], AuditStats]) -> None:
        self._removers = [
            self.metrics.add_audit_source(audit_stats),
            self.metrics.add_mirror_source(mirror_states(self.registry)),
        ]
        settings = self.settings.metrics
        if settings.emf:
            self.emf = EmfPublisher(
                self.metrics, namespace=settings.emf_namespace, interval_seconds=settings.emf_interval_seconds
            )
            self.emf.start()
        if settings.enabled and settings.port is not None:
            self.port_server = MetricsPortServer(self.metrics, self.settings.host, settings.port, self.token)
            self.port_server.start()
        if self.metrics.multiprocess:
            self._refresher = asyncio.get_running_loop().create_task(refresh_periodically(self.metrics))

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.port_server is not None:
            await asyncio.to_thread(self.port_server.stop)
        if self.emf is not None:
            await self.emf.aclose()  # before the sources go: the last lines carry the final audit lag
        for remove in self._removers:
            remove()
        mark_worker_stopped(self.metrics)
