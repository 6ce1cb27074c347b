"""Run the real ASGI app under uvicorn on 127.0.0.1 in a background thread, for end-to-end tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["free_port", "serve_app"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve_app(app: ASGIApp, port: int | None = None) -> Generator[str]:
    """Serve `app` until the block ends; yields the base URL (`http://127.0.0.1:PORT`)."""
    port = port or free_port()
    # proxy_headers=False as in `bastion serve`: the app's edge alone reads X-Forwarded-For (server.trusted_proxies).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
