"""A real git smart-HTTP server on 127.0.0.1 for tests: `git http-backend` behind a threading http.server.

`python -m http.server --cgi` cannot be used (its CGI runs as nobody and git refuses the repository as
"dubious ownership"), so this handler runs `git http-backend` itself with the CGI variables it needs, including
`GIT_PROTOCOL` from the `Git-Protocol` header (protocol v2) and the CGI `Status:` line. Clone, fetch and push
work. Optional HTTP basic auth (`credentials=("user", "secret")`) for tests of credential helpers.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import threading
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

__all__ = ["GitHTTPServer", "serve_git_http"]


class _GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def git_server(self) -> GitHTTPServer:
        return cast(GitHTTPServer, self.server)

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet tests

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorized(self) -> bool:
        expected = self.git_server.credentials
        if expected is None:
            return True
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == expected

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _serve(self) -> None:
        self.git_server.requests.append(f"{self.command} {self.path}")
        if not self._authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        parts = urlsplit(self.path)
        body = self._body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "GIT_PROJECT_ROOT": str(self.git_server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": "tester",  # http-backend allows receive-pack (push) only for an authenticated user
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, payload = _split_cgi(result.stdout)
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _split_cgi(output: bytes) -> tuple[bytes, bytes]:
    """CGI output -> (header block, body); git ends header lines with CRLF, other CGIs may use LF."""
    candidates = [(index, sep) for sep in (b"\r\n\r\n", b"\n\n") if (index := output.find(sep)) >= 0]
    if not candidates:
        return output, b""
    index, separator = min(candidates)
    return output[:index], output[index + len(separator) :]


class GitHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _GitHandler)
        self.root = root
        self.credentials = credentials
        self.requests: list[str] = []

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


@contextlib.contextmanager
def serve_git_http(root: Path, *, credentials: tuple[str, str] | None = None) -> Generator[str]:
    """Serve the bare repositories under `root`; yields the base URL (`http://127.0.0.1:PORT`), so a
    repository at `root/acme/widgets.git` is `<base>/acme/widgets.git`."""
    server = GitHTTPServer(root, credentials)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="git-http", daemon=True)
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
