"""The parts of a load benchmark that do not depend on what is measured: the load tool, pinned server processes,
their CPU time, and one timed run.

Server CPU is read from /proc (utime + stime of the server process and every process below it, e.g. the
`git cat-file` that serves the governed server's reads), so it counts all the work a request causes on the
server side, in every thread and child, and nothing the load generator does.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CpuTime",
    "Pinning",
    "RunResult",
    "ServerProcess",
    "core_busy_seconds",
    "cpu_time",
    "ensure_wrk",
    "free_port",
    "pinning",
    "run_wrk",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_RESULT_MARKER = "BENCH_RESULT "


def ensure_wrk() -> str:
    """The path of `wrk`, installing Debian's package when it is missing and we may (root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("wrk is not installed: install it (Debian/Ubuntu: apt-get install -y wrk) and run again")
    print("wrk is missing: installing it with apt-get (Debian package 'wrk')", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get install wrk succeeded but wrk is not on PATH")
    return found


@dataclass(frozen=True, slots=True)
class Pinning:
    """Where the server and the load generator run: `taskset` prefixes and the cores (None: not pinned)."""

    server_prefix: list[str]
    load_prefix: list[str]
    server_core: int | None
    load_core: int | None

    @property
    def pinned(self) -> bool:
        return self.server_core is not None


def pinning() -> Pinning:
    """The server on core 1, the load generator on core 0, when there are two cores and `taskset`."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return Pinning(["taskset", "-c", "1"], ["taskset", "-c", "0"], 1, 0)
    return Pinning([], [], None, None)


def core_busy_seconds() -> dict[int, float]:
    """Busy (non-idle, non-iowait) CPU seconds of each core since boot, from /proc/stat."""
    busy: dict[int, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(value) for value in values[:8]]  # user nice system idle iowait irq softirq steal
            busy[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4]) / _CLOCK_TICKS
    return busy


def _own_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stat_fields(pid: int, thread: int | None = None) -> list[str] | None:
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    try:
        raw = Path(path).read_text()
    except OSError:  # the process ended between listing and reading
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return found


@dataclass(frozen=True, slots=True)
class CpuTime:
    """CPU seconds of a server, split by where they were spent."""

    main_thread: float  # the event loop: HTTP, the SDK, our middleware and tool code
    other_threads: float  # e.g. the audit writer, anyio worker threads
    children: float  # child processes, live or reaped (e.g. `git cat-file`)

    @property
    def total(self) -> float:
        return self.main_thread + self.other_threads + self.children

    def __sub__(self, other: CpuTime) -> CpuTime:
        return CpuTime(
            self.main_thread - other.main_thread,
            self.other_threads - other.other_threads,
            self.children - other.children,
        )


def _ticks(fields: list[str], *, reaped: bool = True) -> int:
    # After the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14), per proc(5).
    own = int(fields[11]) + int(fields[12])
    return own + (int(fields[13]) + int(fields[14]) if reaped else 0)


def cpu_time(root_pid: int) -> CpuTime:
    """User + system CPU of `root_pid` (main thread, other threads) and of all its descendants."""
    root = _stat_fields(root_pid)
    if root is None:
        raise RuntimeError(f"process {root_pid} is gone")
    main = _stat_fields(root_pid, root_pid)
    main_ticks = _ticks(main, reaped=False) if main is not None else 0
    process_ticks = _ticks(root, reaped=False)
    children_ticks = int(root[13]) + int(root[14])  # children the server already reaped
    pending = _children(root_pid)
    while pending:
        pid = pending.pop()
        fields = _stat_fields(pid)
        if fields is None:
            continue
        children_ticks += _ticks(fields)
        pending.extend(_children(pid))
    return CpuTime(
        main_ticks / _CLOCK_TICKS, (process_ticks - main_ticks) / _CLOCK_TICKS, children_ticks / _CLOCK_TICKS
    )


class ServerProcess:
    """A server started in its own process (pinned when `prefix` says so), its output kept in a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        # taskset execs the server, so this pid is the server's own.
        self.process = subprocess.Popen(list(argv), env=dict(env), stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(
            f"{self.name} server did not listen on port {self.port} within {timeout:g}s:\n{self.log_tail()}"
        )

    def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        # Our own http://127.0.0.1 URL, never a user-supplied one.
        request = urllib.request.Request(self.url, data=body, headers=dict(headers), method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own 127.0.0.1 URL
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {"http_error": exc.read().decode("utf-8", "replace")[:2000]}

    def log_tail(self, limit: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: lifespan end, audit flush
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@dataclass(frozen=True, slots=True)
class RunResult:
    server: str
    round: int
    connections: int
    requests: int
    seconds: float
    errors: dict[str, int]
    latency_us: dict[str, float]
    server_cpu: CpuTime
    # Share of the run's wall time that other processes (not the server, not wrk) spent on the server's core and on
    # the load generator's core. On a shared machine this is what makes a run unfair; None when not pinned.
    foreign_load: dict[str, float] | None

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return self.per_request(self.server_cpu.total)

    def per_request(self, seconds: float) -> float:
        """CPU seconds over the run as milliseconds per completed request."""
        return seconds * 1000 / max(self.requests, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "round": self.round,
            "connections": self.connections,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "throughput_rps": round(self.throughput, 1),
            "latency_ms": {name: round(value / 1000, 3) for name, value in self.latency_us.items()},
            "server_cpu_ms_per_request": round(self.cpu_ms_per_request, 4),
            "server_cpu_ms_per_request_by_place": {
                "main_thread": round(self.per_request(self.server_cpu.main_thread), 4),
                "other_threads": round(self.per_request(self.server_cpu.other_threads), 4),
                "child_processes": round(self.per_request(self.server_cpu.children), 4),
            },
            "errors": self.errors,
            "foreign_load": None
            if self.foreign_load is None
            else {core: round(share, 3) for core, share in self.foreign_load.items()},
        }

    @property
    def interference(self) -> float:
        """The larger foreign share of the two cores (0 when not measured)."""
        return max(self.foreign_load.values()) if self.foreign_load else 0.0


def run_wrk(
    wrk: str,
    pins: Pinning,
    script: Path,
    server: ServerProcess,
    env: Mapping[str, str],
    *,
    connections: int,
    seconds: float,
    round_number: int,
) -> RunResult:
    """One closed-loop run of `connections` connections for `seconds`, with the server's CPU over the same span."""
    argv = [
        *pins.load_prefix,
        wrk,
        "--threads",
        "1",  # one core for the load generator; one event loop thread drives every connection
        "--connections",
        str(connections),
        "--duration",
        f"{seconds:g}s",
        "--timeout",
        "10s",
        "--script",
        str(script),
        server.url,
    ]
    cpu_before, cores_before, wrk_before = cpu_time(server.pid), core_busy_seconds(), _own_children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    cpu_after, cores_after, wrk_after = cpu_time(server.pid), core_busy_seconds(), _own_children_cpu()
    server_cpu = cpu_after - cpu_before
    foreign: dict[str, float] | None = None
    if pins.server_core is not None and pins.load_core is not None:
        server_core = cores_after[pins.server_core] - cores_before[pins.server_core] - server_cpu.total
        load_core = cores_after[pins.load_core] - cores_before[pins.load_core] - (wrk_after - wrk_before)
        foreign = {"server_core": max(server_core, 0.0) / wall, "load_core": max(load_core, 0.0) / wall}
    line = next((row for row in done.stdout.splitlines() if row.startswith(_RESULT_MARKER)), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    summary = json.loads(line.removeprefix(_RESULT_MARKER))
    return RunResult(
        server=server.name,
        round=round_number,
        connections=connections,
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        errors=summary["errors"],
        latency_us={name: float(value) for name, value in summary["latency_us"].items()},
        server_cpu=server_cpu,
        foreign_load=foreign,
    )
