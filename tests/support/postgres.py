"""A real PostgreSQL server on a free 127.0.0.1 port, in a temporary directory, for tests.

PostgreSQL 15 comes with the machine image (`/usr/lib/postgresql/<version>/bin`). `initdb` and the server refuse
to run as root, so when the tests run as root they run as the `postgres` user (via `runuser`) over directories
owned by it. Trust authentication on 127.0.0.1 only, `fsync=off` (tests need no crash safety from the database
itself), a Unix socket in its own directory. Started once per session and stopped at its end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

__all__ = ["PostgresServer", "find_pg_bin", "postgres_server"]


def find_pg_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian layout), or the one holding `pg_ctl` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no pg_ctl on PATH)")


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin_dir: Path
    user: str = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    def _chown(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        account = pwd.getpwnam("postgres")
        for path in paths:
            os.chown(path, account.pw_uid, account.pw_gid)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.root, self.socket_dir)
        if not self.data_dir.exists():
            done = self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "--no-sync")
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir} -c fsync=off"
        done = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log), "-w", "-o", options, "start")
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}:\n{done.stdout}{done.stderr}\n{log}")

    def stop(self) -> None:
        if self.data_dir.exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def create_database(self, name: str | None = None) -> str:
        """A fresh empty database; returns its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        done = self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        if done.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {done.stderr}")
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Generator[PostgresServer]:
    """Start PostgreSQL for the block. Its directory lives under /tmp (the postgres user must reach it)."""
    root = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
    os.chmod(root, 0o755)  # noqa: S103 - the postgres user must reach its directory below
    server = PostgresServer(root / "pg", free_port(), find_pg_bin())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
