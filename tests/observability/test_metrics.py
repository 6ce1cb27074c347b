"""The instruments and the scrape-time sources, on a fresh registry (exact values, no other test's counts)."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

import pytest
from tests.observability.helpers import samples, value

from bastion.audit.pipeline import AuditStats, SinkStats
from bastion.errors import InsufficientScope, Unauthenticated
from bastion.observability.metrics import Metrics, MirrorState, auth_failure_kind, seconds_until


def exposition(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return samples(metrics.exposition().decode())


def test_tool_calls_count_by_tool_outcome_and_decision_with_latency() -> None:
    metrics = Metrics()
    metrics.tool_call("get_file_contents", "ok", "allow", 0.004, "acme/api")
    metrics.tool_call("get_file_contents", "ok", "allow", 0.030, "acme/api")
    metrics.tool_call("get_file_contents", "denied", "deny", 0.001, "acme/secret")
    metrics.tool_call("search_code", "error", "none", 0.2, None)
    metrics.tool_call("search_code", "unavailable", "allow", 0.3, "acme/api")
    found = exposition(metrics)
    calls = "mcp_bastion_tool_calls_total"
    assert value(found, calls, tool="get_file_contents", outcome="ok", decision="allow") == 2
    assert value(found, calls, tool="get_file_contents", outcome="denied", decision="deny") == 1
    assert value(found, calls, tool="search_code", outcome="error", decision="none") == 1
    assert value(found, "mcp_bastion_latency_seconds_count", tool="get_file_contents") == 3
    assert value(found, "mcp_bastion_latency_seconds_sum", tool="get_file_contents") == pytest.approx(0.035)
    # 4 ms and 1 ms are at most 5 ms; 30 ms is not.
    assert value(found, "mcp_bastion_latency_seconds_bucket", tool="get_file_contents", le="0.005") == 2
    assert value(found, "mcp_bastion_latency_seconds_bucket", tool="get_file_contents", le="0.05") == 3
    # error and unavailable are system errors; a denial is a policy denial, never an error.
    assert value(found, "mcp_bastion_errors_total", tool="search_code") == 2
    assert value(found, "mcp_bastion_errors_total", tool="get_file_contents") == 0
    assert value(found, "mcp_bastion_denials_total", reason="policy") == 1
    # Only repositories policy allowed are counted: a denied name could be anything a caller typed.
    assert value(found, "mcp_bastion_repository_access_total", repository="acme/api") == 3
    assert ("mcp_bastion_repository_access_total", frozenset({("repository", "acme/secret")})) not in found


def test_auth_failures_by_kind_and_which_of_them_are_denials() -> None:
    metrics = Metrics()
    for kind in ("missing", "missing", "malformed", "invalid_token", "insufficient_scope", "unavailable"):
        metrics.auth_failure(kind)
    found = exposition(metrics)
    assert value(found, "mcp_bastion_auth_failures_total", kind="missing") == 2
    assert value(found, "mcp_bastion_auth_failures_total", kind="unavailable") == 1
    # A request without any credential starts every OAuth flow, and an unreachable identity provider is not the
    # caller's doing: neither is an "unauthorized access attempt".
    assert value(found, "mcp_bastion_denials_total", reason="auth") == 3


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (Unauthenticated("missing Authorization header", error=""), "missing"),
        (
            Unauthenticated("the Authorization header must be 'Bearer <credential>'", error="invalid_request"),
            "malformed",
        ),
        (Unauthenticated("API key revoked"), "invalid_token"),
        (InsufficientScope("needs repo:read", required=["repo:read"]), "insufficient_scope"),
    ],
)
def test_auth_failure_kind(error: Unauthenticated, kind: str) -> None:
    assert auth_failure_kind(error) == kind


def test_rate_limit_network_and_redactions() -> None:
    metrics = Metrics()
    metrics.rate_limited("tool:search_code")
    metrics.rate_limited("caller")
    metrics.network_denied()
    metrics.redactions("get_file_contents", 3)
    metrics.redactions("get_file_contents", 0)
    found = exposition(metrics)
    assert value(found, "mcp_bastion_rate_limit_rejections_total", scope="tool:search_code") == 1
    assert value(found, "mcp_bastion_rate_limit_rejections_total", scope="caller") == 1
    assert value(found, "mcp_bastion_denials_total", reason="rate_limit") == 2
    assert value(found, "mcp_bastion_denials_total", reason="network") == 1
    assert value(found, "mcp_bastion_redactions_total", tool="get_file_contents") == 3


def _stats(
    lag: float, pending: int, errors: int, *, sinks: tuple[str, ...] = ("sqlite",), spool_errors: int = 0
) -> AuditStats:
    return AuditStats(
        recorded=100,
        spooled_seq=100,
        spool_pending=2,
        spool_errors=spool_errors,
        dropped=0,
        sinks={
            name: SinkStats(name, 100 - pending, 100 - pending, errors, pending, lag, "boom" if errors else None)
            for name in sinks
        },
    )


def test_audit_figures_are_read_at_scrape_time_and_running_totals_become_counters() -> None:
    metrics = Metrics()
    current = {"stats": _stats(0.0, 0, 0, sinks=("sqlite", "cloudwatch"))}
    remove = metrics.add_audit_source(lambda: current["stats"])
    found = exposition(metrics)
    assert value(found, "mcp_bastion_audit_sink_lag_seconds", sink="cloudwatch") == 0
    assert ("mcp_bastion_audit_sink_errors_total", frozenset({("sink", "cloudwatch")})) in found  # visible at 0
    current["stats"] = _stats(42.5, 17, 3, sinks=("sqlite", "cloudwatch"), spool_errors=1)
    found = exposition(metrics)
    assert value(found, "mcp_bastion_audit_sink_lag_seconds", sink="cloudwatch") == 42.5
    assert value(found, "mcp_bastion_audit_sink_pending_events", sink="cloudwatch") == 17
    assert value(found, "mcp_bastion_audit_spool_events") == 17  # the slowest sink's backlog
    assert value(found, "mcp_bastion_audit_queue_depth") == 2
    assert value(found, "mcp_bastion_audit_sink_errors_total", sink="cloudwatch") == 3
    assert value(found, "mcp_bastion_audit_spool_errors_total") == 1
    current["stats"] = _stats(1.0, 1, 5, sinks=("sqlite",), spool_errors=1)
    found = exposition(metrics)
    # The counter grew by the source's growth (3 -> 5), not by its value again.
    assert value(found, "mcp_bastion_audit_sink_errors_total", sink="sqlite") == 5
    # A sink that is no longer configured leaves the gauges.
    assert ("mcp_bastion_audit_sink_lag_seconds", frozenset({("sink", "cloudwatch")})) not in found
    remove()
    found = exposition(metrics)
    assert ("mcp_bastion_audit_sink_lag_seconds", frozenset({("sink", "sqlite")})) not in found


def test_mirror_freshness_and_failing_syncs() -> None:
    metrics = Metrics()
    now = datetime.now(UTC)
    states = [
        MirrorState("acme/api", now - timedelta(seconds=120), failing=False),
        MirrorState("acme/web", now - timedelta(hours=2), failing=True),
        MirrorState("acme/new", None, failing=False),
    ]
    metrics.add_mirror_source(lambda: states)
    found = exposition(metrics)
    assert 120 <= value(found, "mcp_bastion_mirror_seconds_since_sync", repository="acme/api") < 180
    assert value(found, "mcp_bastion_mirror_sync_failing", repository="acme/web") == 1
    assert value(found, "mcp_bastion_mirror_sync_failing", repository="acme/api") == 0
    assert math.isinf(value(found, "mcp_bastion_mirror_seconds_since_sync", repository="acme/new"))


def test_token_expiry_registration(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    expires = datetime.now(UTC) + timedelta(seconds=900)
    metrics.register_token_expiry("acme", lambda: seconds_until(expires))
    metrics.register_token_expiry("pat-org", lambda: None)  # a token that does not expire: no series

    def broken() -> float:
        raise RuntimeError("credential store gone")

    metrics.register_token_expiry("broken", broken)
    with caplog.at_level(logging.ERROR):
        found = exposition(metrics)
    assert 800 < value(found, "mcp_bastion_upstream_token_seconds_to_expiry", organization="acme") <= 900
    names = {dict(labels).get("organization") for name, labels in found if "upstream_token" in name}
    assert names == {"acme"}
    assert "reading the token expiry of broken" in caplog.text
    metrics.unregister_token_expiry("acme")
    found = exposition(metrics)
    assert not [name for name, _ in found if "upstream_token" in name]


def test_a_token_source_for_organisations_learnt_on_the_way() -> None:
    metrics = Metrics()
    held: dict[str, float | None] = {}
    remove = metrics.add_token_expiry_source(lambda: held)
    assert not [name for name, _ in exposition(metrics) if "upstream_token" in name]
    held.update({"acme": 1800.0, "globex": 240.0, "pat-only": None})
    found = exposition(metrics)
    assert value(found, "mcp_bastion_upstream_token_seconds_to_expiry", organization="acme") == 1800
    assert value(found, "mcp_bastion_upstream_token_seconds_to_expiry", organization="globex") == 240
    assert ("mcp_bastion_upstream_token_seconds_to_expiry", frozenset({("organization", "pat-only")})) not in found
    remove()
    assert not [name for name, _ in exposition(metrics) if "upstream_token" in name]
