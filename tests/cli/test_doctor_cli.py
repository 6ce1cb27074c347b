"""`bastion doctor` through the real root app: a healthy deployment passes; each kind of breakage is named with a
fix and exit status 1; network checks run against real local services (moto, Redis, an HTTP server's Date)."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Generator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.observability.helpers import OWNER, REPO, prepare
from tests.support.moto import moto_with_fake_credentials
from tests.support.redis_server import redis_server
from tests.support.server import free_port
from typer.testing import CliRunner

from bastion.cli.main import app


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BASTION_"):
            monkeypatch.delenv(name)


def doctor(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]], str]:
    """Run `bastion doctor --json`; returns the exit status, the checks, and the human output of a second run."""
    runner = CliRunner()
    # A generous per-check timeout: the two runs must agree, and on a loaded machine a local moto or Redis check
    # took over 3 s once (the runs then disagreed). No check here waits for its timeout to fail.
    as_json = runner.invoke(app, ["--data-dir", str(data_dir), "doctor", "--json", "--timeout", "15", *extra], env=env)
    human = runner.invoke(app, ["--data-dir", str(data_dir), "doctor", "--timeout", "15", *extra], env=env)
    assert as_json.exit_code == human.exit_code
    checks = [json.loads(line) for line in as_json.output.splitlines() if line.startswith("{")]
    return as_json.exit_code, checks, human.output


def by_name(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {check["check"]: check for check in checks}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    settings, _ = prepare(tmp_path)
    return settings.data_dir


def test_a_healthy_deployment_passes(data_dir: Path) -> None:
    code, checks, human = doctor(data_dir)
    found = by_name(checks)
    assert code == 0, human
    assert {check["status"] for check in checks} <= {"ok", "skip"}
    for name in (
        "settings",
        "data directory",
        "policy",
        "state store",
        "audit spool",
        "audit sink sqlite",
        "git",
        "rg",
    ):
        assert found[name]["status"] == "ok", found[name]
    assert found[f"mirror {OWNER}/{REPO}"]["detail"].startswith("last sync ")
    # doctor does not serve: it names the URL the server would advertise, without claiming it is up
    assert found["settings"]["detail"].endswith(", public URL http://127.0.0.1:8000/mcp"), found["settings"]
    assert "at schema" in found["state store"]["detail"]
    assert found["git"]["detail"].split(": ", 1)[1].startswith("git version")
    assert found["rg"]["detail"].split(": ", 1)[1].startswith("ripgrep")
    assert found["clock"]["status"] == "skip"  # nothing configured to compare with
    assert found["rate-limit store"]["detail"] == "in memory (one instance)"
    assert "loopback callers only" in found["metrics"]["detail"]
    assert "everything checked is fine" in human


def test_each_problem_is_named_with_a_fix(data_dir: Path) -> None:
    data_dir.chmod(0o755)
    (data_dir / "policy.yaml").write_text("version: 1\nrules:\n  - name: broken\n    effect: maybe\n")
    shutil.rmtree(data_dir / "mirrors" / OWNER / f"{REPO}.git")
    code, checks, human = doctor(data_dir)
    found = by_name(checks)
    assert code == 1
    assert found["data directory"]["status"] == "fail"
    assert "mode 0755" in found["data directory"]["detail"]
    assert found["data directory"]["fix"] == f"chmod 700 {data_dir}"
    assert found["policy"]["status"] == "fail"
    assert "line 3: rule 'broken' needs 'repositories'" in found["policy"]["detail"]
    assert "bastion policy lint" in found["policy"]["fix"]
    mirror = found[f"mirror {OWNER}/{REPO}"]
    assert mirror["status"] == "fail"
    assert "missing" in mirror["detail"]
    assert mirror["fix"] == f"bastion repo sync {OWNER}/{REPO}"
    assert "FAIL" in human and f"fix: chmod 700 {data_dir}" in human  # noqa: PT018
    assert "3 problem(s)" in human


def test_a_failed_sync_and_a_stale_mirror(data_dir: Path) -> None:
    from bastion.repos.registry import Registry

    Registry(data_dir).update(f"{OWNER}/{REPO}", last_sync_error="fatal: could not read from remote repository")
    code, checks, _ = doctor(data_dir)
    mirror = by_name(checks)[f"mirror {OWNER}/{REPO}"]
    assert code == 1
    assert "could not read from remote repository" in mirror["detail"]


def test_state_store_schema_and_missing_hmac_key(data_dir: Path) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(data_dir / "state.db")) as connection, connection:
        connection.execute("UPDATE alembic_version SET version_num = '0000'")
    code, checks, _ = doctor(data_dir, env={"BASTION_AUDIT__HMAC_KEY_SECRET": "NO_SUCH_VARIABLE_FOR_DOCTOR"})
    found = by_name(checks)
    assert code == 1
    assert "schema '0000'" in found["state store"]["detail"]
    assert found["audit HMAC key"]["status"] == "fail"
    assert "NO_SUCH_VARIABLE_FOR_DOCTOR" in found["audit HMAC key"]["detail"]


def test_cloudwatch_sink_against_a_local_aws(data_dir: Path, tmp_path: Path) -> None:
    with moto_with_fake_credentials(tmp_path / "moto") as moto:
        env = {
            "BASTION_AUDIT__SINKS": '["sqlite", "cloudwatch"]',
            "BASTION_AUDIT__CLOUDWATCH__LOG_GROUP": "/mcp-bastion/test/audit",
            "BASTION_AUDIT__CLOUDWATCH__ENDPOINT_URL": moto.endpoint_url,
            "BASTION_AUDIT__CLOUDWATCH__REGION": "us-east-1",
        }
        code, checks, _ = doctor(data_dir, env=env)
        sink = by_name(checks)["audit sink cloudwatch"]
        assert code == 1
        assert sink["detail"] == "log group /mcp-bastion/test/audit does not exist"
        assert "CREATE_LOG_GROUP" in sink["fix"]
        client = boto3.client("logs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        client.create_log_group(logGroupName="/mcp-bastion/test/audit")
        code, checks, human = doctor(data_dir, env=env)
        assert by_name(checks)["audit sink cloudwatch"]["status"] == "ok", human
        assert code == 0, human


def test_a_policy_from_ssm_is_fetched_and_linted(data_dir: Path, tmp_path: Path) -> None:
    with moto_with_fake_credentials(tmp_path / "moto") as moto:
        env = {"BASTION_POLICY__URL": "ssm:/mcp-bastion/doctor/policy", "AWS_ENDPOINT_URL": moto.endpoint_url}
        code, checks, _ = doctor(data_dir, env=env)
        policy = by_name(checks)["policy"]
        assert code == 1
        assert policy["detail"].startswith(
            "cannot read the policy parameter ssm:/mcp-bastion/doctor/policy: ParameterNotFound"
        )
        assert "ssm:GetParameter" in policy["fix"]
        ssm = boto3.client("ssm", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        ssm.put_parameter(Name="/mcp-bastion/doctor/policy", Value="version: 1\nrules: [{name: x}]\n", Type="String")
        code, checks, _ = doctor(data_dir, env=env)
        assert by_name(checks)["policy"]["detail"] == (
            "ssm:/mcp-bastion/doctor/policy@1: line 2: rule 'x' needs 'repositories' (and 2 more)"
        )
        good = (data_dir / "policy.yaml").read_text()
        ssm.put_parameter(Name="/mcp-bastion/doctor/policy", Value=good, Type="String", Overwrite=True)
        code, checks, human = doctor(data_dir, env=env)
        assert by_name(checks)["policy"]["status"] == "ok", human
        assert by_name(checks)["policy"]["detail"].startswith("ssm:/mcp-bastion/doctor/policy@2 loads")
        assert code == 0, human


def test_rate_limit_store(data_dir: Path, tmp_path: Path) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    code, checks, _ = doctor(data_dir, env={"BASTION_RATE_LIMIT__STORAGE_URL": closed})
    store = by_name(checks)["rate-limit store"]
    assert code == 1
    assert store["status"] == "fail"
    assert "Redis" in store["fix"]
    with redis_server(tmp_path / "redis") as redis:
        code, checks, _ = doctor(data_dir, env={"BASTION_RATE_LIMIT__STORAGE_URL": redis.url})
    assert by_name(checks)["rate-limit store"]["status"] == "ok"
    assert code == 0


@contextlib.contextmanager
def dated_server(offset_seconds: float) -> Generator[str]:
    """An HTTP server whose Date header is `offset_seconds` away from this machine's clock."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            import time

            return formatdate(time.time() + offset_seconds, usegmt=True)

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_clock_skew_against_the_identity_providers_date(data_dir: Path) -> None:
    with dated_server(-120) as issuer:
        code, checks, _ = doctor(data_dir, env={"BASTION_AUTH__OIDC__ISSUER": issuer})
    clock = by_name(checks)["clock"]
    assert code == 1
    assert clock["status"] == "fail"
    assert clock["detail"].startswith("+12") and issuer in clock["detail"]  # noqa: PT018
    assert "chrony" in clock["fix"]
    with dated_server(0) as issuer:
        code, checks, _ = doctor(data_dir, env={"BASTION_AUTH__OIDC__ISSUER": issuer})
    assert by_name(checks)["clock"]["status"] == "ok"
    assert code == 0
