"""Every figure mcp-bastion publishes, named once for both outlets.

The CloudWatch name and dimensions are the deployment contract (docs/dev/deploy-contract.md): the alarms and the
dashboard query them, so EMF uses them verbatim. Prometheus gets the same figure under a name derived from it by
one fixed rule, because Prometheus has no namespace but the name itself and its conventions are snake_case, a
`_total` suffix on counters and seconds as the unit:

    prometheus name = "mcp_bastion_" + snake_case(CloudWatch name) [+ "_seconds" when the unit is Milliseconds]
    label           = snake_case(dimension)

So `ToolCalls{Tool, Outcome}` is `mcp_bastion_tool_calls_total{tool, outcome}` and `Latency` (Milliseconds) is the
histogram `mcp_bastion_latency_seconds{tool}`. A few figures carry one more Prometheus label than CloudWatch has
dimensions (`decision` on tool calls): EMF sums over it, because every extra dimension value is another paid
CloudWatch metric and the contract's alarms select exact dimension sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALL_SPECS",
    "AUDIT_QUEUE_DEPTH",
    "AUDIT_SINK_ERRORS",
    "AUDIT_SINK_LAG",
    "AUDIT_SINK_PENDING",
    "AUDIT_SPOOL_ERRORS",
    "AUDIT_SPOOL_EVENTS",
    "AUTH_FAILURES",
    "AUTH_FAILURE_KINDS",
    "DENIALS",
    "DENIAL_REASONS",
    "ERRORS",
    "LATENCY",
    "LATENCY_BUCKETS",
    "MIRROR_SECONDS_SINCE_SYNC",
    "MIRROR_SYNC_FAILING",
    "PROMETHEUS_PREFIX",
    "RATE_LIMIT_REJECTIONS",
    "REDACTIONS",
    "REPOSITORY_ACCESS",
    "TOOL_CALLS",
    "UPSTREAM_TOKEN_SECONDS_TO_EXPIRY",
    "MetricSpec",
    "snake_case",
]

PROMETHEUS_PREFIX = "mcp_bastion_"

Kind = Literal["counter", "histogram", "gauge"]
Unit = Literal["Count", "Milliseconds", "Seconds", "None"]
# How `bastion serve --workers N` merges one gauge across worker processes (prometheus_client multiprocess modes).
MultiprocessMode = Literal["livesum", "livemax", "livemin"]

# The values the `reason` label of Denials takes (the contract's alarm adds policy + auth).
DENIAL_REASONS = ("policy", "auth", "rate_limit", "network")
# The `kind` label of AuthFailures. `missing` (no credential at all) and `unavailable` (the identity provider could
# not be reached) are not counted as auth denials: the first is how every OAuth client starts (it learns where to
# get a token from the 401), the second is not the caller's doing.
AUTH_FAILURE_KINDS = ("missing", "malformed", "invalid_token", "insufficient_scope", "unavailable")

# Tool call latency buckets in seconds: a mirror read is ~1-5 ms, a search or an analysis up to its 10 s timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(name: str) -> str:
    """`ToolCalls` -> `tool_calls`, `AuditSinkLagSeconds` -> `audit_sink_lag_seconds`."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One figure: its CloudWatch name, unit and dimensions, and what Prometheus calls it."""

    name: str  # CloudWatch metric name (EMF), e.g. "ToolCalls"
    kind: Kind
    unit: Unit
    dimensions: tuple[str, ...]  # CloudWatch dimensions, e.g. ("Tool", "Outcome")
    help: str
    prometheus_only_labels: tuple[str, ...] = ()  # summed over in EMF
    multiprocess_mode: MultiprocessMode = "livesum"  # gauges only
    in_contract: bool = False  # listed in docs/dev/deploy-contract.md (the alarms and dashboard use it)

    @property
    def prometheus_name(self) -> str:
        """The metric family name (prometheus_client adds `_total` to counters, `_bucket`/`_sum`/`_count` to
        histograms)."""
        suffix = "_seconds" if self.unit == "Milliseconds" else ""
        return PROMETHEUS_PREFIX + snake_case(self.name) + suffix

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(snake_case(dimension) for dimension in self.dimensions) + self.prometheus_only_labels

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The series names that appear in the exposition text."""
        base = self.prometheus_name
        if self.kind == "counter":
            return (f"{base}_total",)
        if self.kind == "histogram":
            return (f"{base}_bucket", f"{base}_sum", f"{base}_count")
        return (base,)


# -- the deployment contract (docs/dev/deploy-contract.md) -------------------------------------------------------
TOOL_CALLS = MetricSpec(
    "ToolCalls",
    "counter",
    "Count",
    ("Tool", "Outcome"),
    "Tool calls by tool and outcome (ok, denied, invalid_input, not_found, unavailable, error, ...); Prometheus "
    "also by policy decision (allow, deny, none).",
    prometheus_only_labels=("decision",),
    in_contract=True,
)
DENIALS = MetricSpec(
    "Denials",
    "counter",
    "Count",
    ("Reason",),
    "Refused requests by layer: policy (a tool call policy denied), auth (a credential presented and refused), "
    "rate_limit (429), network (source address not allowed).",
    in_contract=True,
)
ERRORS = MetricSpec(
    "Errors",
    "counter",
    "Count",
    ("Tool",),
    "Tool calls that failed inside the server: outcome error (a bug, logged with a traceback) or unavailable "
    "(a mirror, git or the state store could not serve it).",
    in_contract=True,
)
LATENCY = MetricSpec(
    "Latency",
    "histogram",
    "Milliseconds",
    ("Tool",),
    "Tool call duration, from the tool body's start until its audit event is in the durable spool.",
    in_contract=True,
)
REPOSITORY_ACCESS = MetricSpec(
    "RepositoryAccess",
    "counter",
    "Count",
    ("Repository",),
    "Tool calls that policy allowed on a repository (registered repositories only, so the label set is bounded).",
    in_contract=True,
)
UPSTREAM_TOKEN_SECONDS_TO_EXPIRY = MetricSpec(
    "UpstreamTokenSecondsToExpiry",
    "gauge",
    "Seconds",
    ("Organization",),
    "Seconds until the GitHub token held for an organisation expires (tokens that do not expire are not listed).",
    multiprocess_mode="livemin",
    in_contract=True,
)
AUDIT_SINK_LAG = MetricSpec(
    "AuditSinkLagSeconds",
    "gauge",
    "Seconds",
    ("Sink",),
    "Age of the oldest audit event a sink has not stored yet (0 when it is caught up).",
    multiprocess_mode="livemax",
    in_contract=True,
)
AUDIT_SPOOL_EVENTS = MetricSpec(
    "AuditSpoolEvents",
    "gauge",
    "Count",
    (),
    "Audit events in the durable spool that the slowest sink has not stored yet.",
    in_contract=True,
)

# -- more figures (issue 4) --------------------------------------------------------------------------------------
AUTH_FAILURES = MetricSpec(
    "AuthFailures",
    "counter",
    "Count",
    ("Kind",),
    "Requests refused by authentication, by kind: missing, malformed, invalid_token, insufficient_scope, "
    "unavailable (the identity provider's keys could not be fetched).",
)
RATE_LIMIT_REJECTIONS = MetricSpec(
    "RateLimitRejections",
    "counter",
    "Count",
    ("Scope",),
    "Requests answered 429, by the bucket that was empty: tool:<name>, caller, group:<name> or protocol.",
)
REDACTIONS = MetricSpec(
    "Redactions",
    "counter",
    "Count",
    ("Tool",),
    "Secrets the content guard masked in what a tool returned.",
)
AUDIT_SINK_PENDING = MetricSpec(
    "AuditSinkPendingEvents",
    "gauge",
    "Count",
    ("Sink",),
    "Audit events in the spool that this sink has not stored yet.",
)
AUDIT_SINK_ERRORS = MetricSpec(
    "AuditSinkErrors",
    "counter",
    "Count",
    ("Sink",),
    "Failed attempts to write a batch of audit events to a sink (each is retried with backoff).",
)
AUDIT_QUEUE_DEPTH = MetricSpec(
    "AuditQueueDepth",
    "gauge",
    "Count",
    (),
    "Audit events sealed and waiting for the spool's next group commit.",
)
AUDIT_SPOOL_ERRORS = MetricSpec(
    "AuditSpoolErrors",
    "counter",
    "Count",
    (),
    "Failed group commits to the audit spool (disk full, I/O error): events wait in memory meanwhile.",
)
MIRROR_SECONDS_SINCE_SYNC = MetricSpec(
    "MirrorSecondsSinceSync",
    "gauge",
    "Seconds",
    ("Repository",),
    "Seconds since a mirror's last successful sync (+Inf when it never synced).",
    multiprocess_mode="livemax",
)
MIRROR_SYNC_FAILING = MetricSpec(
    "MirrorSyncFailing",
    "gauge",
    "None",
    ("Repository",),
    "1 when a mirror's last sync attempt failed (the previous mirror is still served), else 0.",
    multiprocess_mode="livemax",
)

ALL_SPECS = (
    TOOL_CALLS,
    DENIALS,
    ERRORS,
    LATENCY,
    REPOSITORY_ACCESS,
    UPSTREAM_TOKEN_SECONDS_TO_EXPIRY,
    AUDIT_SINK_LAG,
    AUDIT_SPOOL_EVENTS,
    AUTH_FAILURES,
    RATE_LIMIT_REJECTIONS,
    REDACTIONS,
    AUDIT_SINK_PENDING,
    AUDIT_SINK_ERRORS,
    AUDIT_QUEUE_DEPTH,
    AUDIT_SPOOL_ERRORS,
    MIRROR_SECONDS_SINCE_SYNC,
    MIRROR_SYNC_FAILING,
)
