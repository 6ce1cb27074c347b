"""The figures match the deployment contract the CloudWatch alarms and dashboard are built on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bastion.observability import specs
from bastion.observability.specs import MetricSpec, snake_case

CONTRACT = Path(__file__).parents[2] / "docs" / "dev" / "deploy-contract.md"


def contract_rows() -> dict[str, tuple[str, tuple[str, ...]]]:
    """metric -> (unit, dimensions) from the table under "Metrics the alarms use"."""
    text = CONTRACT.read_text()
    table = text.split("## Metrics the alarms use", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue  # header, separator, or the HTTP 5xx row (from the load balancer, not the application)
        name = cells[0].strip("`")
        dimensions = tuple(re.findall(r"`([A-Za-z]+)`", cells[2].split("(")[0]))
        rows[name] = (cells[1], dimensions)
    return rows


def test_the_contract_table_is_read() -> None:
    rows = contract_rows()
    assert rows["ToolCalls"] == ("Count", ("Tool", "Outcome")), rows
    assert rows["Denials"] == ("Count", ("Reason",)), rows
    assert len(rows) == 8, sorted(rows)


def test_every_contract_metric_has_a_spec_with_its_unit_and_exact_dimensions() -> None:
    by_name = {spec.name: spec for spec in specs.ALL_SPECS}
    for name, (unit, dimensions) in contract_rows().items():
        assert name in by_name, f"{name} is in the deploy contract but the application does not publish it"
        spec = by_name[name]
        assert spec.unit == unit, f"{name}: unit {spec.unit}, the contract says {unit}"
        assert spec.dimensions == dimensions, f"{name}: dimensions {spec.dimensions}, the contract says {dimensions}"
        assert spec.in_contract, f"{name} is in the contract but not marked in_contract"
    marked = {spec.name for spec in specs.ALL_SPECS if spec.in_contract}
    assert marked == set(contract_rows()), "in_contract marks a metric the contract does not list"


def test_the_denial_reasons_are_the_contracts() -> None:
    table = CONTRACT.read_text().split("## Metrics the alarms use", 1)[1]
    row = next(line for line in table.splitlines() if line.startswith("| `Denials`"))
    dimensions_cell = row.strip("|").split("|")[2]
    assert tuple(re.findall(r"`([a-z_]+)`", dimensions_cell)) == specs.DENIAL_REASONS


@pytest.mark.parametrize(
    ("spec", "family", "series"),
    [
        (specs.TOOL_CALLS, "mcp_bastion_tool_calls", ("mcp_bastion_tool_calls_total",)),
        (
            specs.LATENCY,
            "mcp_bastion_latency_seconds",
            (
                "mcp_bastion_latency_seconds_bucket",
                "mcp_bastion_latency_seconds_sum",
                "mcp_bastion_latency_seconds_count",
            ),
        ),
        (specs.AUDIT_SINK_LAG, "mcp_bastion_audit_sink_lag_seconds", ("mcp_bastion_audit_sink_lag_seconds",)),
        (
            specs.UPSTREAM_TOKEN_SECONDS_TO_EXPIRY,
            "mcp_bastion_upstream_token_seconds_to_expiry",
            ("mcp_bastion_upstream_token_seconds_to_expiry",),
        ),
    ],
)
def test_prometheus_names_follow_the_one_rule(spec: MetricSpec, family: str, series: tuple[str, ...]) -> None:
    assert spec.prometheus_name == family
    assert spec.sample_names == series


def test_labels_are_the_dimensions_in_snake_case_plus_prometheus_only_ones() -> None:
    assert specs.TOOL_CALLS.labels == ("tool", "outcome", "decision")
    assert specs.UPSTREAM_TOKEN_SECONDS_TO_EXPIRY.labels == ("organization",)
    assert snake_case("AuditSinkLagSeconds") == "audit_sink_lag_seconds"
    names = [spec.prometheus_name for spec in specs.ALL_SPECS]
    assert len(names) == len(set(names)), "two figures share a Prometheus name"
