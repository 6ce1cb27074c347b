"""`bastion serve --workers N`: one Prometheus view over N worker processes (prometheus_client multiprocess mode).

Each uvicorn worker is its own process with its own counters, and a scrape reaches whichever worker accepts the
connection; scraping workers one by one is impossible behind one port. So the serve command points
`PROMETHEUS_MULTIPROC_DIR` at an empty directory before the workers start; every worker then keeps its counters
and histograms in memory-mapped files there, and any worker answering `/metrics` merges all of them.

Gauges read from a worker's own state (its audit spool, its upstream tokens) are written by each worker every
`REFRESH_SECONDS` and merged per gauge: audit lag and mirror age by maximum, token expiry by minimum, spool sizes by
sum, over live workers only. A worker that stops cleanly removes its gauges; counters of exited workers stay in
the totals (they count what happened).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bastion.observability.metrics import Metrics

__all__ = [
    "MULTIPROC_ENV",
    "REFRESH_SECONDS",
    "mark_worker_stopped",
    "prepare_multiprocess_dir",
    "refresh_periodically",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_SECONDS = 5.0


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """Before the workers start: an empty metrics directory (the operator's PROMETHEUS_MULTIPROC_DIR, else
    `<data_dir>/metrics-multiprocess`), exported to the workers. Files of a previous run are removed: their
    counters belong to processes that no longer exist, and would be added to this run's."""
    path = Path(os.environ.get(MULTIPROC_ENV) or data_dir / "metrics-multiprocess")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for kind in ("counter", "gauge", "histogram", "summary"):  # prometheus_client's files only
        for stale in path.glob(f"{kind}_*.db"):
            stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


async def refresh_periodically(metrics: Metrics, interval: float = REFRESH_SECONDS) -> None:
    while True:
        metrics.refresh()
        await asyncio.sleep(interval)


def mark_worker_stopped(metrics: Metrics) -> None:
    """Drop this worker's live gauges from the merged view."""
    if metrics.multiprocess:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
