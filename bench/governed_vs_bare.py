"""Governed `get_file_contents` against the SDK's best case, in one run: what does governance cost per request?

Two servers, each its own uvicorn process (1 worker) pinned to core 1, loaded in turn by wrk pinned to core 0:

- governed: `bastion serve` on a fresh data directory (bench/setup_data.py): API key check (or, with `--auth jwt`,
  an RS256 access token checked against a JWKS on 127.0.0.1), policy, a read of a ~10 KB file from the git mirror,
  the content guard's secret scan, the audit record to SQLite.
- bare: a plain `MCPServer` whose `async def get_file_contents` returns the same text from memory
  (bench/bare_server.py).

Both are called with the same 2026-07-28 `tools/call` request (stateless, plain JSON answers), the same number of
connections and the same duration, alternating bare/governed for several rounds so drift on a shared machine hits
both alike. It reports medians, and the governed/bare ratios that the targets are about (machine-independent,
unlike the absolute numbers): throughput >= 80% of bare (75% with `--auth jwt`), p50 added latency < 1 ms.

    make bench                                   # or: .venv/bin/python bench/governed_vs_bare.py [--help]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness import (
    Pinning,
    RunResult,
    ServerProcess,
    core_busy_seconds,
    ensure_wrk,
    free_port,
    pinning,
    run_wrk,
)
from identity import BenchIdentityProvider
from setup_data import BENCH_OWNER, BENCH_PATH, BENCH_REPO, BENCH_SUBJECT, BenchData, prepare

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk" / "tools_call.lua"
DEFAULT_RESULTS = BENCH_DIR / "results" / "latest.json"
TOOL = "get_file_contents"
PROTOCOL = "2026-07-28"
THROUGHPUT_TARGETS = {"api-key": 0.80, "jwt": 0.75}  # governed req/s over bare req/s (issues 2 and 3)
ADDED_P50_TARGET_MS = 1.0


def governed_environment(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Production settings except where a benchmark must differ: plain JSON answers (as for the bare server) and
    a rate limit the load cannot reach (the limiter still runs and is paid for on every call); `extra` adds the
    OIDC settings of an `--auth jwt` run."""
    return {
        "BASTION_DATA_DIR": str(data_dir),
        "BASTION_SERVER__JSON_RESPONSE": "true",
        "BASTION_SERVER__STATELESS": "true",
        "BASTION_RATE_LIMIT__DEFAULT": "1000000000/minute",
        **(extra or {}),
    }


def governed_settings(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings the governed server runs with, as it reads them (secrets masked), for the record. Read in a
    child process so it sees the same code (PYTHONPATH) and environment as the server."""
    program = (
        "import json; from bastion.config import Settings; "
        "print(json.dumps(Settings().model_dump(mode='json', exclude={'data_dir'})))"
    )
    env = {**os.environ, **governed_environment(data_dir, extra)}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-2000:]}


def export_head(work: Path) -> str:
    """Put the committed tree (HEAD) under `work` and run everything from it: on a shared checkout, others'
    uncommitted edits then cannot leak into the numbers. Returns the commit."""
    repo = BENCH_DIR.parent
    target = work / "head"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "HEAD", "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target / "src"), os.environ.get("PYTHONPATH")]))
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f"{head.stdout.strip()} (HEAD, exported)"


def request_body() -> bytes:
    meta = {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "mcp-bastion-bench", "version": "1"},
    }
    arguments = {"owner": BENCH_OWNER, "repo": BENCH_REPO, "path": BENCH_PATH}
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": TOOL, "arguments": arguments, "_meta": meta},
    }
    return json.dumps(call).encode()


def request_headers(key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL,
        "Mcp-Method": "tools/call",
        "Mcp-Name": TOOL,
        "Authorization": f"Bearer {key}",
    }


# -- checking the answers before timing anything --------------------------------------------------------------


def _result(server: ServerProcess, status: int, answer: dict[str, Any]) -> dict[str, Any]:
    if status != 200 or "result" not in answer:
        raise SystemExit(f"{server.name}: expected 200 with a result, got {status}: {json.dumps(answer)[:2000]}")
    result: dict[str, Any] = answer["result"]
    if result.get("isError"):
        raise SystemExit(f"{server.name}: the tool answered an error: {json.dumps(result)[:2000]}")
    return result


def verify_bare(server: ServerProcess, body: bytes, data: BenchData) -> None:
    result = _result(server, *server.post(body, request_headers(data.key)))
    text = result["content"][0]["text"]
    if text != data.content.decode():
        raise SystemExit(f"bare: the content differs from the file ({len(text)} characters)")


def verify_governed(server: ServerProcess, body: bytes, data: BenchData) -> None:
    result = _result(server, *server.post(body, request_headers(data.key)))
    structured = result.get("structuredContent") or {}
    if structured.get("content") != data.content.decode():
        raise SystemExit(f"governed: structuredContent.content is not the file: {json.dumps(structured)[:500]}")
    if structured.get("resolved_sha") != data.commit_sha:
        raise SystemExit(f"governed: resolved_sha {structured.get('resolved_sha')!r}, expected {data.commit_sha}")
    if not result["content"][0]["text"].endswith(data.content.decode()):
        raise SystemExit("governed: the text content does not end with the file")


def audited_calls(data_dir: Path) -> int | None:
    """Allowed, successful calls of the tool in the audit database (None when it cannot be read)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'audit.db'}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT count(*) FROM audit_events WHERE tool = ? AND outcome = 'ok' AND decision = 'allow'", (TOOL,)
            ).fetchone()
    except sqlite3.Error as exc:
        print(f"  (could not count audit records: {exc})")
        return None
    return int(row[0])


# -- the runs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    connections: int
    seconds: float
    rounds: int


def run_phase(
    phase: Phase,
    servers: dict[str, ServerProcess],
    load: Callable[[ServerProcess, Phase, int], RunResult],
    *,
    max_interference: float,
    retries: int,
) -> tuple[list[RunResult], int]:
    """Each round runs both servers back to back; a round during which other processes took more than
    `max_interference` of either core is run again (at most `retries` times in the phase). Returns the kept runs
    and how many rounds were repeated."""
    results: list[RunResult] = []
    repeated = 0
    print(f"\n{phase.name}: {phase.rounds} rounds x {phase.connections} connections x {phase.seconds:g} s")
    print(f"  {'round':>5}  {'server':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10} {'others':>7}")
    round_number = 1
    while round_number <= phase.rounds:
        # Alternate which server goes first, so a trend in the machine's load favours neither.
        order = ["bare", "governed"] if round_number % 2 else ["governed", "bare"]
        pair: list[RunResult] = []
        for name in order:
            run = load(servers[name], phase, round_number)
            failures = {kind: count for kind, count in run.errors.items() if count}
            if failures:
                raise SystemExit(f"{name} round {round_number}: errors during the run {failures}: results void")
            pair.append(run)
            print(
                f"  {round_number:>5}  {name:<9} {run.throughput:>8.0f} {run.latency_us['p50'] / 1000:>8.2f} "
                f"{run.latency_us['p99'] / 1000:>8.2f} {run.cpu_ms_per_request:>10.3f} {run.interference:>7.0%}",
                flush=True,
            )
        noisy = max(run.interference for run in pair)
        if noisy > max_interference and repeated < retries:
            repeated += 1
            print(f"         other processes used {noisy:.0%} of a benchmark core: round {round_number} again")
            continue
        results.extend(pair)
        round_number += 1
    return results, repeated


def wait_until_quiet(max_share: float, patience: float) -> float:
    """Wait (at most `patience` s) until other processes use less than `max_share` of the machine; the share
    seen last. Nothing of ours is running yet, so all the load is someone else's."""
    deadline = time.monotonic() + patience
    while True:
        before = sum(core_busy_seconds().values())
        time.sleep(1.0)
        share = (sum(core_busy_seconds().values()) - before) / (os.cpu_count() or 1)
        if share < max_share or time.monotonic() >= deadline:
            return share
        print(f"  the machine is busy ({share:.0%} of its cores used by other processes); waiting", flush=True)


def medians(results: list[RunResult], server: str) -> dict[str, float]:
    mine = [run for run in results if run.server == server]
    return {
        "throughput_rps": statistics.median(run.throughput for run in mine),
        "p50_ms": statistics.median(run.latency_us["p50"] for run in mine) / 1000,
        "p99_ms": statistics.median(run.latency_us["p99"] for run in mine) / 1000,
        "cpu_ms_per_request": statistics.median(run.cpu_ms_per_request for run in mine),
        "cpu_ms_main_thread": statistics.median(run.per_request(run.server_cpu.main_thread) for run in mine),
        "cpu_ms_other_threads": statistics.median(run.per_request(run.server_cpu.other_threads) for run in mine),
        "cpu_ms_child_processes": statistics.median(run.per_request(run.server_cpu.children) for run in mine),
    }


def compare(results: list[RunResult]) -> dict[str, Any]:
    bare, governed = medians(results, "bare"), medians(results, "governed")
    paired = [
        g.throughput / b.throughput
        for b, g in zip(
            [run for run in results if run.server == "bare"],
            [run for run in results if run.server == "governed"],
            strict=True,
        )
    ]
    return {
        "bare": bare,
        "governed": governed,
        "throughput_ratio": governed["throughput_rps"] / bare["throughput_rps"],
        "throughput_ratio_per_round": paired,
        "p50_added_ms": governed["p50_ms"] - bare["p50_ms"],
        "p99_added_ms": governed["p99_ms"] - bare["p99_ms"],
        "cpu_ratio": governed["cpu_ms_per_request"] / bare["cpu_ms_per_request"],
        "cpu_added_ms": governed["cpu_ms_per_request"] - bare["cpu_ms_per_request"],
    }


def print_summary(phase: Phase, summary: dict[str, Any]) -> None:
    bare, governed = summary["bare"], summary["governed"]
    print(f"\nMedians, {phase.name} ({phase.rounds} rounds x {phase.connections} connections x {phase.seconds:g} s):")
    print(f"  {'':<26} {'bare':>9} {'governed':>9}   governed vs bare")
    ratios = ", ".join(f"{ratio:.2f}" for ratio in summary["throughput_ratio_per_round"])
    print(
        f"  {'throughput (req/s)':<26} {bare['throughput_rps']:>9.0f} {governed['throughput_rps']:>9.0f}   "
        f"{summary['throughput_ratio']:.3f}x  (per round: {ratios})"
    )
    for key, label, added in (
        ("p50_ms", "p50 latency (ms)", "p50_added_ms"),
        ("p99_ms", "p99 latency (ms)", "p99_added_ms"),
    ):
        print(f"  {label:<26} {bare[key]:>9.2f} {governed[key]:>9.2f}   {summary[added]:+.2f} ms")
    print(
        f"  {'server CPU per request (ms)':<26} {bare['cpu_ms_per_request']:>9.3f} "
        f"{governed['cpu_ms_per_request']:>9.3f}   {summary['cpu_ratio']:.2f}x  ({summary['cpu_added_ms']:+.3f} ms)"
    )
    for key, label in (
        ("cpu_ms_main_thread", "  in the event loop thread"),
        ("cpu_ms_other_threads", "  in other threads"),
        ("cpu_ms_child_processes", "  in child processes"),
    ):
        print(f"  {label:<26} {bare[key]:>9.3f} {governed[key]:>9.3f}   {governed[key] - bare[key]:+.3f} ms")


def verdicts(phases: dict[str, dict[str, Any]], throughput_target: float) -> dict[str, Any]:
    saturated, unloaded = phases["throughput"], phases["latency"]
    return {
        "throughput_ratio": {
            "value": saturated["throughput_ratio"],
            "target": f">= {throughput_target}",
            "met": saturated["throughput_ratio"] >= throughput_target,
        },
        "p50_added_ms_unloaded": {
            "value": unloaded["p50_added_ms"],
            "target": f"< {ADDED_P50_TARGET_MS}",
            "met": unloaded["p50_added_ms"] < ADDED_P50_TARGET_MS,
        },
        "p50_added_ms_saturated": {
            "value": saturated["p50_added_ms"],
            "target": f"< {ADDED_P50_TARGET_MS}",
            "met": saturated["p50_added_ms"] < ADDED_P50_TARGET_MS,
        },
    }


# -- environment ----------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        return "unknown"
    return match.group(1).strip() if match else "unknown"


def machine_facts(wrk: str, pins: Pinning) -> dict[str, Any]:
    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False).stdout
    commit = subprocess.run(
        ["git", "-C", str(BENCH_DIR), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    installed: dict[str, str] = {}
    for package in ("mcp", "starlette", "uvicorn", "pydantic", "uvloop", "httptools"):
        try:
            installed[package] = version(package)
        except Exception:
            installed[package] = "not installed"
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "pinned": pins.pinned,
        "pinning": "server on core 1, wrk on core 0" if pins.pinned else "none (fewer than 2 cores or no taskset)",
        "python": platform.python_version(),
        "packages": installed,
        "wrk": (wrk_version.splitlines() or ["?"])[0],
        "checkout": commit,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="Rounds per phase, each server once per round.")
    parser.add_argument("--connections", type=int, default=16, help="Connections in the throughput phase.")
    parser.add_argument("--seconds", type=float, default=10, help="Length of one throughput run.")
    parser.add_argument("--latency-seconds", type=float, default=5, help="Length of one 1-connection run.")
    parser.add_argument("--warmup-seconds", type=float, default=3, help="Untimed load on each server first.")
    parser.add_argument(
        "--max-interference",
        type=float,
        default=0.10,
        help="Repeat a round when other processes took more than this share of a benchmark core (default 0.10).",
    )
    parser.add_argument("--retries", type=int, default=3, help="Most rounds repeated per phase (default 3).")
    parser.add_argument(
        "--quiet-wait", type=float, default=120, help="Seconds to wait at most for a busy machine to calm down."
    )
    parser.add_argument(
        "--tree",
        choices=("worktree", "head"),
        default="worktree",
        help="Benchmark the working tree (default) or the last commit, exported apart from uncommitted edits.",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_RESULTS, help="Where to write the JSON result.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary data directory and server logs.")
    parser.add_argument(
        "--auth",
        choices=("api-key", "jwt"),
        default="api-key",
        help="How the governed server's caller authenticates: an API key (default) or an RS256 access token "
        "verified against a JWKS served on 127.0.0.1 (issue 3's benchmark; target 75%% of bare).",
    )
    parser.add_argument("--check", action="store_true", help="Exit 1 when a target is missed.")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def warn_if_noisy(runs: dict[str, list[RunResult]], max_interference: float) -> int:
    """How many kept runs shared their core with other processes beyond the limit (warned about when any)."""
    noisy = [run for phase_runs in runs.values() for run in phase_runs if run.interference > max_interference]
    if noisy:
        print(
            f"\nWARNING: {len(noisy)} of the kept runs shared a core with other processes (> "
            f"{max_interference:.0%}, see 'others'): the machine was busy; run again when it is quiet."
        )
    return len(noisy)


def with_access_token(
    identity: BenchIdentityProvider, data: BenchData, governed_port: int
) -> tuple[BenchData, dict[str, str]]:
    """`--auth jwt`: the caller's bearer credential becomes an access token for the governed server's resource
    URL, and the server gets the provider's OIDC settings."""
    token = identity.token(BENCH_SUBJECT, f"http://127.0.0.1:{governed_port}/mcp")
    print(f"  auth: RS256 access token, JWKS at {identity.issuer}/jwks.json")
    return dataclasses.replace(data, key=token), identity.environment()


def start_servers(
    work: Path, data: BenchData, pins: Pinning, governed_port: int, extra: dict[str, str]
) -> dict[str, ServerProcess]:
    bin_dir = Path(sys.executable).parent
    bare_port = free_port()
    bare_script = str(BENCH_DIR / "bare_server.py")
    bare_argv = [*pins.server_prefix, sys.executable, bare_script, "--port", str(bare_port), "--file", str(data.file)]
    servers = {
        "governed": ServerProcess(
            "governed",
            [
                *pins.server_prefix,
                str(bin_dir / "bastion"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(governed_port),
            ],
            {**os.environ, **governed_environment(data.data_dir, extra)},
            work / "governed.log",
            governed_port,
        ),
        "bare": ServerProcess(
            "bare",
            bare_argv,
            dict(os.environ),
            work / "bare.log",
            bare_port,
        ),
    }
    for server in servers.values():
        server.wait_listening()
    return servers


def print_targets(judged: dict[str, Any], connections: int) -> None:
    def verdict(key: str) -> str:
        return "MET" if judged[key]["met"] else "NOT MET"

    print("\nTargets:")
    target = float(judged["throughput_ratio"]["target"][3:])
    print(
        f"  governed throughput >= {target:.0%} of bare ({connections} connections): "
        f"{judged['throughput_ratio']['value']:.1%}  {verdict('throughput_ratio')}"
    )
    for key, label in (
        ("p50_added_ms_unloaded", "1 connection"),
        ("p50_added_ms_saturated", f"{connections} connections"),
    ):
        print(
            f"  p50 added latency < {ADDED_P50_TARGET_MS:g} ms ({label}): "
            f"{judged[key]['value']:+.2f} ms  {verdict(key)}"
        )


def main() -> int:
    args = parse_args()
    wrk = ensure_wrk()
    pins = pinning()
    facts = machine_facts(wrk, pins)
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    servers: dict[str, ServerProcess] = {}
    identity: BenchIdentityProvider | None = None
    try:
        if args.tree == "head":
            facts["checkout"] = export_head(work)
        data = prepare(work / "setup", Path(sys.executable).parent / "bastion")
        print(f"mcp-bastion benchmark: {TOOL} of a {len(data.content):,}-byte file, governed vs bare MCPServer")
        print(f"  {facts['cores']} cores ({facts['cpu']}); {facts['pinning']}; Python {facts['python']}, ", end="")
        print(", ".join(f"{name} {value}" for name, value in facts["packages"].items()))
        print(f"  checkout {facts['checkout']}")
        governed_port = free_port()
        extra: dict[str, str] = {}
        if args.auth == "jwt":
            identity = BenchIdentityProvider()
            data, extra = with_access_token(identity, data, governed_port)
        servers = start_servers(work, data, pins, governed_port, extra)
        body = request_body()
        verify_bare(servers["bare"], body, data)
        verify_governed(servers["governed"], body, data)
        print(
            f"  checked: both answer 200 with the file's exact text; governed names resolved_sha {data.commit_sha[:12]}"
        )
        body_file = work / "request.json"
        body_file.write_bytes(body)
        wrk_env = {"BENCH_BODY_FILE": str(body_file), "BENCH_TOOL": TOOL, "BENCH_KEY": data.key}
        completed = {"governed": 1, "bare": 1}  # the checks above

        def load(server: ServerProcess, phase: Phase, round_number: int) -> RunResult:
            run = run_wrk(
                wrk,
                pins,
                WRK_SCRIPT,
                server,
                wrk_env,
                connections=phase.connections,
                seconds=phase.seconds,
                round_number=round_number,
            )
            completed[server.name] += run.requests
            return run

        idle_share = wait_until_quiet(args.max_interference, args.quiet_wait)
        if args.warmup_seconds > 0:
            warmup = Phase("warm-up", args.connections, args.warmup_seconds, 1)
            for name in ("bare", "governed"):
                load(servers[name], warmup, 0)
        phases = {
            "throughput": Phase("throughput (saturated)", args.connections, args.seconds, args.rounds),
            "latency": Phase("latency (1 connection, unloaded)", 1, args.latency_seconds, args.rounds),
        }
        runs: dict[str, list[RunResult]] = {}
        repeated: dict[str, int] = {}
        summaries: dict[str, dict[str, Any]] = {}
        for key, phase in phases.items():
            runs[key], repeated[key] = run_phase(
                phase, servers, load, max_interference=args.max_interference, retries=args.retries
            )
            summaries[key] = compare(runs[key])
        for key, phase in phases.items():
            print_summary(phase, summaries[key])
        noisy = warn_if_noisy(runs, args.max_interference)

        servers["governed"].stop()  # flushes the audit pipeline
        audited = audited_calls(data.data_dir)
        if audited is not None:
            print(
                f"\nAudit: {audited:,} allowed {TOOL} calls recorded for {completed['governed']:,} completed requests"
            )
        judged = verdicts(summaries, THROUGHPUT_TARGETS[args.auth])
        print_targets(judged, args.connections)
        report = {
            "benchmark": "governed_vs_bare",
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "make bench" if args.auth == "api-key" else "make bench-jwt",
            "tool": TOOL,
            "file_bytes": len(data.content),
            "protocol": PROTOCOL,
            "machine": facts,
            "machine_load_before_start": round(idle_share, 3),
            "auth": args.auth,
            "governed_settings": governed_settings(data.data_dir, extra),
            "phases": {
                key: {
                    "connections": phase.connections,
                    "seconds": phase.seconds,
                    "rounds": phase.rounds,
                    "rounds_repeated_because_busy": repeated[key],
                    "summary": summaries[key],
                    "runs": [run.as_dict() for run in runs[key]],
                }
                for key, phase in phases.items()
            },
            "noisy_runs_kept": noisy,
            "audit": {"recorded": audited, "completed_requests": completed["governed"]},
            "targets": judged,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON result: {args.output}")
        return 1 if args.check and not all(verdict["met"] for verdict in judged.values()) else 0
    finally:
        for server in servers.values():
            server.stop()
        if identity is not None:
            identity.close()
        if args.keep:
            print(f"kept {work} (data directory, server logs)")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
