"""`bastion serve`: run the HTTP server (and, with --demo, set up the demo first)."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer
import uvicorn

from bastion.cli.common import err_console, fail, settings_from
from bastion.config import Settings
from bastion.errors import BastionError, ConfigError

__all__ = ["register"]


def serve(
    ctx: typer.Context,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Create demo repositories, policy and an API key under ./.bastion-demo first."),
    ] = False,
    host: Annotated[str | None, typer.Option("--host", help="Interface (default BASTION_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default BASTION_PORT or 8000).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes (each a full server).")] = 1,
) -> None:
    """Serve the MCP endpoint at /mcp, with /health and /ready."""
    from bastion.app import create_app
    from bastion.heap import freeze_startup_heap
    from bastion.logs import configure_logging

    settings = settings_from(ctx)
    updates: dict[str, object] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    if updates:
        settings = settings.model_copy(update=updates)
    configure_logging(settings.log)
    try:
        _check_port(settings.host, settings.port)
        if demo:
            from bastion.demo import prepare_demo

            settings = prepare_demo(settings)
        if workers > 1:
            _preflight(settings)
            # Each worker builds its own app from the environment; hand it what the command line said.
            os.environ["BASTION_DATA_DIR"] = str(settings.data_dir)
            os.environ["BASTION_HOST"] = settings.host
            os.environ["BASTION_PORT"] = str(settings.port)
            from bastion.observability.multiprocess import prepare_multiprocess_dir

            prepare_multiprocess_dir(settings.data_dir)  # one /metrics over every worker (docs/observability.md)
            uvicorn.run(
                "bastion.app:create_app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=workers,
                log_level="warning",
                log_config=None,  # uvicorn's own lines go through our handler too (JSON, request id, redaction)
                access_log=False,
                proxy_headers=False,
            )
            return
        app = create_app(settings)
        freeze_startup_heap()
    except BastionError as exc:
        raise fail(exc) from exc
    err_console.print(f"[green]mcp-bastion[/] listening on {settings.resource_url} (Ctrl-C to stop)", highlight=False)
    # proxy_headers=False: uvicorn would otherwise rewrite the client address from X-Forwarded-For for loopback
    # peers (or any peer in FORWARDED_ALLOW_IPS) before the app sees it, bypassing server.trusted_proxies and so the
    # IP allowlist and the audited source address. The app's edge is the one place that reads that header.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


def _check_port(host: str, port: int) -> None:
    """Refuse at once when the port is taken. uvicorn finds out only after the banner has said "listening" and the
    app has started (an audit spool slot claimed for nothing)."""
    if port == 0:
        return  # any free port: nothing to check
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a listener still refuses
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server, or `make run`, using it? "
                "set BASTION_PORT or --port)"
            ) from None


def _preflight(settings: Settings) -> None:
    """Check here, once, what every worker needs. uvicorn restarts a worker that fails to start, forever: without
    this, a missing policy file would print the same traceback in a loop instead of one message and an exit."""
    from bastion.policy.remote import open_policy_source
    from bastion.store.db import open_state

    open_policy_source(settings)  # the policy file, or policy.url's parameter or object: what each worker loads
    open_state(settings).dispose()  # also runs any migration once, before the workers race to it


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
