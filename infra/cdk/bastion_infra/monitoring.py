"""Dashboard and alarms over the application's metrics (namespace `McpBastion`, see docs/dev/deploy-contract.md).

The application publishes its metrics as CloudWatch Embedded Metric Format on stdout, with per-tool, per-reason
and per-repository dimensions. Alarms that need a total across a dimension use CloudWatch Metrics Insights
queries (`SELECT SUM(...) FROM SCHEMA(...)`), so a new tool or repository is counted without a stack change.
"""

# pyright: reportArgumentType=false
# (jsii bindings: a CDK class and its own interface differ in parameter names, e.g. Key.add_alias(alias_name)
# vs IKey.add_alias(alias), which pyright reports at every call that passes a Key where an IKey is expected.)

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from .settings import AlarmThresholds

__all__ = ["NAMESPACE", "BastionMonitoring", "PlatformMetrics"]

NAMESPACE = "McpBastion"
_FIVE_MINUTES = Duration.minutes(5)


def _insights(query: str, label: str, period: Duration = _FIVE_MINUTES) -> cw.MathExpression:
    return cw.MathExpression(expression=query, using_metrics={}, label=label, period=period)


def _search(metric_name: str, dimensions: str, statistic: str, label: str) -> cw.MathExpression:
    # SEARCH draws one line per dimension value (per tool), which Metrics Insights cannot do for percentiles.
    return cw.MathExpression(
        expression=f"SEARCH('{{{NAMESPACE},{dimensions}}} MetricName=\"{metric_name}\"', '{statistic}', 300)",
        using_metrics={},
        label=label,
        period=_FIVE_MINUTES,
    )


@dataclass(frozen=True)
class PlatformMetrics:
    """What the hosting platform (ALB + ECS, or API Gateway + Lambda) contributes to the dashboard and alarms."""

    http_5xx: cw.IMetric
    requests: cw.IMetric
    latency: cw.IMetric
    extra_widgets: Sequence[cw.IWidget] = ()
    extra_alarms: Sequence[tuple[str, cw.IMetric, float, str]] = ()


class BastionMonitoring(Construct):
    """An SNS topic (KMS, TLS-only, optional e-mail), seed 000's four alerts, 5xx, audit-sink lag, a dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name_prefix: str,
        key: kms.IKey,
        thresholds: AlarmThresholds,
        alarm_email: str | None,
        platform: PlatformMetrics,
    ) -> None:
        super().__init__(scope, construct_id)
        self._name_prefix = name_prefix
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name=f"{name_prefix} alarms", master_key=key, enforce_ssl=True
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: dict[str, cw.Alarm] = {}

        denied = cw.MathExpression(
            expression="FILL(policy, 0) + FILL(auth, 0)",
            using_metrics={
                "policy": self._metric("Denials", {"Reason": "policy"}),
                "auth": self._metric("Denials", {"Reason": "auth"}),
            },
            label="Denied attempts (policy + auth)",
            period=_FIVE_MINUTES,
        )
        self._alarm(
            "UnauthorizedAccessAttempts",
            denied,
            thresholds.denied_attempts,
            "Unauthorized repository access attempts: policy and authentication denials above the threshold in 5 min.",
        )
        self._alarm(
            "ExcessiveApiCalls",
            _insights("SELECT SUM(ToolCalls) FROM SCHEMA(McpBastion, Outcome, Tool)", "Tool calls"),
            thresholds.tool_calls,
            "Excessive API calls: tool calls across all callers above the threshold in 5 min.",
        )
        self._alarm(
            "UpstreamTokenExpiring",
            _insights(
                "SELECT MIN(UpstreamTokenSecondsToExpiry) FROM SCHEMA(McpBastion, Organization)",
                "Seconds to upstream token expiry",
            ),
            thresholds.token_expiry_seconds,
            "Token expiry approaching: a GitHub installation token was not refreshed and expires soon.",
            below=True,
        )
        self._alarm(
            "SystemErrors",
            _insights("SELECT SUM(Errors) FROM SCHEMA(McpBastion, Tool)", "Errors"),
            thresholds.errors,
            "System errors: tool calls that failed inside the server above the threshold in 5 min.",
        )
        self._alarm(
            "Http5xx",
            platform.http_5xx,
            thresholds.http_5xx,
            "HTTP 5xx answers from the load balancer / API Gateway above the threshold in 5 min.",
        )
        self._alarm(
            "AuditSinkLag",
            _insights("SELECT MAX(AuditSinkLagSeconds) FROM SCHEMA(McpBastion, Sink)", "Audit sink lag"),
            thresholds.audit_sink_lag_seconds,
            "Audit sink lag: an audit sink is behind by more than the threshold; events wait in the durable spool.",
        )
        for name, metric, threshold, description in platform.extra_alarms:
            self._alarm(name, metric, threshold, description)

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=name_prefix)
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24, height=3)
        )
        self.dashboard.add_widgets(
            self._graph(
                "Tool calls by outcome",
                _insights("SELECT SUM(ToolCalls) FROM SCHEMA(McpBastion, Outcome, Tool) GROUP BY Outcome", "calls"),
            ),
            self._graph(
                "Denials by reason (abnormal attempts)",
                _insights("SELECT SUM(Denials) FROM SCHEMA(McpBastion, Reason) GROUP BY Reason", "denials"),
            ),
            self._graph(
                "Errors by tool", _insights("SELECT SUM(Errors) FROM SCHEMA(McpBastion, Tool) GROUP BY Tool", "errors")
            ),
        )
        self.dashboard.add_widgets(
            self._graph("Latency p95 by tool (ms)", _search("Latency", "Tool", "p95", "p95")),
            self._graph(
                "Repository access (top 10)",
                _insights(
                    "SELECT SUM(RepositoryAccess) FROM SCHEMA(McpBastion, Repository) GROUP BY Repository "
                    "ORDER BY SUM() DESC LIMIT 10",
                    "reads",
                ),
            ),
            self._graph(
                "Upstream token seconds to expiry",
                _insights(
                    "SELECT MIN(UpstreamTokenSecondsToExpiry) FROM SCHEMA(McpBastion, Organization) "
                    "GROUP BY Organization",
                    "seconds",
                ),
            ),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Audit sink lag (s)",
                _insights("SELECT MAX(AuditSinkLagSeconds) FROM SCHEMA(McpBastion, Sink) GROUP BY Sink", "lag"),
            ),
            self._graph("Audit spool events", self._metric("AuditSpoolEvents", {}, statistic="Maximum")),
            self._graph("HTTP requests, 5xx", platform.requests, platform.http_5xx),
        )
        self.dashboard.add_widgets(self._graph("HTTP latency", platform.latency), *platform.extra_widgets)

    @staticmethod
    def _metric(name: str, dimensions: dict[str, str], statistic: str = "Sum") -> cw.Metric:
        return cw.Metric(
            namespace=NAMESPACE, metric_name=name, dimensions_map=dimensions, statistic=statistic, period=_FIVE_MINUTES
        )

    @staticmethod
    def _graph(title: str, *metrics: cw.IMetric) -> cw.GraphWidget:
        return cw.GraphWidget(title=title, left=list(metrics), width=8, height=6)

    def _alarm(self, name: str, metric: cw.IMetric, threshold: float, description: str, *, below: bool = False) -> None:
        alarm = cw.Alarm(
            self,
            name,
            alarm_name=f"{self._name_prefix}-{name}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=(
                cw.ComparisonOperator.LESS_THAN_THRESHOLD if below else cw.ComparisonOperator.GREATER_THAN_THRESHOLD
            ),
            # No traffic means no data: that is not an incident for any of these alarms.
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        self.alarms[name] = alarm
