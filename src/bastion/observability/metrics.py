"""The metrics registry: Prometheus instruments for every figure in `specs`, the calls the request path makes,
and the scrape-time sources (audit pipeline, mirrors, upstream tokens).

One process-wide `METRICS`. The request path calls `tool_call()`, `auth_failure()`, `rate_limited()`,
`network_denied()` and `redactions()`; each keeps the labelled children it has made in a dict, so a call after the
first one for a label set is a dict lookup and a few lock-protected increments (measured: docs/observability.md).

Figures that are states rather than events (audit lag, spool size, mirror freshness, token expiry) are read from
their sources by `refresh()`: at every scrape, before every EMF flush, and, with several worker processes, every
few seconds in each worker so that the merged view is current (see `multiprocess.py`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from bastion.errors import InsufficientScope, Unauthenticated
from bastion.observability import specs
from bastion.observability.specs import MetricSpec

if TYPE_CHECKING:
    from bastion.audit.pipeline import AuditStats
    from bastion.observability.emf import EmfAggregator

__all__ = ["METRICS", "Metrics", "MirrorState", "auth_failure_kind", "register_token_expiry", "seconds_until"]

logger = logging.getLogger(__name__)

# No `*_created` series: a third of the exposition for a timestamp Prometheus does not need (process start covers it).
disable_created_metrics()

# Outcomes that count as system errors (the Errors metric, the SystemErrors alarm).
_ERROR_OUTCOMES = frozenset({"error", "unavailable"})


@dataclass(frozen=True, slots=True)
class MirrorState:
    """What the mirror-freshness figures need from one registered repository."""

    name: str
    last_sync_at: datetime | None
    failing: bool


class _Child(Protocol):
    def inc(self, amount: float = 1) -> None: ...


@dataclass(slots=True)
class _CallChildren:
    """The labelled children one (tool, outcome, decision) combination increments."""

    calls: Any
    latency: Any
    error: Any | None
    denial: Any | None
    is_error: bool


class Metrics:
    """Prometheus instruments plus the scrape-time sources. Thread-safe (the separate metrics port scrapes from
    its own thread; the audit workers never call in)."""

    def __init__(self) -> None:
        # prometheus_client chose its value storage when it was imported (PROMETHEUS_MULTIPROC_DIR set or not).
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self.latency = Histogram(
            specs.LATENCY.prometheus_name,
            specs.LATENCY.help,
            specs.LATENCY.labels,
            registry=self.registry,
            buckets=specs.LATENCY_BUCKETS,
        )
        for spec in specs.ALL_SPECS:
            if spec.kind == "counter":
                self._counters[spec.name] = Counter(
                    spec.prometheus_name, spec.help, spec.labels, registry=self.registry
                )
            elif spec.kind == "gauge":
                self._gauges[spec.name] = Gauge(
                    spec.prometheus_name,
                    spec.help,
                    spec.labels,
                    registry=self.registry,
                    multiprocess_mode=spec.multiprocess_mode,
                )
        if not self.multiprocess:  # per-process figures make no sense merged across workers
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.emf: EmfAggregator | None = None  # set by the EMF flusher while it runs
        self._calls: dict[tuple[str, str, str], _CallChildren] = {}
        self._simple: dict[tuple[str, tuple[str, ...]], _Child] = {}
        self._lock = threading.Lock()
        self._audit_sources: dict[int, Callable[[], AuditStats]] = {}
        self._mirror_sources: dict[int, Callable[[], Iterable[MirrorState]]] = {}
        self._token_expiry: dict[str, Callable[[], float | None]] = {}
        self._token_sources: dict[int, Callable[[], Mapping[str, float | None]]] = {}
        self._next_source = 0
        self._seen_errors: dict[tuple[int, str], int] = {}  # (audit source, sink or "" for the spool) -> errors
        self._gauge_labels: dict[str, set[tuple[str, ...]]] = {name: set() for name in self._gauges}
        self._gauge_values: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in self._gauges}

    # -- the request path ---------------------------------------------------------------------------------------

    def tool_call(self, tool: str, outcome: str, decision: str, seconds: float, repository: str | None) -> None:
        """One finished tool call. `tool` must come from a fixed set (callers map unknown names to "unknown");
        `repository` is counted only when policy allowed it, so it is always a registered repository."""
        children = self._calls.get((tool, outcome, decision))
        if children is None:
            children = self._call_children(tool, outcome, decision)
        children.calls.inc()
        children.latency.observe(seconds)
        if children.error is not None:
            children.error.inc()
        if children.denial is not None:
            children.denial.inc()
        if repository is not None and decision == "allow":
            self._child(specs.REPOSITORY_ACCESS, (repository,)).inc()
        emf = self.emf
        if emf is not None:
            emf.tool_call(
                tool, outcome, seconds * 1000.0, children.is_error, repository if decision == "allow" else None
            )

    def auth_failure(self, kind: str) -> None:
        """A request refused by authentication; kinds in `specs.AUTH_FAILURE_KINDS`."""
        self._count(specs.AUTH_FAILURES, (kind,))
        if kind not in ("missing", "unavailable"):
            self._count(specs.DENIALS, ("auth",))

    def rate_limited(self, scope: str) -> None:
        """A 429; `scope` is the bucket's scope (tool:<name>, caller, group:<name>, protocol: all from config)."""
        self._count(specs.RATE_LIMIT_REJECTIONS, (scope,))
        self._count(specs.DENIALS, ("rate_limit",))

    def network_denied(self) -> None:
        self._count(specs.DENIALS, ("network",))

    def redactions(self, tool: str, count: int) -> None:
        """`count` secrets masked in one tool result (the content guard calls this)."""
        if count > 0:
            self._count(specs.REDACTIONS, (tool,), count)

    def _count(self, spec: MetricSpec, labels: tuple[str, ...], amount: float = 1) -> None:
        self._child(spec, labels).inc(amount)
        emf = self.emf
        if emf is not None:
            emf.count(spec, labels, amount)

    def _child(self, spec: MetricSpec, labels: tuple[str, ...]) -> _Child:
        key = (spec.name, labels)
        child = self._simple.get(key)
        if child is None:
            counter = self._counters[spec.name]
            child = counter.labels(*labels) if labels else counter
            self._simple[key] = child
        return child

    def _call_children(self, tool: str, outcome: str, decision: str) -> _CallChildren:
        is_error = outcome in _ERROR_OUTCOMES
        children = _CallChildren(
            calls=self._counters[specs.TOOL_CALLS.name].labels(tool, outcome, decision),
            latency=self.latency.labels(tool),
            error=self._counters[specs.ERRORS.name].labels(tool) if is_error else None,
            denial=self._counters[specs.DENIALS.name].labels("policy") if outcome == "denied" else None,
            is_error=is_error,
        )
        self._calls[(tool, outcome, decision)] = children
        return children

    # -- scrape-time sources ------------------------------------------------------------------------------------

    def add_audit_source(self, stats: Callable[[], AuditStats]) -> Callable[[], None]:
        """Read `stats()` (AuditLog.stats) at every refresh until the returned function is called."""
        return self._add(self._audit_sources, stats)

    def add_mirror_source(self, mirrors: Callable[[], Iterable[MirrorState]]) -> Callable[[], None]:
        return self._add(self._mirror_sources, mirrors)

    def register_token_expiry(self, organization: str, seconds_to_expiry: Callable[[], float | None]) -> None:
        """Publish UpstreamTokenSecondsToExpiry{organization} from `seconds_to_expiry()`, called at every refresh
        (from the scrape's thread: keep it quick and thread-safe). None means "no expiring token held": the
        series is left out. Registering an organisation again replaces its function."""
        with self._lock:
            self._token_expiry[organization] = seconds_to_expiry

    def add_token_expiry_source(self, expiries: Callable[[], Mapping[str, float | None]]) -> Callable[[], None]:
        """For a credentials object that holds tokens for organisations it learns of as it goes: `expiries()`
        returns {organisation: seconds to expiry, or None}, read at every refresh. For GitHubAppCredentials:
        `lambda: {org: creds.seconds_to_expiry(org) for org in creds.organizations()}`."""
        return self._add(self._token_sources, expiries)

    def unregister_token_expiry(self, organization: str) -> None:
        with self._lock:
            self._token_expiry.pop(organization, None)

    def _add(self, sources: dict[int, Any], source: Any) -> Callable[[], None]:
        with self._lock:
            key = self._next_source
            self._next_source += 1
            sources[key] = source

        def remove() -> None:
            with self._lock:
                sources.pop(key, None)

        return remove

    def refresh(self) -> None:
        """Read every source into the gauges (and the counters they report as running totals)."""
        with self._lock:
            gauges: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in self._gauges}
            self._read_audit(gauges)
            self._read_mirrors(gauges)
            self._read_tokens(gauges)
            for name, values in gauges.items():
                gauge = self._gauges[name]
                for labels, value in values.items():
                    (gauge.labels(*labels) if labels else gauge).set(value)
                if not self.multiprocess:  # a sink, mirror or organisation that went away leaves the exposition
                    for stale in self._gauge_labels[name] - values.keys():
                        if stale:  # an unlabelled gauge keeps its last value
                            gauge.remove(*stale)
                self._gauge_labels[name] = set(values)
            self._gauge_values = gauges

    def gauge_values(self) -> dict[str, dict[tuple[str, ...], float]]:
        """The gauges as the last `refresh()` set them: {metric name: {label values: value}}."""
        with self._lock:
            return {name: dict(values) for name, values in self._gauge_values.items()}

    def _read_audit(self, gauges: dict[str, dict[tuple[str, ...], float]]) -> None:
        lag, pending = gauges[specs.AUDIT_SINK_LAG.name], gauges[specs.AUDIT_SINK_PENDING.name]
        backlog = queued = 0.0
        for key, source in list(self._audit_sources.items()):
            try:
                stats = source()
            except Exception:
                logger.exception("reading audit statistics for metrics failed")
                continue
            backlog += stats.backlog
            queued += stats.spool_pending
            self._sync_total(specs.AUDIT_SPOOL_ERRORS, (), (key, ""), stats.spool_errors)
            for sink in stats.sinks.values():
                lag[(sink.name,)] = max(lag.get((sink.name,), 0.0), sink.lag_seconds)
                pending[(sink.name,)] = pending.get((sink.name,), 0.0) + sink.pending
                self._sync_total(specs.AUDIT_SINK_ERRORS, (sink.name,), (key, sink.name), sink.errors)
        if self._audit_sources:
            gauges[specs.AUDIT_SPOOL_EVENTS.name][()] = backlog
            gauges[specs.AUDIT_QUEUE_DEPTH.name][()] = queued

    def _sync_total(self, spec: MetricSpec, labels: tuple[str, ...], key: tuple[int, str], total: int) -> None:
        """A source reports a running total: add what it grew by since the last refresh to the real counter, so
        the counter is a counter in every mode (merged across workers too)."""
        seen = self._seen_errors.get(key, 0)
        self._seen_errors[key] = total
        counter = self._counters[spec.name]
        child = counter.labels(*labels) if labels else counter  # labels() also shows the series at 0
        if total > seen:
            child.inc(total - seen)
            emf = self.emf
            if emf is not None:
                emf.count(spec, labels, total - seen)

    def _read_mirrors(self, gauges: dict[str, dict[tuple[str, ...], float]]) -> None:
        age, failing = gauges[specs.MIRROR_SECONDS_SINCE_SYNC.name], gauges[specs.MIRROR_SYNC_FAILING.name]
        now = datetime.now(UTC)
        for source in list(self._mirror_sources.values()):
            try:
                states = list(source())
            except Exception:
                logger.exception("reading the mirror registry for metrics failed")
                continue
            for state in states:
                seconds = (now - state.last_sync_at).total_seconds() if state.last_sync_at else math.inf
                age[(state.name,)] = max(seconds, 0.0)
                failing[(state.name,)] = 1.0 if state.failing else 0.0

    def _read_tokens(self, gauges: dict[str, dict[tuple[str, ...], float]]) -> None:
        expiry = gauges[specs.UPSTREAM_TOKEN_SECONDS_TO_EXPIRY.name]
        for source in list(self._token_sources.values()):
            try:
                found = dict(source())
            except Exception:
                logger.exception("reading upstream token expiries for metrics failed")
                continue
            for organization, seconds in found.items():
                if seconds is not None:
                    expiry[(organization,)] = min(float(seconds), expiry.get((organization,), math.inf))
        for organization, seconds_fn in list(self._token_expiry.items()):
            try:
                seconds = seconds_fn()
            except Exception:
                logger.exception("reading the token expiry of %s for metrics failed", organization)
                continue
            if seconds is not None:
                expiry[(organization,)] = float(seconds)

    # -- exposition ---------------------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format: every worker's figures merged when several processes serve."""
        self.refresh()
        if self.multiprocess:
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


METRICS = Metrics()


def register_token_expiry(organization: str, seconds_to_expiry: Callable[[], float | None]) -> None:
    """For credential code: publish how long the token held for `organization` has left. Example:
    `register_token_expiry("acme", lambda: token.expires_at.timestamp() - time.time() if token else None)`."""
    METRICS.register_token_expiry(organization, seconds_to_expiry)


def seconds_until(moment: datetime | None) -> float | None:
    """Seconds from now until `moment` (None stays None): a helper for `register_token_expiry` callers."""
    return None if moment is None else moment.timestamp() - time.time()


def auth_failure_kind(exc: Unauthenticated) -> str:
    """The AuthFailures `kind` of a refusal (see specs.AUTH_FAILURE_KINDS)."""
    if isinstance(exc, InsufficientScope):
        return "insufficient_scope"
    if not exc.error:
        return "missing"  # no Authorization header at all: the 401 that starts every OAuth client's flow
    return "malformed" if exc.error == "invalid_request" else "invalid_token"
