"""`bastion keys create / list / revoke` through the root app, against a real state store."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.auth.apikey import ApiKeyAuthenticator
from bastion.auth.keys import KEY_LENGTH, KeyStore, parse_key_id
from bastion.cli.main import app
from bastion.config import Settings
from bastion.store.db import api_keys, open_state, write_transaction

runner = CliRunner()


def _keys(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), "keys", *args])
    return result.exit_code, result.stdout, result.stderr


def _create(data_dir: Path, *args: str) -> str:
    code, out, err = _keys(data_dir, "create", *args)
    assert code == 0, err
    return out.strip()


def test_create_prints_the_key_alone_on_stdout_and_warns_on_stderr(tmp_path: Path) -> None:
    code, out, err = _keys(tmp_path, "create", "--subject", "alice", "--group", "eng", "--group", "ops")
    assert code == 0, err
    key = out.strip()
    assert out == key + "\n"
    assert len(key) == KEY_LENGTH
    key_id = parse_key_id(key)
    assert key_id is not None
    assert f"Created API key {key_id} for alice (groups: eng, ops; expires: " in err
    assert "Store this key now: it cannot be shown again (only its hash is kept)." in err


@pytest.mark.anyio
async def test_a_created_key_authenticates(tmp_path: Path) -> None:
    key = _create(tmp_path, "--subject", "alice", "-g", "eng", "--description", "ci runner", "--expires", "never")
    store = KeyStore(open_state(Settings(data_dir=tmp_path)))
    authenticator = ApiKeyAuthenticator(store)
    try:
        principal = await authenticator.authenticate(key)
    finally:
        authenticator.close()
        store.engine.dispose()
    assert (principal.subject, principal.groups, principal.credential_id) == (
        "alice",
        frozenset({"eng"}),
        parse_key_id(key),
    )


def test_output_writes_a_private_file_and_prints_only_the_id(tmp_path: Path) -> None:
    target = tmp_path / "alice.key"
    code, out, err = _keys(tmp_path / "data", "create", "--subject", "alice", "--output", str(target))
    assert code == 0, err
    key = target.read_text().strip()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert out.strip() == parse_key_id(key)
    assert key not in out
    assert key not in err
    assert f"The key is in {target} (mode 0600); it cannot be shown again." in err


def test_output_never_overwrites_a_file(tmp_path: Path) -> None:
    target = tmp_path / "existing"
    target.write_text("another secret\n")
    code, _, err = _keys(tmp_path / "data", "create", "--subject", "alice", "--output", str(target))
    assert code == 1
    assert "already exists; choose a new file so no other secret is overwritten" in err
    assert target.read_text() == "another secret\n"
    assert _keys(tmp_path / "data", "list", "--json")[1] == "[]\n"  # and no key was issued


@pytest.mark.parametrize(
    ("expires", "expected_delta"),
    [("12h", timedelta(hours=12)), ("90d", timedelta(days=90)), ("2w", timedelta(weeks=2))],
)
def test_relative_expiry(tmp_path: Path, expires: str, expected_delta: timedelta) -> None:
    before = datetime.now(UTC)
    _create(tmp_path, "--subject", "alice", "--expires", expires)
    [entry] = json.loads(_keys(tmp_path, "list", "--json")[1])
    expires_at = datetime.fromisoformat(entry["expires_at"])
    assert before + expected_delta <= expires_at <= datetime.now(UTC) + expected_delta


def test_absolute_and_no_expiry(tmp_path: Path) -> None:
    next_year = datetime.now(UTC).year + 1
    _create(tmp_path, "--subject", "alice", "--expires", f"{next_year}-01-01")
    _create(tmp_path, "--subject", "bob", "--expires", "never")
    entries = json.loads(_keys(tmp_path, "list", "--json")[1])
    assert [(entry["subject"], entry["expires_at"]) for entry in entries] == [
        ("alice", f"{next_year}-01-01T00:00:00+00:00"),
        ("bob", None),
    ]


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("soon", "--expires 'soon': use a duration (90d, 12h, 2w), a date (2027-01-01), or 'never'"),
        ("2020-01-01", "--expires '2020-01-01' is not in the future"),
        ("0d", "--expires '0d' is not in the future"),
    ],
)
def test_bad_expiry_is_refused(tmp_path: Path, expires: str, message: str) -> None:
    code, out, err = _keys(tmp_path, "create", "--subject", "alice", "--expires", expires)
    assert code == 1
    assert out == ""
    assert message in " ".join(err.split())


def test_list_shows_status_and_never_a_secret(tmp_path: Path) -> None:
    active = _create(tmp_path, "--subject", "alice", "-g", "eng", "--description", "laptop")
    revoked = _create(tmp_path, "--subject", "bob")
    expired = _create(tmp_path, "--subject", "carol")
    assert _keys(tmp_path, "revoke", str(parse_key_id(revoked)))[0] == 0
    engine = open_state(Settings(data_dir=tmp_path))
    with write_transaction(engine) as connection:
        connection.execute(
            api_keys.update()
            .where(api_keys.c.key_id == parse_key_id(expired))
            .values(expires_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
        hashes = [row.key_hash for row in connection.execute(api_keys.select())]
    engine.dispose()

    code, out, _ = _keys(tmp_path, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "SUBJECT", "GROUPS", "CREATED", "EXPIRES", "STATUS", "DESCRIPTION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[str(parse_key_id(active))][1:3] == ["alice", "eng"]
    assert rows[str(parse_key_id(active))][-2:] == ["active", "laptop"]
    assert rows[str(parse_key_id(revoked))][-1] == "revoked"
    assert rows[str(parse_key_id(expired))][-1] == "expired"
    assert "2026-01-01 00:00" in " ".join(rows[str(parse_key_id(expired))])

    json_out = _keys(tmp_path, "list", "--json")[1]
    statuses = {entry["key_id"]: entry["status"] for entry in json.loads(json_out)}
    assert statuses == {
        parse_key_id(active): "active",
        parse_key_id(revoked): "revoked",
        parse_key_id(expired): "expired",
    }
    for secret in [active, revoked, expired, *hashes]:
        assert secret not in out
        assert secret not in json_out


def test_list_with_no_keys_says_how_to_make_one(tmp_path: Path) -> None:
    code, out, err = _keys(tmp_path, "list")
    assert (code, out) == (0, "")
    assert "No API keys yet: `bastion keys create --subject NAME` issues one." in err


def test_revoke_twice_and_unknown(tmp_path: Path) -> None:
    key_id = str(parse_key_id(_create(tmp_path, "--subject", "alice")))
    code, out, _ = _keys(tmp_path, "revoke", key_id)
    assert code == 0
    assert out.startswith(f"Revoked key {key_id} (alice) at ")

    code, out, _ = _keys(tmp_path, "revoke", key_id)
    assert code == 0
    assert out.startswith(f"Key {key_id} (alice) was already revoked at ")

    code, _, err = _keys(tmp_path, "revoke", "ffffffffffff")
    assert code == 1
    assert "no API key with id 'ffffffffffff'; `bastion keys list` shows the ids" in " ".join(err.split())


def test_revoking_by_the_whole_key_never_prints_its_secret(tmp_path: Path) -> None:
    """`keys revoke <the key>` answered "no API key with id 'bst_..._<secret>'" (found by a probe)."""
    key = _create(tmp_path, "--subject", "alice")
    key_id = str(parse_key_id(key))
    code, out, err = _keys(tmp_path, "revoke", key)
    assert code == 0
    assert out.startswith(f"Revoked key {key_id} (alice) at ")
    secret = key.split("_", 2)[2]  # bst_<id>_<secret>, the secret may hold "_" itself
    code, out, err = _keys(tmp_path, "revoke", key[:-1] + ("A" if key[-1] != "A" else "B") + "xyz")
    assert code == 1
    assert "not a key id: give the 12 hexadecimal characters" in " ".join(err.split())
    assert secret[:20] not in out + err


@pytest.mark.parametrize("expires", ["99999999d", "99999999999999999999d"])
def test_an_expiry_past_the_calendar_is_refused_not_a_traceback(tmp_path: Path, expires: str) -> None:
    code, _, err = _keys(tmp_path, "create", "--subject", "zoe", "--expires", expires)
    assert code != 0
    assert f"--expires {expires!r}: use a duration" in " ".join(err.split())
    assert "Traceback" not in err
