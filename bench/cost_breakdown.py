"""Where the governed path's CPU goes: the same `get_file_contents` request driven through the ASGI apps
in-process (no sockets, no uvicorn), with one part of the governed path replaced by a stand-in at a time.

A diagnostic to read next to bench/governed_vs_bare.py, not a benchmark of its own: it measures CPU per request
in the event loop thread, in other threads (the audit writers) and in child processes (`git cat-file`), for

    bare              the bare MCPServer of bench/bare_server.py
    sdk+tools         our MCPServer (tool signatures, the audit extension) without our HTTP layers; tool body stubbed
    sdk+audit         sdk+tools, with each call still going through run_tool's envelope: the caller's identity,
                      the audit event sealed into the chain and awaited in the durable spool, metrics, through
                      the SDK's own runner: no HTTP layer, no policy, no read, only the audit guarantee
    http+tools        the whole app (edge, authentication, rate limit, the direct tools/call path) with the tool
                      body stubbed
    governed          the whole governed path
    no-audit          governed, with the audit record dropped (nothing sealed, spooled or written)
    no-spool-write    governed, with the audit spool's log write() skipped: events are still built, sealed into
                      the chain and delivered to the SQLite sink from memory, but nothing is durable before the
                      answer (what the durable spool itself costs: issue 4's "at most 10%" target)
    no-git-read       governed, with the file's bytes served from memory after the first read
    no-ref-resolve    governed, with the branch resolved once and remembered
    tool-layer-only   governed with all three of the above: what is left is policy, validation and results

Each variant runs in its own process pinned to one core, in alternating rounds; medians are reported. The
differences between variants are the marginal cost of each part (not exactly additive). Stand-ins replace
attributes of the objects `bastion.app.build_runtime` returns, so this script follows the code it measures and
fails loudly when those names change.

    .venv/bin/python bench/cost_breakdown.py [--requests 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp as App
from starlette.types import Message, Scope

from governed_vs_bare import export_head
from harness import cpu_time, pinning
from setup_data import prepare

BENCH_DIR = Path(__file__).resolve().parent
VARIANTS = (
    "bare",
    "sdk+tools",
    "sdk+audit",
    "http+tools",
    "governed",
    "no-audit",
    "no-spool-write",
    "no-git-read",
    "no-ref-resolve",
    "tool-layer-only",
)
CONCURRENCY = 16


def _memoize(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    remembered: dict[tuple[Any, ...], Any] = {}

    async def memoized(*args: Any) -> Any:
        if args not in remembered:
            remembered[args] = await method(*args)
        return remembered[args]

    return memoized


def build_variant(variant: str, data_dir: Path, content: str) -> App:
    """The ASGI app for `variant` (see the module docstring)."""
    if variant == "bare":
        from bare_server import build_app

        return build_app(content)

    os.environ.update(
        {
            "BASTION_DATA_DIR": str(data_dir),
            "BASTION_SERVER__JSON_RESPONSE": "true",
            "BASTION_RATE_LIMIT__DEFAULT": "1000000000/minute",
        }
    )
    import bastion.server
    from bastion.app import build_runtime, create_app
    from bastion.config import Settings

    if variant in ("sdk+tools", "sdk+audit", "http+tools"):
        real_run_tool = bastion.server.run_tool
        remembered: dict[str, Any] = {}

        async def answer(call: Any) -> Any:
            return remembered["result"]

        async def stub_run_tool(services: Any, ctx: Any, tool: str, body: Any) -> Any:
            if "result" not in remembered:
                remembered["result"] = await real_run_tool(services, ctx, tool, body)
            elif variant == "sdk+audit":
                return await real_run_tool(services, ctx, tool, answer)
            return remembered["result"]

        bastion.server.run_tool = stub_run_tool
    settings = Settings()
    runtime = build_runtime(settings)
    if variant == "no-spool-write":
        import bastion.audit.spool

        bastion.audit.spool._write_all = lambda fd, data: None  # pyright: ignore[reportAttributeAccessIssue]
    if variant in ("no-audit", "tool-layer-only"):
        runtime.services.record = lambda event: None  # pyright: ignore[reportAttributeAccessIssue]
    if variant in ("no-git-read", "tool-layer-only"):
        runtime.backend.read_blob = _memoize(runtime.backend.read_blob)  # pyright: ignore[reportAttributeAccessIssue]
    if variant in ("no-ref-resolve", "tool-layer-only"):
        runtime.backend.resolve = _memoize(runtime.backend.resolve)  # pyright: ignore[reportAttributeAccessIssue]
    app = create_app(settings, runtime)
    if variant not in ("sdk+tools", "sdk+audit"):
        return app
    return _sdk_only(runtime, app)


def _sdk_only(runtime: Any, app: Any) -> App:
    """Our MCPServer's streamable HTTP app with the identity our middleware would have put in the scope; the
    full app is kept only for its lifespan (which starts the audit log and the SDK's session manager)."""
    from bastion.principal import Principal, RequestInfo
    from bastion.transport.authn import PRINCIPAL_KEY
    from bastion.transport.edge import REQUEST_INFO_KEY

    sdk_app = runtime.mcp.streamable_http_app(json_response=True, stateless_http=True)
    principal = Principal("bench-user", frozenset(), "api_key", "bench")
    info = RequestInfo("bench", "127.0.0.1", None)

    async def sdk_only(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await app(scope, receive, send)
            return
        scope[PRINCIPAL_KEY], scope[REQUEST_INFO_KEY] = principal, info
        await sdk_app(scope, receive, send)

    return sdk_only


def _headers(body: bytes, key: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"mcp-protocol-version", b"2026-07-28"),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b"get_file_contents"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]


async def _call(app: App, headers: list[tuple[bytes, bytes]], body: bytes, answer: list[bytes] | None = None) -> None:
    """One POST /mcp through the ASGI app; anything but a 200 stops the measurement. The response body is kept in
    `answer` when one is given."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    delivered = False
    status: list[int] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif answer is not None and message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    if status != [200]:
        raise SystemExit(f"expected 200, got {status}")


def _check_answer(raw: bytes) -> None:
    """A measurement of error answers is worthless: the file's text must come back, not an error."""
    answer = json.loads(raw)
    result = answer.get("result") or {}
    if "error" in answer or result.get("isError") or not result.get("content"):
        raise SystemExit(f"expected the file's contents, got {raw[:500]!r}")


class _Lifespan:
    """Runs the app's ASGI lifespan (audit log, session manager, ...) around the measurement."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async def run() -> None:
            await self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, self.inbox.get, self.put)

        self.task = asyncio.create_task(run())
        await self.inbox.put({"type": "lifespan.startup"})
        started = await self.outbox.get()
        if started["type"] != "lifespan.startup.complete":
            raise SystemExit(f"the app did not start: {started}")

    async def put(self, message: Message) -> None:
        await self.outbox.put(message)

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        if self.task is not None:
            await self.task


async def _drive(app: App, body: bytes, key: str, requests: int) -> dict[str, float]:
    headers = _headers(body, key)
    lifespan = _Lifespan(app)
    await lifespan.start()
    answer: list[bytes] = []
    await _call(app, headers, body, answer)
    _check_answer(b"".join(answer))
    for _ in range(300):  # warm caches (policy, refs, trees, key) before measuring
        await _call(app, headers, body)
    batches = requests // CONCURRENCY
    before = cpu_time(os.getpid())
    for _ in range(batches):
        await asyncio.gather(*(_call(app, headers, body) for _ in range(CONCURRENCY)))
    spent = cpu_time(os.getpid()) - before
    await lifespan.stop()
    done = batches * CONCURRENCY
    return {
        "main_thread_us": spent.main_thread / done * 1e6,
        "other_threads_us": spent.other_threads / done * 1e6,
        "children_us": spent.children / done * 1e6,
        "total_us": spent.total / done * 1e6,
    }


def run_one(variant: str, data_dir: Path, payload: Path, requests: int) -> dict[str, float]:
    """Child-process side: build the variant and measure it."""
    import uvloop

    from governed_vs_bare import request_body

    app = build_variant(variant, data_dir, payload.read_text())
    key = (data_dir / "api-key").read_text().strip()
    return uvloop.run(_drive(app, request_body(), key, requests))


def marginal_costs(total: dict[str, float]) -> dict[str, float]:
    """Differences between the variants that were run (a part is left out when one of its two variants was not)."""
    pairs = {
        "SDK cost of our tool definitions (sdk+tools - bare)": ("sdk+tools", "bare"),
        "the audit guarantee alone, on the SDK (sdk+audit - sdk+tools)": ("sdk+audit", "sdk+tools"),
        "our HTTP layers and direct tools/call path, against the SDK (http+tools - sdk+tools)": (
            "http+tools",
            "sdk+tools",
        ),
        "the tool body, all of it (governed - http+tools)": ("governed", "http+tools"),
        "  of which audit (governed - no-audit)": ("governed", "no-audit"),
        "    of which the spool's durable write (governed - no-spool-write)": ("governed", "no-spool-write"),
        "  of which the git read (governed - no-git-read)": ("governed", "no-git-read"),
        "  of which ref resolution (governed - no-ref-resolve)": ("governed", "no-ref-resolve"),
        "  policy, validation, results (tool-layer-only - http+tools)": ("tool-layer-only", "http+tools"),
    }
    return {label: total[a] - total[b] for label, (a, b) in pairs.items() if a in total and b in total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="Measured requests per variant and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds; each runs every variant once.")
    parser.add_argument("--tree", choices=("worktree", "head"), default="worktree", help="As in governed_vs_bare.py.")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "cost_breakdown.json")
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="Only these (default: all)."
    )
    parser.add_argument("--one", nargs=3, metavar=("VARIANT", "DATA_DIR", "PAYLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        variant, data_dir, payload = args.one
        print(json.dumps(run_one(variant, Path(data_dir), Path(payload), args.requests)))
        return 0

    pins = pinning()
    with tempfile.TemporaryDirectory(prefix="bastion-costs-") as work:
        if args.tree == "head":
            print(f"code: {export_head(Path(work))}")
        data = prepare(Path(work) / "setup", Path(sys.executable).parent / "bastion")
        variants = tuple(args.variants)
        samples: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
        for round_number in range(1, args.rounds + 1):
            order = variants if round_number % 2 else tuple(reversed(variants))
            for variant in order:
                argv = [*pins.server_prefix, sys.executable, __file__, "--requests", str(args.requests)]
                argv += ["--one", variant, str(data.data_dir), str(data.file)]
                done = subprocess.run(argv, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"{variant} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
                samples[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"  round {round_number} {variant:<15} {samples[variant][-1]['total_us']:8.0f} µs/request")
    medians = {
        variant: {key: statistics.median(sample[key] for sample in runs) for key in runs[0]}
        for variant, runs in samples.items()
    }
    print(f"\nCPU per request, µs (medians of {args.rounds} rounds x {args.requests} requests, in-process, no HTTP):")
    # bare / variant: the throughput ratio this CPU cost allows on one saturated core (docs/benchmarks.md)
    bare = medians.get("bare", {}).get("total_us")
    print(f"  {'variant':<16} {'event loop':>10} {'threads':>8} {'children':>9} {'total':>7} {'bare/this':>9}")
    for variant, values in medians.items():
        # A short run can measure no CPU at all for a cheap variant (the clock counts in ticks): no ratio then.
        ratio = f"{bare / values['total_us']:.2f}" if bare and values["total_us"] > 0 else "-"
        print(
            f"  {variant:<16} {values['main_thread_us']:>10.0f} {values['other_threads_us']:>8.0f} "
            f"{values['children_us']:>9.0f} {values['total_us']:>7.0f} {ratio:>9}"
        )
    total = {variant: values["total_us"] for variant, values in medians.items()}
    parts = marginal_costs(total)
    print("\nMarginal costs, µs per request (total CPU):")
    for label, value in parts.items():
        print(f"  {label:<66} {value:>7.0f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"medians_us": medians, "marginal_us": parts, "samples": samples}, indent=2))
    print(f"\nJSON result: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
