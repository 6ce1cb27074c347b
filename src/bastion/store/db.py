"""The state store: one SQLAlchemy Core engine over `<data_dir>/state.db`, migrated on open.

The schema is owned by the Alembic migrations shipped in `bastion/store/migrations/`; the `Table` objects below
mirror them for queries (a test checks that both agree). Opening an up-to-date database costs one indexed read of
`alembic_version`; Alembic itself is imported only when a migration is actually due.

SQLite is the default; the same code runs against PostgreSQL (`open_engine("postgresql+psycopg://...")`), which
is why the migrations use only portable DDL. `BASTION_STATE_URL` (+ `BASTION_STATE_PASSWORD`) selects it for
`open_state`: many instances then share keys, and migrations take an advisory lock so they run once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Generator
from contextlib import contextmanager
from datetime import UTC
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from bastion.config import Settings
from bastion.errors import ConfigError, Unavailable

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "SCHEMA_HEAD",
    "UtcDateTime",
    "alembic_config",
    "api_keys",
    "ensure_private_dir",
    "ensure_private_file",
    "is_sqlite",
    "metadata",
    "open_engine",
    "open_state",
    "schema_revision",
    "state_engine_url",
    "upgrade",
    "write_transaction",
]

# The newest migration in migrations/versions. Re-opening compares the database's revision with this constant
# instead of loading the migration scripts (tests/store/test_db.py keeps the two in step).
SCHEMA_HEAD = "0001"

SQLITE_BUSY_TIMEOUT_MS = 5_000
_MIGRATION_LOCK_KEY = 0x62617374  # "bast": the PostgreSQL advisory lock held while migrating


class UtcDateTime(sa.TypeDecorator[Any]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset, so store UTC and restore it)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Index("ix_api_keys_subject", "subject"),
)


def ensure_private_dir(path: Path) -> None:
    """Create `path` and any missing parents with mode 0700. Existing directories are left as they are: they may
    be the user's own (`--data-dir .`), and tightening someone's directory behind their back surprises."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another process made it first
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask


def ensure_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600, or tighten an existing file that others could read.

    SQLite gives its -wal and -shm files the database file's mode, so this covers them too. An existing file is
    never opened: closing a descriptor of a database file drops every POSIX lock this process holds on it, SQLite's
    included, if a connection of this process has it open (see SqliteAuditSink._held)."""
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            os.chmod(path, 0o600)
        return
    os.close(fd)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _configure_sqlite(engine: Engine) -> None:
    """WAL (readers never wait for the writer), a busy timeout instead of instant 'database is locked', foreign
    keys on, and real transactions: Python 3.11's sqlite3 neither BEGINs before SELECT nor before DDL, which makes
    migrations non-atomic, so SQLAlchemy emits BEGIN itself (the documented recipe)."""

    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver stops emitting BEGIN; we do it below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL mode
        finally:
            cursor.close()

    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a read-then-write transaction never fails half-way with
        # SQLITE_BUSY_SNAPSHOT; plain reads stay DEFERRED and never wait.
        immediate = connection.get_execution_options().get("bastion_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)


def open_engine(url: str | sa.URL, **engine_kwargs: Any) -> Engine:
    """An engine for `url` with the store's connection settings, migrated to the newest schema."""
    engine = sa.create_engine(url, **engine_kwargs)
    if is_sqlite(engine):
        _configure_sqlite(engine)
    upgrade(engine)
    return engine


def state_engine_url(settings: Settings) -> sa.URL | None:
    """`state_url` with `state_password` filled in (a password in the URL itself wins); None: the SQLite default."""
    if not settings.state_url:
        return None
    try:
        url = sa.make_url(settings.state_url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError(
            f"BASTION_STATE_URL is not a database URL (postgresql+psycopg://user@host:5432/db): {exc}"
        ) from None
    if url.password is None and settings.state_password is not None:
        url = url.set(password=settings.state_password.get_secret_value())
    return url


def open_state(settings: Settings) -> Engine:
    """The state store for these settings: `state_url` (PostgreSQL, shared by every instance) when set, else
    `<data_dir>/state.db` (0600, parents 0700); migrated on open."""
    shared = state_engine_url(settings)
    if shared is not None:
        # pre_ping: a pooled connection the database (or a failover) closed is replaced, not handed out broken.
        return open_engine(shared, pool_pre_ping=True)
    path = settings.state_db
    ensure_private_file(path)
    return open_engine(sa.URL.create("sqlite+pysqlite", database=str(path)))


@contextmanager
def write_transaction(engine: Engine) -> Generator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN (see `_configure_sqlite`)."""
    with engine.connect() as connection:
        connection.execution_options(bastion_write=True)
        with connection.begin():
            yield connection


def schema_revision(connection: Connection) -> str | None:
    """The database's Alembic revision, or None for an empty database."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _migrations_dir() -> str:
    # A real directory for both an installed wheel and an editable checkout (the package is never zipped).
    return str(resources.files("bastion.store") / "migrations")


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config that needs no alembic.ini: for `upgrade()` (with a live connection), for offline SQL
    generation (with a URL), or for a developer writing a migration:
    `alembic.command.revision(alembic_config(url="sqlite:///dev.db"), "message", autogenerate=True)`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _migrations_dir())
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to `SCHEMA_HEAD`. Cheap when it already is: one read, no Alembic import."""
    try:
        with engine.connect() as connection, connection.begin():
            current = schema_revision(connection)
    except sa_exc.OperationalError as exc:
        raise Unavailable(f"cannot open the state store at {engine.url!r}: {exc.orig}") from exc
    if current == SCHEMA_HEAD:
        return

    from alembic import command
    from alembic.util import CommandError

    # One writer at a time: on SQLite, BEGIN IMMEDIATE makes a second process wait here and then find the schema
    # already migrated; Alembic re-reads the revision inside this transaction.
    try:
        with write_transaction(engine) as connection:
            if engine.dialect.name == "postgresql":
                # Instances starting together: the others wait here, then find the schema migrated.
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            command.upgrade(alembic_config(connection), "head")
    except CommandError as exc:
        raise ConfigError(
            f"the state store {engine.url!r} is at schema revision {current!r}, which this version of bastion "
            f"does not know (it knows up to {SCHEMA_HEAD!r}); upgrade bastion or point it at another data dir: {exc}"
        ) from exc
