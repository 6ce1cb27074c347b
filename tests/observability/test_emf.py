"""CloudWatch Embedded Metric Format: the exact document shape, every line checked against the specification's
rules, and a real server printing what its calls did when it stops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.observability.helpers import OWNER, REPO, call_tool, deployment

from bastion.audit.pipeline import AuditStats, SinkStats
from bastion.observability import specs
from bastion.observability.emf import MAX_VALUES_PER_METRIC, EmfAggregator, EmfPublisher, render_documents
from bastion.observability.metrics import Metrics

# CloudWatch's StandardUnit values (the EMF `Unit` member must be one of them).
STANDARD_UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits",
    "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second",
    "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
    "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def assert_valid_emf(line: str) -> dict[str, Any]:
    """The structural rules of the EMF specification, one by one."""
    document = json.loads(line)  # a single JSON object, nothing before or after it
    assert isinstance(document, dict)
    metadata = document["_aws"]
    assert set(metadata) <= {"Timestamp", "CloudWatchMetrics", "LogGroupName"}
    assert isinstance(metadata["Timestamp"], int)
    assert metadata["Timestamp"] > 1_600_000_000_000
    directives = metadata["CloudWatchMetrics"]
    assert isinstance(directives, list)
    assert directives
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list)
            assert len(dimension_set) <= 30
            for dimension in dimension_set:
                member = document[dimension]  # every dimension references a root member with a string value
                assert isinstance(member, str)
                assert 1 <= len(member) <= 1024
        assert 1 <= len(directive["Metrics"]) <= 100
        for definition in directive["Metrics"]:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            assert definition.get("Unit", "None") in STANDARD_UNITS
            member = document[definition["Name"]]  # every metric references a root member holding its value
            if isinstance(member, dict):
                assert set(member) == {"Values", "Counts"}
                assert 1 <= len(member["Values"]) == len(member["Counts"]) <= MAX_VALUES_PER_METRIC
                assert all(isinstance(number, int | float) for number in member["Values"] + member["Counts"])
            else:
                assert isinstance(member, int | float)
                assert not isinstance(member, bool)
    return document


def test_the_exact_document_shape() -> None:
    aggregator = EmfAggregator()
    aggregator.tool_call("get_file_contents", "ok", 2.14, is_error=False, repository="acme/api")
    aggregator.tool_call("get_file_contents", "ok", 2.11, is_error=False, repository="acme/api")
    aggregator.tool_call("get_file_contents", "error", 31.0, is_error=True, repository=None)
    aggregator.count(specs.DENIALS, ("auth",))
    counts, latency = aggregator.drain()
    gauges = {specs.AUDIT_SPOOL_EVENTS.name: {(): 7.0}, specs.AUDIT_SINK_LAG.name: {("sqlite",): 0.5}}
    documents = render_documents("McpBastion", counts, latency, gauges, 1_795_000_000_000)
    by_dimensions = {tuple(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): doc for doc in documents}

    def header(dimensions: list[str], *metrics: tuple[str, str]) -> dict[str, Any]:
        return {
            "Timestamp": 1_795_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "McpBastion",
                    "Dimensions": [dimensions],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics],
                }
            ],
        }

    assert {
        "_aws": header(["Tool", "Outcome"], ("ToolCalls", "Count")),
        "Tool": "get_file_contents",
        "Outcome": "ok",
        "ToolCalls": 2,
    } in documents
    assert by_dimensions[("Tool",)] == {
        "_aws": header(["Tool"], ("Errors", "Count"), ("Latency", "Milliseconds")),
        "Tool": "get_file_contents",
        "Errors": 1,
        # 2.14 and 2.11 ms round to 2.1 (two significant digits): one value counted twice
        "Latency": {"Values": [2.1, 31.0], "Counts": [2, 1]},
    }
    assert by_dimensions[("Reason",)] == {
        "_aws": header(["Reason"], ("Denials", "Count")),
        "Reason": "auth",
        "Denials": 1,
    }
    assert by_dimensions[("Repository",)]["RepositoryAccess"] == 2
    assert by_dimensions[()] == {"_aws": header([], ("AuditSpoolEvents", "Count")), "AuditSpoolEvents": 7.0}
    assert by_dimensions[("Sink",)] == {
        "_aws": header(["Sink"], ("AuditSinkLagSeconds", "Seconds")),
        "Sink": "sqlite",
        "AuditSinkLagSeconds": 0.5,
    }
    assert len(documents) == 7, [doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for doc in documents]
    for document in documents:
        assert_valid_emf(json.dumps(document))


def test_more_than_100_distinct_latencies_are_split_over_lines() -> None:
    aggregator = EmfAggregator()
    for index in range(250):  # 250 values that stay distinct at two significant digits: 1.0-9.9, 10-99, 100-...
        milliseconds = (1 + (index % 90) / 10) * 10 ** (index // 90)
        aggregator.tool_call("search_code", "ok", milliseconds, is_error=False, repository=None)
    counts, latency = aggregator.drain()
    documents = render_documents("McpBastion", counts, latency, {}, 1_795_000_000_000)
    chunks = [doc["Latency"] for doc in documents if "Latency" in doc]
    assert [len(chunk["Values"]) for chunk in chunks] == [100, 100, 50]
    assert sum(sum(chunk["Counts"]) for chunk in chunks) == 250
    for document in documents:
        assert_valid_emf(json.dumps(document))


def test_never_synced_mirrors_and_zero_counts_are_left_out() -> None:
    counts = {("Denials", ("policy",)): 0.0}
    gauges = {specs.MIRROR_SECONDS_SINCE_SYNC.name: {("acme/new",): float("inf")}}
    assert render_documents("McpBastion", counts, {}, gauges, 1) == []


def test_the_publisher_prints_one_aggregate_per_flush_and_resets() -> None:
    metrics = Metrics()
    lines: list[str] = []
    publisher = EmfPublisher(metrics, namespace="McpBastion", interval_seconds=3600, write=lines.append)
    metrics.emf = publisher.aggregator
    stats = AuditStats(10, 10, 0, 0, 0, {"sqlite": SinkStats("sqlite", 10, 10, 2, 0, 0.0, "x")})
    metrics.add_audit_source(lambda: stats)
    for _ in range(5):
        metrics.tool_call("list_repositories", "ok", "none", 0.002, None)
    metrics.rate_limited("caller")
    assert publisher.flush() == len(lines)
    documents = [assert_valid_emf(line) for line in lines]
    calls = [doc for doc in documents if "ToolCalls" in doc]
    assert [(doc["Tool"], doc["Outcome"], doc["ToolCalls"]) for doc in calls] == [("list_repositories", "ok", 5)]
    assert [doc["RateLimitRejections"] for doc in documents if "RateLimitRejections" in doc] == [1]
    assert [doc["AuditSinkErrors"] for doc in documents if "AuditSinkErrors" in doc] == [2]  # since the last flush
    lines.clear()
    publisher.flush()
    documents = [assert_valid_emf(line) for line in lines]
    assert not [doc for doc in documents if "ToolCalls" in doc or "AuditSinkErrors" in doc], "counted twice"
    assert [doc["AuditSinkLagSeconds"] for doc in documents if "AuditSinkLagSeconds" in doc] == [0.0]  # gauges stay


def test_a_server_prints_emf_on_stdout_when_it_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = {"emf": True, "emf_interval_seconds": 3600}  # nothing before shutdown: the final flush is the test
    with deployment(tmp_path, metrics=settings) as target:
        alice = target.keys["alice"]
        for _ in range(2):
            call_tool(target, alice, "get_file_contents", {"owner": OWNER, "repo": REPO, "path": "README.md"})
        call_tool(target, alice, "get_file_contents", {"owner": OWNER, "repo": REPO, "path": ".env"})
        call_tool(target, None, "list_repositories", {})
        capsys.readouterr()  # whatever was printed before the server stops
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    documents = [assert_valid_emf(line) for line in printed]
    assert documents, "no EMF line was printed"
    assert all(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "McpBastion" for doc in documents)
    calls = {(doc["Tool"], doc["Outcome"]): doc["ToolCalls"] for doc in documents if "ToolCalls" in doc}
    assert calls == {("get_file_contents", "ok"): 2, ("get_file_contents", "denied"): 1}
    denials = {doc["Reason"]: doc["Denials"] for doc in documents if "Denials" in doc}
    assert denials == {"policy": 1}  # a request without credentials is not an auth denial
    assert [doc["AuthFailures"] for doc in documents if doc.get("Kind") == "missing"] == [1]
    latency = next(doc["Latency"] for doc in documents if "Latency" in doc)
    assert sum(latency["Counts"]) == 3
    assert any(doc.get("Sink") == "sqlite" and "AuditSinkLagSeconds" in doc for doc in documents)
    assert any(doc.get("Repository") == f"{OWNER}/{REPO}" and doc.get("RepositoryAccess") == 2 for doc in documents)
