"""`bastion serve --workers 2`: whichever worker answers /metrics shows the calls every worker served."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path

import httpx2
import pytest
from tests.observability.helpers import OWNER, REPO, Deployment, call_tool, prepare, samples, scrape, value
from tests.support.server import free_port

pytestmark = pytest.mark.slow

READ = {"owner": OWNER, "repo": REPO, "path": "README.md"}


def _wait_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bastion serve exited with {process.returncode}")
        try:
            if httpx2.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("bastion serve --workers 2 did not become healthy in time")


@pytest.fixture
def two_workers(tmp_path: Path) -> Generator[Deployment]:
    settings, keys = prepare(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "BASTION_DATA_DIR": str(settings.data_dir),
        "BASTION_RATE_LIMIT__DEFAULT": "100000/minute",
        "BASTION_RATE_LIMIT__PROTOCOL": "100000/minute",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    bastion = Path(sys.executable).parent / "bastion"
    process = subprocess.Popen(
        [str(bastion), "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, time.monotonic() + 60)
        yield Deployment(settings, None, url, keys)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_one_view_over_every_worker(two_workers: Deployment) -> None:
    metrics_dir = two_workers.settings.data_dir / "metrics-multiprocess"
    alice = two_workers.keys["alice"]
    calls = 0
    # Each request on a new connection; the kernel spreads connections over the two workers' accept queues.
    while calls < 200:
        assert call_tool(two_workers, alice, "get_file_contents", READ).status_code == 200
        calls += 1
        writers = {path.name for path in metrics_dir.glob("counter_*.db")}
        if calls >= 20 and len(writers) >= 2:
            break
    assert len({path.name for path in metrics_dir.glob("counter_*.db")}) >= 2, "only one worker served the calls"
    for _ in range(4):  # whichever worker answers, the totals are the same
        found = samples(scrape(f"{two_workers.url}/metrics"))
        ok = value(found, "mcp_bastion_tool_calls_total", tool="get_file_contents", outcome="ok", decision="allow")
        assert ok == calls
        assert value(found, "mcp_bastion_latency_seconds_count", tool="get_file_contents") == calls
        assert value(found, "mcp_bastion_repository_access_total", repository=f"{OWNER}/{REPO}") == calls
        assert ("mcp_bastion_audit_sink_lag_seconds", frozenset({("sink", "sqlite")})) in found
        assert value(found, "mcp_bastion_mirror_sync_failing", repository=f"{OWNER}/{REPO}") == 0
        # Per-process collectors would be one worker's figures under a merged name: they are left out.
        assert not [name for name, _ in found if name.startswith("process_")]
