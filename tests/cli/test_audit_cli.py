"""`bastion audit tail / search` against a real audit database, and `tail -f` in a real process."""

from __future__ import annotations

import json
import signal
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from tests.audit.helpers import Sealer
from tests.support.moto import moto_with_fake_credentials
from typer.testing import CliRunner

from bastion.audit.cloudwatch import CloudWatchAuditSink
from bastion.audit.event import AuditEvent
from bastion.audit.jsonl import JsonlAuditSink
from bastion.audit.sqlite import SqliteAuditSink
from bastion.cli.main import app
from bastion.config import Settings

runner = CliRunner()
SHA = "89abcdef0123456789abcdef0123456789abcdef"
NOW = datetime.now(UTC).replace(microsecond=0)


def _audit(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), "audit", *args])
    return result.exit_code, result.stdout, result.stderr


SEALERS: dict[Path, Sealer] = {}


def _write(data_dir: Path, events: list[AuditEvent]) -> None:
    """Store events as the server would: sealed into one instance's chain, continuing across calls."""
    sealer = SEALERS.setdefault(data_dir, Sealer())
    sink = SqliteAuditSink(Settings(data_dir=data_dir).audit_db)
    try:
        sink.write(sealer(events))
    finally:
        sink.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    _write(
        tmp_path,
        [
            AuditEvent(
                time=NOW - timedelta(days=3),
                subject="carol",
                tool="list_repositories",
                decision="allow",
                duration_ms=1.0,
            ),
            AuditEvent(
                time=NOW - timedelta(minutes=5),
                subject="alice",
                client="claude-code",
                tool="get_file_contents",
                repo="acme/api",
                ref="main",
                resolved_sha=SHA,
                decision="allow",
                duration_ms=4.56,
            ),
            AuditEvent(
                time=NOW - timedelta(minutes=4),
                subject="bob",
                client="vscode",
                tool="search_code",
                repo="acme/secrets",
                decision="deny",
                outcome="denied",
                reason="no rule allows bob to search acme/secrets",
                duration_ms=0.4,
            ),
            AuditEvent(
                time=NOW - timedelta(minutes=3),
                subject="alice",
                client="claude-code",
                tool="search_code",
                repo="acme/api",
                ref="main",
                resolved_sha=SHA,
                decision="allow",
                duration_ms=31.0,
            ),
        ],
    )
    return tmp_path


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") + "Z"


def test_tail_prints_the_newest_events_oldest_first(data_dir: Path) -> None:
    code, out, err = _audit(data_dir, "tail", "-n", "2")
    assert code == 0
    # the column names go to stderr, so stdout stays nothing but events for pipes and grep
    assert err.splitlines() == ["time  subject  client  tool  repo@ref (sha)  decision/outcome  duration  reason"]
    assert out.splitlines() == [
        f"{_stamp(NOW - timedelta(minutes=4))}  bob  vscode  search_code  acme/secrets  deny/denied  0.4ms  "
        '"no rule allows bob to search acme/secrets"',
        f"{_stamp(NOW - timedelta(minutes=3))}  alice  claude-code  search_code  acme/api@main (89abcde)  "
        "allow/ok  31.0ms",
    ]
    assert len(_audit(data_dir, "tail")[1].splitlines()) == 4  # default -n 20 shows all four
    assert _audit(data_dir, "tail", "--json")[2] == ""  # JSON lines describe themselves


def test_tail_of_an_empty_log_says_so(tmp_path: Path) -> None:
    _write(tmp_path, [])
    code, out, err = _audit(tmp_path, "tail")
    assert (code, out) == (0, "")
    assert err.splitlines()[-1] == "No audit events yet."


def test_tail_json_is_one_parseable_object_per_line_with_positions(data_dir: Path) -> None:
    code, out, _ = _audit(data_dir, "tail", "--json")
    assert code == 0
    documents = [json.loads(line) for line in out.splitlines()]
    assert [document["id"] for document in documents] == [1, 2, 3, 4]
    assert [document["subject"] for document in documents] == ["carol", "alice", "bob", "alice"]
    assert documents[1]["resolved_sha"] == SHA


@pytest.mark.parametrize(
    ("filters", "subjects"),
    [
        (["--subject", "alice"], ["alice", "alice"]),
        (["--repo", "acme/secrets"], ["bob"]),
        (["--decision", "deny"], ["bob"]),
        (["--decision", "allow"], ["carol", "alice", "alice"]),
        (["--tool", "search_code"], ["bob", "alice"]),
        (["--since", "1h"], ["alice", "bob", "alice"]),
        (["--since", "4d"], ["carol", "alice", "bob", "alice"]),
        (["--since", (NOW - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")], ["bob", "alice"]),
        (["--since", (NOW - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%MZ")], ["bob", "alice"]),
        (["--subject", "alice", "--tool", "search_code"], ["alice"]),
        (["--limit", "1"], ["alice"]),
    ],
)
def test_search_filters(data_dir: Path, filters: list[str], subjects: list[str]) -> None:
    code, out, _ = _audit(data_dir, "search", "--json", *filters)
    assert code == 0
    assert [json.loads(line)["subject"] for line in out.splitlines()] == subjects


def test_search_prints_lines_and_says_when_nothing_matches(data_dir: Path) -> None:
    code, out, _ = _audit(data_dir, "search", "--decision", "deny")
    assert code == 0
    assert out.splitlines() == [
        f"{_stamp(NOW - timedelta(minutes=4))}  bob  vscode  search_code  acme/secrets  deny/denied  0.4ms  "
        '"no rule allows bob to search acme/secrets"'
    ]
    code, out, err = _audit(data_dir, "search", "--subject", "nobody")
    assert (code, out) == (0, "")
    assert "No matching audit events." in err


def test_search_refuses_bad_filters(data_dir: Path) -> None:
    code, _, err = _audit(data_dir, "search", "--since", "yesterday")
    assert code == 1
    assert "--since 'yesterday': use a duration back from now (90m, 1h, 2d) or a time (2026-11-01T00:00Z)" in (
        " ".join(err.split())
    )
    code, _, err = _audit(data_dir, "search", "--decision", "maybe")
    assert code == 2
    assert "'maybe' is not one of" in " ".join(err.split())


def test_a_missing_audit_database_is_explained(tmp_path: Path) -> None:
    code, _, err = _audit(tmp_path / "empty", "tail")
    assert code == 1
    assert f"no audit database at {tmp_path / 'empty' / 'audit.db'} yet: the server creates it when it starts" in (
        " ".join(err.split())
    )
    assert not (tmp_path / "empty" / "audit.db").exists()


def test_tail_follow_prints_new_events_and_exits_cleanly_on_ctrl_c(data_dir: Path) -> None:
    command = [sys.executable, "-c", "from bastion.cli.main import main; main()"]
    arguments = ["--data-dir", str(data_dir), "audit", "tail", "-f", "-n", "1", "--interval", "0.05"]
    process = subprocess.Popen([*command, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "  alice  claude-code  search_code  acme/api@main (89abcde)  allow/ok  31.0ms" in first

        _write(data_dir, [AuditEvent(subject="dave", tool="get_commit"), AuditEvent(subject="erin", tool="compare")])
        new_lines = [process.stdout.readline(), process.stdout.readline()]
        assert ["  dave  -  get_commit  " in new_lines[0], "  erin  -  compare  " in new_lines[1]] == [True, True]

        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert "Aborted" not in stderr


def test_verify_passes_an_intact_log_and_names_what_it_checked(data_dir: Path) -> None:
    code, out, _ = _audit(data_dir, "verify")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "sqlite: 4 records, 1 instance(s): OK"
    assert lines[1] == "  instance test0instance000: 4 records, seq 1-4"


def test_verify_reports_an_edited_record_and_exits_1(data_dir: Path) -> None:
    database = Settings(data_dir=data_dir).audit_db
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE audit_events SET event = replace(event, '\"bob\"', '\"eve\"') WHERE seq = 3")
    connection.close()
    code, out, _ = _audit(data_dir, "verify", "--sink", "sqlite")
    assert code == 1
    assert "sqlite: 4 records, 1 instance(s): 1 problem(s)" in out
    assert "  modified    instance test0instance000, seq 3, position 3: its content does not match its hash" in out
    code, out, _ = _audit(data_dir, "verify", "--json")
    assert code == 1
    [report] = json.loads(out)
    assert [(problem["kind"], problem["seq"]) for problem in report["problems"]] == [("modified", 3)]


def test_verify_with_a_key_reports_an_all_plain_instance_unless_it_is_named(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log was sealed before any key was configured: with one now, its instance could have been made by
    anyone (SHA-256 needs no key) unless the operator names it as one that ran before the key."""
    monkeypatch.setenv("TEST_CLI_AUDIT_KEY", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("BASTION_AUDIT__HMAC_KEY_SECRET", "TEST_CLI_AUDIT_KEY")
    code, out, _ = _audit(data_dir, "verify", "--sink", "sqlite")
    assert code == 1
    assert (
        "  unverifiable  instance test0instance000, seq 1, position 1: none of its 4 record(s) is sealed with the "
        "HMAC key that is configured" in out
    )
    code, out, _ = _audit(data_dir, "verify", "--sink", "sqlite", "--allow-plain-instance", "test0instance000")
    assert code == 0, out
    assert out.splitlines()[0] == "sqlite: 4 records, 1 instance(s): OK"


def test_export_writes_the_sealed_lines_for_a_siem(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "siem.jsonl"
    code, _, err = _audit(data_dir, "export", "--since", "1h", "--output", str(target))
    assert code == 0
    assert "exported 3 events (jsonl) from sqlite" in err
    documents = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(document["seq"], document["subject"]) for document in documents] == [
        (2, "alice"),
        (3, "bob"),
        (4, "alice"),
    ]
    assert all(document["hash"].startswith("sha256:") for document in documents)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # subjects, addresses, paths: the operator's only
    code, out, _ = _audit(data_dir, "export")  # everything, to stdout
    assert code == 0
    assert len(out.splitlines()) == 4


def test_sink_option_reads_the_jsonl_sink(data_dir: Path) -> None:
    path = Settings(data_dir=data_dir).audit_jsonl
    JsonlAuditSink(path).write(Sealer("jsonl0instance00")([AuditEvent(subject="zoe", tool="list_repositories")]))
    code, out, _ = _audit(data_dir, "tail", "--sink", "jsonl", "--json")
    assert code == 0
    assert [json.loads(line)["subject"] for line in out.splitlines()] == ["zoe"]
    code, out, _ = _audit(data_dir, "verify", "--sink", "jsonl", "--sink", "sqlite")
    assert code == 0
    assert out.splitlines()[0] == "jsonl: 1 records, 1 instance(s): OK"


def test_a_missing_jsonl_file_is_explained(tmp_path: Path) -> None:
    code, _, err = _audit(tmp_path, "search", "--sink", "jsonl")
    assert code == 1
    assert f"no audit file at {tmp_path / 'audit.jsonl'} yet" in " ".join(err.split())


@pytest.mark.parametrize("since", ["999999d", "99999999999999999999d"])
def test_a_since_before_the_calendar_is_refused_not_a_traceback(data_dir: Path, since: str) -> None:
    code, _, err = _audit(data_dir, "search", "--since", since)
    assert code != 0
    assert f"--since {since!r}: use a duration back from now" in " ".join(err.split())


def test_following_a_sink_that_cannot_be_followed_is_refused_before_anything_is_printed(
    data_dir: Path, tmp_path: Path
) -> None:
    group = "/mcp-bastion/test/tail"
    with moto_with_fake_credentials(tmp_path / "moto") as moto:
        boto3.client("logs", endpoint_url=moto.endpoint_url, region_name="us-east-1").create_log_group(
            logGroupName=group
        )
        CloudWatchAuditSink(group, endpoint_url=moto.endpoint_url, region="us-east-1").write(
            Sealer("cw0instance00000")([AuditEvent(subject="zoe", tool="list_repositories")])
        )
        env = {
            "BASTION_AUDIT__CLOUDWATCH__LOG_GROUP": group,
            "BASTION_AUDIT__CLOUDWATCH__ENDPOINT_URL": moto.endpoint_url,
            "BASTION_AUDIT__CLOUDWATCH__REGION": "us-east-1",
        }
        argv = ["--data-dir", str(data_dir), "audit", "tail", "--sink", "cloudwatch"]
        shown = runner.invoke(app, argv, env=env)
        followed = runner.invoke(app, [*argv, "-f"], env=env)
    assert shown.exit_code == 0, shown.stderr
    assert "zoe" in shown.stdout  # the sink answers tail
    assert followed.exit_code == 1
    assert followed.stdout == ""  # not the newest events first and the refusal after them
    assert "audit sink cloudwatch: following new events needs a sink with storage positions" in followed.stderr
    assert "aws logs tail --follow" in followed.stderr
