"""The state store on a real PostgreSQL server (`BASTION_STATE_URL` + `BASTION_STATE_PASSWORD`): Alembic migration
on open, instances starting together migrating once, password authentication, keys shared between instances, and
the API-key authenticator's TTL fallback there (PostgreSQL cannot signal commits the way SQLite does)."""

from __future__ import annotations

import threading
from collections.abc import Generator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from tests.support.postgres import PostgresServer, postgres_server
from typer.testing import CliRunner

from bastion.auth.apikey import ApiKeyAuthenticator
from bastion.auth.keys import KeyStore
from bastion.cli.main import app
from bastion.config import Settings
from bastion.errors import ConfigError, Unauthenticated, Unavailable
from bastion.store.db import SCHEMA_HEAD, open_state, schema_revision, state_engine_url

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def postgres() -> Generator[PostgresServer]:
    with postgres_server() as server:
        yield server


def _admin(postgres: PostgresServer, database: str = "postgres") -> sa.Engine:
    return sa.create_engine(postgres.url(database), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="module")
def bastion_role(postgres: PostgresServer) -> str:
    """A role that must give its password (scram-sha-256 on 127.0.0.1, ahead of the fixture's trust rule)."""
    with _admin(postgres).connect() as connection:
        connection.execute(sa.text(f"CREATE ROLE bastion LOGIN PASSWORD '{PASSWORD}'"))
    hba = postgres.data_dir / "pg_hba.conf"
    hba.write_text("host all bastion 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    done = postgres._run("pg_ctl", "-D", str(postgres.data_dir), "reload")
    assert done.returncode == 0, done.stderr
    return "bastion"


def _database_for(postgres: PostgresServer, owner: str) -> str:
    """A fresh database owned by `owner`; returns its URL for that role, without a password."""
    url = sa.make_url(postgres.create_database())
    with _admin(postgres).connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{url.database}" OWNER TO {owner}'))
    return url.set(username=owner).render_as_string(hide_password=False)


def _settings(tmp_path: Path, url: str, password: str | None = PASSWORD) -> Settings:
    return Settings(
        data_dir=tmp_path, state_url=url, state_password=SecretStr(password) if password is not None else None
    )


def test_open_state_migrates_postgresql_with_the_injected_password(
    postgres: PostgresServer, bastion_role: str, tmp_path: Path
) -> None:
    url = _database_for(postgres, bastion_role)
    engine = open_state(_settings(tmp_path, url))
    try:
        assert engine.dialect.name == "postgresql"
        with engine.connect() as connection:
            assert schema_revision(connection) == SCHEMA_HEAD
            assert sa.inspect(connection).has_table("api_keys")
        assert PASSWORD not in repr(engine.url)
    finally:
        engine.dispose()
    assert not (tmp_path / "state.db").exists()  # nothing on local disk


def test_a_wrong_or_missing_password_is_refused_without_echoing_it(
    postgres: PostgresServer, bastion_role: str, tmp_path: Path
) -> None:
    url = _database_for(postgres, bastion_role)
    with pytest.raises(Unavailable, match='password authentication failed for user "bastion"') as raised:
        open_state(_settings(tmp_path, url, password="wrong-password-123"))
    assert "wrong-password-123" not in raised.value.message
    with pytest.raises(Unavailable, match="cannot open the state store"):
        open_state(_settings(tmp_path, url, password=None))


def test_a_password_in_the_url_wins_and_a_bad_url_is_a_config_error(tmp_path: Path) -> None:
    url = state_engine_url(_settings(tmp_path, "postgresql+psycopg://u:inline@db:5432/x", password="injected"))
    assert url is not None
    assert url.password == "inline"
    assert state_engine_url(Settings(data_dir=tmp_path)) is None
    with pytest.raises(ConfigError, match="BASTION_STATE_URL is not a database URL"):
        state_engine_url(_settings(tmp_path, "not a url"))


def test_instances_starting_together_migrate_once(postgres: PostgresServer, bastion_role: str, tmp_path: Path) -> None:
    url = _database_for(postgres, bastion_role)
    errors: list[BaseException] = []
    engines: list[sa.Engine] = []
    start = threading.Barrier(4)

    def instance() -> None:
        start.wait()
        try:
            engines.append(open_state(_settings(tmp_path, url)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=instance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        with engines[0].connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
            assert schema_revision(connection) == SCHEMA_HEAD
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.anyio
async def test_keys_are_shared_and_a_revocation_is_seen_after_the_ttl(
    postgres: PostgresServer, bastion_role: str, tmp_path: Path
) -> None:
    url = _database_for(postgres, bastion_role)
    first, second = open_state(_settings(tmp_path, url)), open_state(_settings(tmp_path, url))
    record, key = KeyStore(first).create("alice", ["eng"])
    cached = ApiKeyAuthenticator(KeyStore(second), cache_seconds=3600)
    uncached = ApiKeyAuthenticator(KeyStore(second), cache_seconds=0)
    try:
        assert (await cached.authenticate(key)).subject == "alice"
        assert (await uncached.authenticate(key)).subject == "alice"
        KeyStore(first).revoke(record.key_id)  # on another instance
        assert (await cached.authenticate(key)).subject == "alice"  # within its TTL: no commit signal on PostgreSQL
        with pytest.raises(Unauthenticated, match=f"API key {record.key_id} was revoked"):
            await uncached.authenticate(key)
    finally:
        cached.close()
        uncached.close()
        first.dispose()
        second.dispose()


def test_the_keys_cli_uses_the_shared_store(
    postgres: PostgresServer, bastion_role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _database_for(postgres, bastion_role)
    monkeypatch.setenv("BASTION_STATE_URL", url)
    monkeypatch.setenv("BASTION_STATE_PASSWORD", PASSWORD)
    runner = CliRunner()
    created = runner.invoke(app, ["--data-dir", str(tmp_path / "one"), "keys", "create", "--subject", "bob"])
    assert created.exit_code == 0, created.stderr
    listed = runner.invoke(app, ["--data-dir", str(tmp_path / "two"), "keys", "list"])  # another machine's disk
    assert listed.exit_code == 0, listed.stderr
    assert "bob" in listed.stdout
    assert PASSWORD not in created.stdout + created.stderr + listed.stdout + listed.stderr
