"""Audit throughput: what the audit pipeline costs, in events per second and CPU per event.

Four measurements, each printed and written to bench/results/audit.json:

1. record: N concurrent producers each awaiting `record()` (the request path's wait) with no sink, for
   `spool_fsync_ms` 100 (default: each event is written to the log by `record()` itself; fsync in the background)
   and 0 (the wait ends after an fsync that covers the event); CPU per event in the event loop's thread (what a
   request pays: seal, serialisation, hash, write) and in the whole process, p50/p99 of one `record()` wait, and
   the same producers building events without recording them (the baseline to subtract).
2. delivery: producers recording at a fixed rate for a while with the default SQLite sink attached, then a
   flush: CPU per event in the event loop's thread and in the background threads (the spool's fsync thread and
   the sink's delivery thread), the number of sink batches and fsyncs. This is the sustained-load cost.
3. drain: a backlog of N events in the spool's log (written by an earlier run, so read back from the segment
   files) drained into the SQLite sink: events/s and CPU per event; and `SqliteAuditSink.write` alone.
4. http: `bastion serve` under wrk (the same `get_file_contents` call as bench/governed_vs_bare.py, from its
   setup and harness), with the request path awaiting the spool vs not, alternating rounds.

    .venv/bin/python bench/audit_throughput.py [--seconds 3] [--rounds 3] [--skip-http]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.audit.chain import Chain
from bastion.audit.event import AuditEvent
from bastion.audit.pipeline import AuditLog
from bastion.audit.sink import SealedEvent
from bastion.audit.spool import Spool
from bastion.audit.sqlite import SqliteAuditSink
from harness import RunResult, ServerProcess, ensure_wrk, free_port, pinning, run_wrk
from setup_data import BENCH_OWNER, BENCH_PATH, BENCH_REPO, prepare

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS = BENCH_DIR / "results" / "audit.json"
WRK_SCRIPT = BENCH_DIR / "wrk" / "tools_call.lua"
PROTOCOL = "2026-07-28"
TOOL = "get_file_contents"
SPOOL_COST_TARGET = 0.90  # governed req/s with the spool wait over governed req/s without it


def _event(number: int) -> AuditEvent:
    """An event shaped like a governed read's."""
    return AuditEvent(
        request_id=f"req-{number}",
        subject="bench-user",
        groups=["eng"],
        auth_method="api_key",
        credential_id="0123456789ab",
        client="mcp-bastion-bench/1",
        source_ip="127.0.0.1",
        user_agent="wrk",
        tool="get_file_contents",
        repo="bench/repo",
        ref="main",
        resolved_sha="89abcdef0123456789abcdef0123456789abcdef",
        paths=["src/bench/payload.py"],
        bytes_returned=10240,
        decision="allow",
        reason="allowed by rule 'bench-read'",
        rule="bench-read",
        duration_ms=0.42,
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Clock:
    """CPU of this process and of the calling (event loop) thread between `start()` and `stop()`."""

    def start(self) -> None:
        self.process, self.loop, self.wall = _cpu(), time.thread_time(), time.monotonic()

    def stop(self, events: int) -> dict[str, Any]:
        process, loop, wall = _cpu() - self.process, time.thread_time() - self.loop, time.monotonic() - self.wall
        return {
            "events": events,
            "events_per_second": round(events / wall),
            "loop_cpu_us_per_event": round(loop / events * 1e6, 1),
            "background_cpu_us_per_event": round((process - loop) / events * 1e6, 1),
            "cpu_us_per_event": round(process / events * 1e6, 1),
        }


async def _produce(
    log: AuditLog, producers: int, seconds: float, wait: bool, rate: float | None = None
) -> dict[str, Any]:
    """`producers` tasks recording events for `seconds`, each awaiting its `record()` (as requests do); at most
    `rate` events/s in all when given."""
    latencies: list[float] = []
    count = 0
    stop = time.monotonic() + seconds
    interval = producers / rate if rate else 0.0  # each producer's pause between events when paced

    async def producer() -> None:
        nonlocal count
        number = 0
        next_time = time.monotonic()
        while time.monotonic() < stop:
            event = _event(number)
            number += 1
            started = time.perf_counter()
            receipt = log.record(event)
            if wait:
                await receipt
            latencies.append(time.perf_counter() - started)
            count += 1
            if interval:
                next_time += interval
                await asyncio.sleep(max(0.0, next_time - time.monotonic()))
            elif not wait:
                await asyncio.sleep(0)  # yield like a request would

    clock = _Clock()
    clock.start()
    await asyncio.gather(*(producer() for _ in range(producers)))
    assert await log.flush(60), "the pipeline did not catch up within 60 s"
    row = clock.stop(count)
    latencies.sort()
    row.update(
        producers=producers,
        record_p50_us=round(latencies[len(latencies) // 2] * 1e6, 1),
        record_p99_us=round(latencies[int(len(latencies) * 0.99)] * 1e6, 1),
    )
    return row


async def _baseline(producers: int, seconds: float) -> dict[str, Any]:
    """The same producers building the same events and yielding, without recording: what the spool adds is the
    difference."""
    count = 0
    stop = time.monotonic() + seconds

    async def producer() -> None:
        nonlocal count
        number = 0
        while time.monotonic() < stop:
            _event(number)
            number += 1
            await asyncio.sleep(0)
            count += 1

    clock = _Clock()
    clock.start()
    await asyncio.gather(*(producer() for _ in range(producers)))
    row = clock.stop(count)
    row["producers"] = producers
    return row


async def record_phase(work: Path, seconds: float) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for producers in (1, 64):
        row = await _baseline(producers, seconds)
        row.update(fsync_ms=None, wait_for_spool=None, baseline=True)
        results.append(row)
        print(
            f"  baseline (build events, no record)  producers={producers:<3} {row['events_per_second']:>8,} events/s  "
            f"loop {row['loop_cpu_us_per_event']:>6.1f} us/event",
            flush=True,
        )
    for fsync_ms, wait in ((100, True), (0, True), (0, False)):
        for producers in (1, 16, 64):
            directory = work / f"spool-{fsync_ms}-{wait}-{producers}"
            log = AuditLog(Spool(directory, fsync_ms=fsync_ms), [], wait_for_spool=wait)
            log.start()
            try:
                row = await _produce(log, producers, seconds, wait)
            finally:
                await log.aclose()
            row.update(fsync_ms=fsync_ms, wait_for_spool=wait, fsyncs=log.spool.syncs)
            results.append(row)
            print(
                f"  record fsync_ms={fsync_ms:<3} wait={wait!s:<5} producers={producers:<3} "
                f"{row['events_per_second']:>8,} events/s  loop {row['loop_cpu_us_per_event']:>6.1f} us/event  "
                f"background {row['background_cpu_us_per_event']:>5.1f}  record p50 {row['record_p50_us']:>7.1f} us  "
                f"p99 {row['record_p99_us']:>8.1f} us  fsyncs {log.spool.syncs}",
                flush=True,
            )
    return results


class _CountingSink(SqliteAuditSink):
    """The default sink, counting its batches."""

    batches = 0

    def write(self, events: Sequence[SealedEvent]) -> None:
        self.batches += 1
        super().write(events)


async def delivery_phase(work: Path, seconds: float) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for rate in (500, 2000, 8000):
        directory = work / f"delivery-{rate}"
        sink = _CountingSink(directory / "audit.db")
        log = AuditLog(Spool(directory / "spool"), [sink])
        log.start()
        try:
            row = await _produce(log, 16, seconds, True, rate=rate)
        finally:
            await log.aclose()
        row.update(rate=rate, sink_batches=sink.batches, fsyncs=log.spool.syncs)
        row["events_per_batch"] = round(row["events"] / max(sink.batches, 1))
        results.append(row)
        print(  # the loop's CPU here is mostly the pacing (timers), so only the background is shown
            f"  delivery to SQLite at {rate:>5}/s: {row['events']:>7,} events  "
            f"background {row['background_cpu_us_per_event']:>5.1f} us/event  {sink.batches} batches "
            f"(~{row['events_per_batch']} events each), {log.spool.syncs} spool fsyncs",
            flush=True,
        )
    return results


async def drain_phase(work: Path, events: int) -> dict[str, Any]:
    directory = work / "drain"
    filler = AuditLog(Spool(directory / "spool"), [])
    filler.start()
    for number in range(events):
        filler.record(_event(number))
    assert await filler.flush(120)
    await filler.aclose()

    cpu_before, started = _cpu(), time.monotonic()
    log = AuditLog(Spool(directory / "spool"), [SqliteAuditSink(directory / "audit.db")], batch_size=500)
    log.start()
    assert await log.flush(600), "the SQLite sink did not drain"
    drain, drain_cpu = time.monotonic() - started, _cpu() - cpu_before
    await log.aclose()

    chain = Chain("benchinstance000")
    sealed = [chain.seal(_event(number)) for number in range(events)]
    sink = SqliteAuditSink(directory / "direct.db")
    cpu_before, started = _cpu(), time.monotonic()
    for offset in range(0, events, 500):
        sink.write(sealed[offset : offset + 500])
    direct, direct_cpu = time.monotonic() - started, _cpu() - cpu_before
    sink.close()
    result = {
        "events": events,
        "spool_to_sqlite_events_per_second": round(events / drain),
        "spool_to_sqlite_cpu_us_per_event": round(drain_cpu / events * 1e6, 1),
        "sqlite_write_events_per_second": round(events / direct),
        "sqlite_write_cpu_us_per_event": round(direct_cpu / events * 1e6, 1),
    }
    print(
        f"  drain: spool log -> SQLite {result['spool_to_sqlite_events_per_second']:,} events/s "
        f"({result['spool_to_sqlite_cpu_us_per_event']} us CPU/event, backlog of {events:,} read from the segment "
        f"files); SqliteAuditSink.write alone {result['sqlite_write_events_per_second']:,} events/s "
        f"({result['sqlite_write_cpu_us_per_event']} us CPU/event)",
        flush=True,
    )
    return result


# -- HTTP -----------------------------------------------------------------------------------------------------


def _body() -> bytes:
    meta = {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "mcp-bastion-bench", "version": "1"},
    }
    arguments = {"owner": BENCH_OWNER, "repo": BENCH_REPO, "path": BENCH_PATH}
    params = {"name": TOOL, "arguments": arguments, "_meta": meta}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).encode()


def http_phase(work: Path, rounds: int, seconds: float, connections: int) -> dict[str, Any]:
    wrk = ensure_wrk()
    pins = pinning()
    bastion = Path(sys.executable).parent / "bastion"
    servers: dict[str, ServerProcess] = {}
    try:
        keys: dict[str, str] = {}
        for name, wait in (("wait", "true"), ("no-wait", "false")):
            data = prepare(work / f"http-{name}", bastion)
            keys[name] = data.key
            port = free_port()
            env = {
                **os.environ,
                "BASTION_DATA_DIR": str(data.data_dir),
                "BASTION_SERVER__JSON_RESPONSE": "true",
                "BASTION_RATE_LIMIT__ENABLED": "false",
                "BASTION_AUDIT__WAIT_FOR_SPOOL": wait,
            }
            argv = [*pins.server_prefix, str(bastion), "serve", "--host", "127.0.0.1", "--port", str(port)]
            servers[name] = ServerProcess(name, argv, env, work / f"{name}.log", port)
        for server in servers.values():
            server.wait_listening()
        body_file = work / "request.json"
        body_file.write_bytes(_body())
        results: list[RunResult] = []

        def load(name: str, seconds_: float, round_number: int) -> RunResult:
            env = {"BENCH_BODY_FILE": str(body_file), "BENCH_TOOL": TOOL, "BENCH_KEY": keys[name]}
            return run_wrk(
                wrk,
                pins,
                WRK_SCRIPT,
                servers[name],
                env,
                connections=connections,
                seconds=seconds_,
                round_number=round_number,
            )

        for name in servers:
            load(name, 2, 0)  # warm-up
        for round_number in range(1, rounds + 1):
            order = ["wait", "no-wait"] if round_number % 2 else ["no-wait", "wait"]
            for name in order:
                run = load(name, seconds, round_number)
                if any(run.errors.values()):
                    raise SystemExit(f"{name}: errors during the run {run.errors}: results void")
                results.append(run)
                print(
                    f"  http round {round_number} {name:<8} {run.throughput:>7.0f} req/s  p50 "
                    f"{run.latency_us['p50'] / 1000:.2f} ms  p99 {run.latency_us['p99'] / 1000:.2f} ms  "
                    f"{run.cpu_ms_per_request:.3f} ms CPU/req",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()

    def median(name: str, field: str) -> float:
        runs = [run for run in results if run.server == name]
        if field == "rps":
            return statistics.median(run.throughput for run in runs)
        if field == "cpu":
            return statistics.median(run.cpu_ms_per_request for run in runs)
        return statistics.median(run.latency_us[field] for run in runs) / 1000

    summary = {
        name: {
            "throughput_rps": median(name, "rps"),
            "p50_ms": median(name, "p50"),
            "p99_ms": median(name, "p99"),
            "cpu_ms_per_request": median(name, "cpu"),
        }
        for name in ("wait", "no-wait")
    }
    ratio = summary["wait"]["throughput_rps"] / summary["no-wait"]["throughput_rps"]
    return {
        "connections": connections,
        "seconds": seconds,
        "rounds": rounds,
        "pinned": pins.pinned,
        "summary": summary,
        "throughput_ratio_wait_vs_no_wait": ratio,
        "target": f">= {SPOOL_COST_TARGET}",
        "met": ratio >= SPOOL_COST_TARGET,
        "runs": [run.as_dict() for run in results],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3, help="Length of each in-process run and each wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per server (alternating).")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections.")
    parser.add_argument("--drain-events", type=int, default=50_000, help="Backlog drained into SQLite.")
    parser.add_argument("--skip-http", action="store_true", help="Only the in-process measurements.")
    parser.add_argument("--output", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bastion-audit-bench-"))
    try:
        print(f"audit throughput ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
        record = asyncio.run(record_phase(work, args.seconds))
        delivery = asyncio.run(delivery_phase(work, max(args.seconds, 3)))
        drain = asyncio.run(drain_phase(work, args.drain_events))
        http = None if args.skip_http else http_phase(work, args.rounds, args.seconds, args.connections)
        if http is not None:
            wait, no_wait = http["summary"]["wait"], http["summary"]["no-wait"]
            print(
                f"\n  governed get_file_contents, {args.connections} connections: awaiting the spool "
                f"{wait['throughput_rps']:.0f} req/s vs not {no_wait['throughput_rps']:.0f} req/s = "
                f"{http['throughput_ratio_wait_vs_no_wait']:.3f}x (target {http['target']}: "
                f"{'MET' if http['met'] else 'NOT MET'}); p50 {wait['p50_ms']:.2f} vs {no_wait['p50_ms']:.2f} ms"
            )
        report = {
            "benchmark": "audit_throughput",
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "record": record,
            "delivery": delivery,
            "drain": drain,
            "http": http,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON result: {args.output}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
