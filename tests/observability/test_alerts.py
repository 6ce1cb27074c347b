"""deploy/prometheus/alerts.yml: a well-formed Prometheus rules file whose expressions parse (promql-parser, the
Rust PromQL parser: promtool is not installable from PyPI), select only metrics and labels the server exports,
and use the thresholds the CloudWatch alarms use."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, get_args

import promql_parser
import pytest
import yaml

from bastion.audit.event import Decision, Outcome
from bastion.observability import specs
from bastion.observability.metrics import Metrics

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
CDK_SETTINGS = ROOT / "infra" / "cdk" / "bastion_infra" / "settings.py"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}

# The label values the server can produce, for matchers that name values.
KNOWN_VALUES = {
    "reason": set(specs.DENIAL_REASONS),
    "kind": set(specs.AUTH_FAILURE_KINDS),
    "outcome": set(get_args(Outcome)),
    "decision": set(get_args(Decision)),
}
# alert -> (CloudWatch alarm threshold field in AlarmThresholds, comparison)
CLOUDWATCH_TWINS = {
    "UnauthorizedAccessAttempts": ("denied_attempts", ">"),
    "ExcessiveApiCalls": ("tool_calls", ">"),
    "UpstreamTokenExpiring": ("token_expiry_seconds", "<"),
    "SystemErrors": ("errors", ">"),
    "AuditSinkLag": ("audit_sink_lag_seconds", ">"),
}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    found: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}, group.keys()
        assert isinstance(group["name"], str) and group["name"]  # noqa: PT018
        found.extend(group["rules"])
    return found


def exported_series() -> dict[str, set[str]]:
    """Every series name the registry exports -> its label names (from the specs and a real exposition)."""
    series: dict[str, set[str]] = {}
    for spec in specs.ALL_SPECS:
        for name in spec.sample_names:
            series[name] = set(spec.labels) | ({"le"} if name.endswith("_bucket") else set())
    text = Metrics().exposition().decode()
    for name in list(series):
        family = name.removesuffix("_total").removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        assert f"# TYPE {family}" in text or f"# TYPE {name}" in text, f"{name} is not in the real exposition"
    return series


def cloudwatch_thresholds() -> dict[str, int]:
    """AlarmThresholds' defaults, read from the CDK source (importing it would start the jsii runtime)."""
    tree = ast.parse(CDK_SETTINGS.read_text())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "AlarmThresholds"]
    return {
        statement.target.id: ast.literal_eval(statement.value)
        for statement in cls.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value
    }


def test_every_rule_is_well_formed() -> None:
    found = rules()
    names = [rule["alert"] for rule in found]
    assert sorted(names) == sorted(CLOUDWATCH_TWINS), "seed 000's four alerts plus audit-sink lag, no more, no less"
    for rule in found:
        assert set(rule) <= RULE_KEYS, f"{rule['alert']}: unknown keys {set(rule) - RULE_KEYS}"
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
        assert DURATION.match(str(rule["for"])), f"{rule['alert']}: for={rule['for']!r}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= set(rule["annotations"])
        for text in rule["annotations"].values():  # Go templates: balanced braces
            assert text.count("{{") == text.count("}}"), f"{rule['alert']}: {text}"


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_expressions_parse_and_select_only_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    expression = promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
    series = exported_series()
    selected: list[tuple[str, set[str]]] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name in series, f"{rule['alert']}: {node.name} is not exported by the server"
            labels = series[node.name]
            for matcher in node.matchers.matchers:
                assert matcher.name in labels, f"{rule['alert']}: {node.name} has no label {matcher.name}"
                known = KNOWN_VALUES.get(matcher.name)
                if known is not None:
                    values = set(matcher.value.split("|")) if "Re" in str(matcher.op) else {matcher.value}
                    assert values <= known, f"{rule['alert']}: {matcher.name} values {values - known} never occur"
            selected.append((node.name, labels))
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping = set(node.modifier.labels)
            inner: list[set[str]] = []

            def collect(child: Any) -> bool:
                if isinstance(child, promql_parser.VectorSelector) and child.name in series:
                    inner.append(series[child.name])
                return True

            promql_parser.walk(node.expr, collect)
            assert inner and all(grouping <= labels for labels in inner), f"{rule['alert']}: by {grouping}"  # noqa: PT018
        return True

    promql_parser.walk(expression, visit)
    assert selected, f"{rule['alert']} selects no metric"


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_thresholds_equal_the_cloudwatch_alarms(rule: dict[str, Any]) -> None:
    field, comparison = CLOUDWATCH_TWINS[rule["alert"]]
    expression = promql_parser.parse(rule["expr"])
    assert isinstance(expression, promql_parser.BinaryExpr)
    assert str(expression.op) == comparison, f"{rule['alert']}: compares with {expression.op}"
    assert isinstance(expression.rhs, promql_parser.NumberLiteral)
    assert expression.rhs.val == cloudwatch_thresholds()[field], f"{rule['alert']} and the CloudWatch alarm differ"


def test_a_broken_expression_is_caught() -> None:
    with pytest.raises(ValueError, match="unclosed"):
        promql_parser.parse("sum(increase(mcp_bastion_errors_total[5m]) > 5")
