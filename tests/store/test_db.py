"""The state store: created private, migrated from empty, cheap to re-open, portable DDL."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from bastion.config import Settings
from bastion.errors import ConfigError
from bastion.store.db import SCHEMA_HEAD, alembic_config, metadata, open_state, schema_revision, write_transaction


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_state_creates_a_private_database_in_private_directories(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "nested" / "data")
    engine = open_state(settings)

    assert settings.state_db.exists()
    assert _mode(settings.state_db) == 0o600
    assert _mode(tmp_path / "nested") == 0o700
    assert _mode(tmp_path / "nested" / "data") == 0o700
    with engine.connect() as connection:
        assert schema_revision(connection) == SCHEMA_HEAD
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        columns = {column["name"] for column in sa.inspect(connection).get_columns("api_keys")}
    assert columns == {
        "key_id",
        "key_hash",
        "subject",
        "groups",
        "description",
        "created_at",
        "expires_at",
        "revoked_at",
    }
    # The WAL file SQLite creates inherits the database's mode.
    wal = settings.state_db.with_name("state.db-wal")
    assert wal.exists()
    assert _mode(wal) == 0o600
    engine.dispose()


def test_an_existing_readable_database_file_is_tightened(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.state_db.touch(mode=0o644)
    os.chmod(settings.state_db, 0o644)
    open_state(settings).dispose()
    assert _mode(settings.state_db) == 0o600


def test_reopening_keeps_data_and_does_not_load_alembic(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    engine = open_state(settings)
    with write_transaction(engine) as connection:
        connection.exec_driver_sql(
            "INSERT INTO api_keys (key_id, key_hash, subject, groups, created_at) "
            "VALUES ('k1', 'h', 'alice', '[]', '2026-01-01 00:00:00.000000')"
        )
    engine.dispose()

    # A fresh interpreter re-opening an up-to-date store must not even import Alembic (the cheap path).
    probe = (
        "import sys; from bastion.config import Settings; from bastion.store.db import open_state; "
        "engine = open_state(Settings(data_dir=sys.argv[1])); "
        "print(engine.connect().exec_driver_sql('SELECT subject FROM api_keys').scalar(), 'alembic' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["alice", "False"]


def test_schema_head_constant_names_the_newest_migration() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [SCHEMA_HEAD]


def test_table_definitions_match_the_migrations(tmp_path: Path) -> None:
    engine = open_state(Settings(data_dir=tmp_path))
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    engine.dispose()


def test_migrations_render_for_postgresql_offline() -> None:
    # No SQLite-only SQL in the migrations: the same scripts render for PostgreSQL without a server.
    config = alembic_config(url="postgresql://bastion@localhost/bastion")
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    sql = buffer.getvalue()
    assert "CREATE TABLE api_keys" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
    assert "JSON NOT NULL" in sql
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in sql


def test_a_database_from_a_newer_bastion_is_refused_with_advice(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    engine = open_state(settings)
    with write_transaction(engine) as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(ConfigError) as raised:
        open_state(settings)
    assert "'9999'" in raised.value.message
    assert "upgrade bastion" in raised.value.message


def test_processes_opening_an_empty_store_at_once_all_succeed(tmp_path: Path) -> None:
    probe = (
        "from bastion.config import Settings; from bastion.store.db import open_state, schema_revision; "
        f"engine = open_state(Settings(data_dir={str(tmp_path)!r})); "
        "print(schema_revision(engine.connect()))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == [SCHEMA_HEAD] * 4
