"""bench/cost_breakdown.py replaces parts of the governed path by name: run it small, so a rename fails here and
not months later in someone's benchmark run. (Numbers are not checked: timed assertions do not belong here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_every_variant_answers_the_request_it_measures(tmp_path: Path) -> None:
    output = tmp_path / "costs.json"
    variants = ["bare", "sdk+tools", "sdk+audit", "http+tools", "governed", "tool-layer-only"]
    argv = [sys.executable, str(BENCH / "cost_breakdown.py"), "--rounds", "1", "--requests", "32"]
    done = subprocess.run(
        [*argv, "--output", str(output), "--variants", *variants],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    medians = json.loads(output.read_text())["medians_us"]
    assert sorted(medians) == sorted(variants)
    # CPU time comes from /proc in clock ticks (10 ms): a run this small may read 0, so only the shape is checked
    assert all({"main_thread_us", "other_threads_us", "children_us", "total_us"} <= set(v) for v in medians.values())
    assert "the audit guarantee alone, on the SDK (sdk+audit - sdk+tools)" in done.stdout
    assert "bare/this" in done.stdout
