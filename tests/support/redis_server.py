"""A real `redis-server` on a free 127.0.0.1 port, in a temporary directory, for tests.

It runs in the foreground as our child (no --daemonize), so the test that started it can stop and restart it by
its own process handle, on the same port, to see what the server does while Redis is down. Nothing is persisted
(`--save '' --appendonly no`). `scripts/test-services.sh` (run by `make test`) installs redis-server when missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Generator
from pathlib import Path

from tests.support.server import free_port

__all__ = ["RedisServer", "redis_server"]


class RedisServer:
    """One redis-server process; `stop()` and `start()` keep the port, so clients reconnect to the same URL."""

    def __init__(self, directory: Path, port: int | None = None, password: str | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/test-services.sh (make test runs it)")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(self.log),
        ]
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            return self.command("PING", timeout=0.5).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *argv: str, timeout: float = 2) -> bytes:
        """Send one command (authenticated first when the server has a password) and return the raw reply; enough
        for FLUSHALL and KEYS in tests."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as connection:
            if self.password:
                connection.sendall(_resp("AUTH", self.password))
                connection.recv(64)
            connection.sendall(_resp(*argv))
            return connection.recv(65536)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def _resp(*argv: str) -> bytes:
    parts = [f"*{len(argv)}\r\n".encode()]
    for arg in argv:
        encoded = arg.encode()
        parts.append(f"${len(encoded)}\r\n".encode() + encoded + b"\r\n")
    return b"".join(parts)


@contextlib.contextmanager
def redis_server(directory: Path, password: str | None = None) -> Generator[RedisServer]:
    """A running redis-server until the block ends."""
    server = RedisServer(directory, password=password)
    for attempt in range(3):  # the free port may be taken between choosing and binding it
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            server = RedisServer(directory, password=password)
    try:
        yield server
    finally:
        server.stop()
