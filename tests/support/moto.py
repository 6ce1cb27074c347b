"""A real `moto_server` (AWS APIs on 127.0.0.1) that a test can stop and restart without losing its state.

moto keeps everything in memory, so a restarted moto_server would come back empty, unlike CloudWatch. This fixture
turns on moto's request recorder (every API request appended to a file as it arrives) and, on restart, starts a new
moto_server on a fresh internal port, replays the recording into it, and only then routes traffic to it.

Clients talk to a small TCP relay on a fixed port (`endpoint_url`) that forwards to the current moto_server. While
moto is stopped the relay accepts and immediately closes connections, which a client sees as a failed request,
exactly what a dead endpoint does. A request that reached moto just before it was killed is in the recording
(recorded before it is processed): after the restart it is in CloudWatch although its client got no answer,
the ambiguous failure a real endpoint produces.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Generator
from pathlib import Path

from tests.support.server import free_port

__all__ = ["MotoServer", "TcpRelay", "fake_aws_credentials", "moto_server", "moto_with_fake_credentials"]

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class TcpRelay:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target` (None: accept and close)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.target: int | None = None
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="moto-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            target = self.target
            if target is None:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


class MotoServer:
    """moto_server behind a relay; `stop()` kills it, `restart()` brings it back with every earlier request."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.recording = directory / "moto-recording.jsonl"
        self.relay = TcpRelay()
        self.process: subprocess.Popen[bytes] | None = None
        self.internal_port: int | None = None
        self.restarts = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.relay.port}"

    def _spawn(self) -> int:
        port = free_port()
        binary = Path(sys.executable).parent / "moto_server"
        env = {
            **os.environ,
            **AWS_TEST_ENV,
            "MOTO_ENABLE_RECORDING": "1",
            "MOTO_RECORDER_FILEPATH": str(self.recording),
        }
        log = (self.directory / f"moto-{port}.log").open("wb")
        self.process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on port {port}") from None
                time.sleep(0.05)
        return port

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.internal_port = self._spawn()
        self.relay.target = self.internal_port

    def stop(self) -> None:
        """Kill moto (SIGKILL: no goodbye); until `restart()` every request through the relay fails."""
        self.relay.target = None
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        port = self._spawn()
        if self.recording.exists() and self.recording.stat().st_size:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/moto-api/recorder/replay-recording", method="POST", data=b""
            )
            with urllib.request.urlopen(request, timeout=120):  # noqa: S310 - our own 127.0.0.1 server
                pass
        self.internal_port = port
        self.relay.target = port
        self.restarts += 1

    def close(self) -> None:
        self.stop()
        self.relay.close()


@contextlib.contextmanager
def moto_server(directory: Path) -> Generator[MotoServer]:
    server = MotoServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def fake_aws_credentials() -> Generator[None]:
    """AWS_TEST_ENV in the environment while the block runs, then the environment as it was."""
    saved = {name: os.environ.get(name) for name in AWS_TEST_ENV}
    os.environ.update(AWS_TEST_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def moto_with_fake_credentials(directory: Path) -> Generator[MotoServer]:
    """A moto_server, with the fake credentials boto3 needs in the environment while it runs."""
    with fake_aws_credentials(), moto_server(directory) as server:
        yield server
