"""The audit guarantee, end to end, with a real `bastion serve` process:

- crash: N tool calls, `kill -9` right after the last response: all N events are in the spool's log files; after a
  restart every sink (SQLite, JSON lines, PostgreSQL) ends up holding all N events exactly once, and each chain
  verifies. PostgreSQL is down during the calls, so at the kill its whole backlog exists only in the spool.
- fault: the CloudWatch sink points at a real moto_server; moto is killed mid-load, calls go on (none fails, none
  waits for CloudWatch), moto comes back, and every event is in the log stream exactly once, in order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx2
import pytest
from tests.audit.helpers import spooled
from tests.support.gitrepo import git
from tests.support.moto import AWS_TEST_ENV, MotoServer, moto_with_fake_credentials
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.server import free_port

from bastion.audit.jsonl import JsonlAuditSink
from bastion.audit.postgres import PostgresAuditSink
from bastion.audit.sink import QueryableSink
from bastion.audit.sqlite import SqliteAuditSink
from bastion.audit.verify import verify_lines
from bastion.config import Settings

pytestmark = pytest.mark.slow

PROTOCOL = "2026-07-28"
GIT_AUTHOR = {
    "GIT_AUTHOR_NAME": "Durability",
    "GIT_AUTHOR_EMAIL": "durability@example.invalid",
    "GIT_COMMITTER_NAME": "Durability",
    "GIT_COMMITTER_EMAIL": "durability@example.invalid",
}
SUBJECT = "durability-user"
POLICY = f"""\
version: 1
rules:
  - name: durability-read
    repositories: ["acme/durable"]
    subjects: {{users: ["{SUBJECT}"]}}
    operations: [read]
"""
# Documented in docs/audit.md: a sink outage adds nothing to the request path. A call that waited for CloudWatch
# would take the whole outage (OUTAGE_SECONDS); every call during it must stay under this.
REQUEST_BOUND_SECONDS = 1.0
OUTAGE_SECONDS = 4.0


def _bastion(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from bastion.cli.main import main; main()", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BASTION_DATA_DIR": str(data_dir)},
    )
    assert done.returncode == 0, f"bastion {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


@dataclass
class Prepared:
    data_dir: Path
    key: str


def _prepare(root: Path) -> Prepared:
    """A data directory the way an operator makes one: a mirrored repository, a policy, an API key."""
    origin = root / "origin"
    (origin / "src").mkdir(parents=True)
    (origin / "src" / "app.py").write_text("print('durable')\n")
    git(origin, "init", "--quiet", "--initial-branch=main")
    git(origin, "add", ".")
    git(origin, "commit", "--quiet", "-m", "First", env=GIT_AUTHOR)
    data_dir = root / "data"
    data_dir.mkdir(mode=0o700)
    _bastion(data_dir, "repo", "add", origin.resolve().as_uri(), "--name", "acme/durable")
    (data_dir / "policy.yaml").write_text(POLICY)
    key_file = data_dir / "api-key"
    _bastion(data_dir, "keys", "create", "--subject", SUBJECT, "--expires", "1d", "--output", str(key_file))
    return Prepared(data_dir, key_file.read_text().strip())


class Server:
    """`bastion serve` as a child process on a free port."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        # Rate limits off: these tests send hundreds of calls a minute from one caller on purpose.
        self.env = {**os.environ, **env, "BASTION_DATA_DIR": str(data_dir), "BASTION_RATE_LIMIT__ENABLED": "false"}
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [sys.executable, "-c", "from bastion.cli.main import main; main()", "serve", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bastion serve did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _call(client: httpx2.Client, server: Server, key: str, request_id: str) -> float:
    """One governed tools/call; asserts it succeeded; returns its duration in seconds."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "durability", "version": "1"},
    }
    params = {
        "name": "get_file_contents",
        "arguments": {"owner": "acme", "repo": "durable", "path": "src/app.py"},
        "_meta": meta,
    }
    started = time.monotonic()
    response = client.post(
        f"{server.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params},
        headers={
            "Authorization": f"Bearer {key}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL,
            "Mcp-Method": "tools/call",
            "Mcp-Name": "get_file_contents",
            "X-Request-Id": request_id,
        },
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text[:500]
    result = response.json()["result"]
    assert not result.get("isError"), result
    assert result["structuredContent"]["content"] == "print('durable')\n"
    return elapsed


def _request_ids(sink: QueryableSink, prefix: str) -> list[str]:
    ids: list[str] = []
    for stored in sink.scan():
        request_id = json.loads(stored.line).get("request_id") or ""
        if request_id.startswith(prefix):
            ids.append(request_id)
    return ids


def _wait_for(sink: QueryableSink, prefix: str, count: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = _request_ids(sink, prefix)
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        time.sleep(0.2)


@pytest.fixture(scope="module")
def own_postgres() -> Generator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Generator[MotoServer]:
    with moto_with_fake_credentials(tmp_path_factory.mktemp("moto")) as server:
        yield server


def test_no_event_is_lost_when_the_server_is_killed_right_after_answering(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    prepared = _prepare(tmp_path)
    database = own_postgres.create_database()
    env = {
        "BASTION_AUDIT__SINKS": '["sqlite", "jsonl", "postgresql"]',
        "BASTION_AUDIT__POSTGRESQL_URL": database,
        "BASTION_AUDIT__RETRY_MAX_SECONDS": "0.5",
    }
    server = Server(prepared.data_dir, env)
    server.start()
    calls = 150
    try:
        own_postgres.stop()  # the PostgreSQL sink's whole backlog now lives in the spool only
        with httpx2.Client(timeout=30) as client:
            for number in range(calls):
                _call(client, server, prepared.key, f"crash-{number:04d}")
        server.kill()  # kill -9 right after the last response
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()
        own_postgres.start()

    expected = [f"crash-{number:04d}" for number in range(calls)]
    # Before anything restarts: every answered call's event is in the spool's log, read straight from the files.
    spool_dir = Settings(data_dir=prepared.data_dir).audit_spool_dir
    in_spool = [json.loads(line).get("request_id") for _, line in spooled(spool_dir)]
    assert [request_id for request_id in in_spool if str(request_id).startswith("crash-")] == expected

    restarted = Server(prepared.data_dir, env)
    restarted.start()
    try:
        settings = Settings(data_dir=prepared.data_dir)
        sinks: dict[str, QueryableSink] = {
            "sqlite": SqliteAuditSink(settings.audit_db),
            "jsonl": JsonlAuditSink(settings.audit_jsonl),
            "postgresql": PostgresAuditSink(database),
        }
        try:
            for name, sink in sinks.items():
                found = _wait_for(sink, "crash-", calls)
                assert found == expected, f"{name}: {len(found)} of {calls} events, in this order: {found[:5]}..."
                report = verify_lines(name, sink.scan())
                assert report.ok, [problem.render() for problem in report.problems]
        finally:
            for sink in sinks.values():
                sink.close()
    finally:
        restarted.stop()


def _stream_messages(moto: MotoServer, group: str) -> list[dict[str, Any]]:
    client = boto3.client("logs", endpoint_url=moto.endpoint_url)
    messages: list[dict[str, Any]] = []
    for stream in client.describe_log_streams(logGroupName=group)["logStreams"]:
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {
                "logGroupName": group,
                "logStreamName": stream["logStreamName"],
                "startFromHead": True,
            }
            if token:
                arguments["nextToken"] = token
            page = client.get_log_events(**arguments)
            messages += [json.loads(event["message"]) for event in page["events"]]
            if not page["events"] or page["nextForwardToken"] == token:
                break
            token = page["nextForwardToken"]
    return messages


def test_cloudwatch_outage_loses_nothing_and_slows_no_request(tmp_path: Path, aws: MotoServer) -> None:
    prepared = _prepare(tmp_path)
    group = "/mcp-bastion/e2e/audit"
    boto3.client("logs", endpoint_url=aws.endpoint_url).create_log_group(logGroupName=group)
    env = {
        **AWS_TEST_ENV,
        "BASTION_AUDIT__SINKS": '["sqlite", "cloudwatch"]',
        "BASTION_AUDIT__CLOUDWATCH__LOG_GROUP": group,
        "BASTION_AUDIT__CLOUDWATCH__ENDPOINT_URL": aws.endpoint_url,
        "BASTION_AUDIT__CLOUDWATCH__REGION": "us-east-1",
        "BASTION_AUDIT__CLOUDWATCH__LOG_STREAM_PREFIX": "e2e-",
        "BASTION_AUDIT__RETRY_MAX_SECONDS": "0.5",
    }
    server = Server(prepared.data_dir, env)
    server.start()
    issued: list[str] = []
    during_outage: list[float] = []
    try:
        with httpx2.Client(timeout=30) as client:

            def call() -> float:
                request_id = f"fault-{len(issued):05d}"
                issued.append(request_id)
                return _call(client, server, prepared.key, request_id)

            for _ in range(100):
                call()
            aws.stop()  # mid-load: the sink's next PutLogEvents fails, and every one after it until the restart
            outage_started = time.monotonic()
            while time.monotonic() - outage_started < OUTAGE_SECONDS or len(during_outage) < 100:
                during_outage.append(call())
            aws.restart()
            for _ in range(100):
                call()

        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            messages = [
                item for item in _stream_messages(aws, group) if str(item.get("request_id")).startswith("fault-")
            ]
            if len(messages) >= len(issued):
                break
            time.sleep(0.3)
    finally:
        server.stop()

    assert [item["request_id"] for item in messages] == issued  # every event once, in the order of the calls
    seqs = [item["seq"] for item in messages]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert max(during_outage) < REQUEST_BOUND_SECONDS, (
        f"a call took {max(during_outage):.2f}s while CloudWatch was down (bound {REQUEST_BOUND_SECONDS}s)"
    )
    assert aws.restarts == 1
