"""CloudWatch Embedded Metric Format on stdout: the same figures as /metrics, for Lambda and ECS (no agent).

Nothing is printed per request. While EMF is on, the request path adds to an in-memory aggregate (a dict
increment; latencies rounded to two significant digits and counted), and every `metrics.emf_interval_seconds`
(and when the server stops; on Lambda also at the end of every invocation, by the Lambda adapter) the aggregate
becomes a few JSON lines, one per combination of dimension values:

    {"_aws": {"Timestamp": 1763726400000,
              "CloudWatchMetrics": [{"Namespace": "McpBastion", "Dimensions": [["Tool", "Outcome"]],
                                     "Metrics": [{"Name": "ToolCalls", "Unit": "Count"}]}]},
     "Tool": "get_file_contents", "Outcome": "ok", "ToolCalls": 42}

A dimension value can only be given once per document, so one line carries the metrics that share exactly the
same dimension names and values (per tool: Errors, Latency, Redactions; per tool and outcome: ToolCalls; ...).
Latency uses EMF's value/count form, `{"Values": [2.1, 3.4], "Counts": [40, 2]}` (at most 100 values per
line: more go into further lines), so CloudWatch computes percentiles over every call of the interval.
Counters carry what happened since the previous line (CloudWatch sums them); gauges carry the current value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bastion.observability import specs
from bastion.observability.metrics import Metrics
from bastion.observability.specs import MetricSpec

__all__ = ["MAX_VALUES_PER_METRIC", "EmfAggregator", "EmfPublisher", "render_documents"]

logger = logging.getLogger(__name__)

MAX_VALUES_PER_METRIC = 100  # EMF: a metric's value array holds at most 100 values
MAX_DIMENSION_VALUE = 1024  # EMF: a dimension value is 1-1024 characters

_SPECS_BY_NAME = {spec.name: spec for spec in specs.ALL_SPECS}

Key = tuple[str, tuple[str, ...]]  # (metric name, dimension values)


def _quantize(milliseconds: float) -> float:
    # Two significant digits: at most 5% off, and one minute of calls collapses to a few dozen distinct values.
    return float(f"{milliseconds:.2g}") if milliseconds > 0 else 0.0


class EmfAggregator:
    """What happened since the last flush. Fed from the event loop and (for counters derived from running totals)
    from whichever thread refreshes the metrics, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Key, float] = {}
        self._latency: dict[str, dict[float, int]] = {}

    def tool_call(self, tool: str, outcome: str, milliseconds: float, is_error: bool, repository: str | None) -> None:
        value = _quantize(milliseconds)
        with self._lock:
            counts = self._counts
            key: Key = ("ToolCalls", (tool, outcome))
            counts[key] = counts.get(key, 0) + 1
            if is_error:
                key = ("Errors", (tool,))
                counts[key] = counts.get(key, 0) + 1
            if outcome == "denied":
                key = ("Denials", ("policy",))
                counts[key] = counts.get(key, 0) + 1
            if repository is not None:
                key = ("RepositoryAccess", (repository,))
                counts[key] = counts.get(key, 0) + 1
            histogram = self._latency.get(tool)
            if histogram is None:
                histogram = self._latency[tool] = {}
            histogram[value] = histogram.get(value, 0) + 1

    def count(self, spec: MetricSpec, labels: tuple[str, ...], amount: float = 1) -> None:
        key: Key = (spec.name, labels[: len(spec.dimensions)])
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount

    def drain(self) -> tuple[dict[Key, float], dict[str, dict[float, int]]]:
        """Take everything counted so far and start again from zero."""
        with self._lock:
            counts, latency = self._counts, self._latency
            self._counts, self._latency = {}, {}
        return counts, latency


def _document(
    namespace: str, timestamp_ms: int, dimensions: tuple[str, ...], values: tuple[str, ...]
) -> dict[str, Any]:
    directive: dict[str, Any] = {"Namespace": namespace, "Dimensions": [list(dimensions)], "Metrics": []}
    document: dict[str, Any] = {"_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]}}
    for name, value in zip(dimensions, values, strict=True):
        document[name] = (value or "unknown")[:MAX_DIMENSION_VALUE]
    return document


def _add_metric(document: dict[str, Any], spec: MetricSpec, value: Any) -> None:
    document["_aws"]["CloudWatchMetrics"][0]["Metrics"].append({"Name": spec.name, "Unit": spec.unit})
    document[spec.name] = value


def render_documents(
    namespace: str,
    counts: dict[Key, float],
    latency: dict[str, dict[float, int]],
    gauges: dict[str, dict[tuple[str, ...], float]],
    timestamp_ms: int,
) -> list[dict[str, Any]]:
    """EMF documents for one flush: one per (dimension names, dimension values), plus one per extra chunk of
    latency values. Counters of zero and non-finite gauges (a mirror that never synced) are left out."""
    grouped: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, Any]] = {}
    extra: list[dict[str, Any]] = []

    def document_for(spec: MetricSpec, values: tuple[str, ...]) -> dict[str, Any]:
        group = (spec.dimensions, values)
        document = grouped.get(group)
        if document is None:
            document = grouped[group] = _document(namespace, timestamp_ms, spec.dimensions, values)
        return document

    for (name, values), amount in sorted(counts.items()):
        if amount:
            _add_metric(document_for(_SPECS_BY_NAME[name], values), _SPECS_BY_NAME[name], amount)
    for tool, histogram in sorted(latency.items()):
        points = sorted(histogram.items())
        for start in range(0, len(points), MAX_VALUES_PER_METRIC):
            chunk = points[start : start + MAX_VALUES_PER_METRIC]
            value = {"Values": [point for point, _ in chunk], "Counts": [count for _, count in chunk]}
            if start == 0:
                _add_metric(document_for(specs.LATENCY, (tool,)), specs.LATENCY, value)
            else:
                document = _document(namespace, timestamp_ms, specs.LATENCY.dimensions, (tool,))
                _add_metric(document, specs.LATENCY, value)
                extra.append(document)
    for name, series in sorted(gauges.items()):
        spec = _SPECS_BY_NAME[name]
        for values, value in sorted(series.items()):
            if math.isfinite(value):
                _add_metric(document_for(spec, values), spec, value)
    return [*grouped.values(), *extra]


class EmfPublisher:
    """Owns the aggregate while it runs: `start()` in the server's lifespan, `aclose()` at its end (which prints
    what is left, so a Lambda invocation's figures leave with it)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        namespace: str,
        interval_seconds: float,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.metrics = metrics
        self.namespace = namespace
        self.interval_seconds = interval_seconds
        self.aggregator = EmfAggregator()
        self._write = write or _write_stdout
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.metrics.emf = self.aggregator
        self._task = asyncio.get_running_loop().create_task(self._run(), name="emf-publisher")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            self.flush()

    def flush(self) -> int:
        """Print the aggregate since the last flush; returns the number of lines."""
        try:
            self.metrics.refresh()
            counts, latency = self.aggregator.drain()
            documents = render_documents(
                self.namespace, counts, latency, self.metrics.gauge_values(), int(time.time() * 1000)
            )
            for document in documents:
                self._write(json.dumps(document, separators=(",", ":"), ensure_ascii=False))
        except Exception:  # metrics must never take the server down
            logger.exception("printing EMF metrics failed")
            return 0
        return len(documents)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()
        if self.metrics.emf is self.aggregator:
            self.metrics.emf = None


def _write_stdout(line: str) -> None:
    # stdout, not the log stream: on Lambda and with the awslogs driver both reach CloudWatch Logs, and a line
    # that is exactly one EMF document is what CloudWatch extracts metrics from.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
