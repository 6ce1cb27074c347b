"""Structured logs: JSON lines with the request id and trace id, the redacting filter, and the guarantee that no
API key, JWT, token or secret value appears in any log line at any level during a whole run of the server.

The run test captures every record twice: as the code logged it (a handler of its own) and as the configured
handler wrote it. The first proves that no code logs a credential; the second that redaction would catch what
slipped through.

The run covers API keys, JWTs (valid, expired, forged), the metrics token, the configured GitHub token, the state
password, the audit HMAC key and credentials planted in a repository that the content guard redacts (read and
searched). Installation tokens handed to git through the credential helper are checked in
tests/github/test_git_auth.py::test_mirror_sync_uses_the_app_token_through_the_helper_and_leaks_it_nowhere (not
in the log, git's trace, any argument list, the mirror's config or any file of the data directory).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from starlette.types import ASGIApp

from bastion.app import create_app
from bastion.config import LogSettings
from bastion.logs import JsonFormatter, PlainFormatter, RedactingFilter, configure_logging, redact, register_secret
from bastion.observability.context import REQUEST_CONTEXT, RequestContext
from tests.e2e.helpers import envelope, modern_headers, tool_call
from tests.observability.helpers import (
    OWNER,
    PLANTED_AWS_SECRET,
    PLANTED_GITHUB_TOKEN,
    PLANTED_PRIVATE_KEY_LINE,
    REPO,
    prepare,
)
from tests.support.oidc import forge_hmac_with_public_key, forge_unsigned, identity_provider, rsa_key, sign
from tests.support.server import free_port

AUDIENCE = "obs-tests"


@pytest.fixture
def restore_logging() -> Generator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    try:
        yield
    finally:
        root.handlers[:], root.level = saved
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("bastion.test", logging.INFO, __file__, 1, message, args, exc_info)


# -- formatters and the filter --------------------------------------------------------------------------------------


def test_json_lines_carry_the_request_context() -> None:
    token = REQUEST_CONTEXT.set(RequestContext("req-1", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
    try:
        line = JsonFormatter().format(_record("tool %s failed", "search_code"))
    finally:
        REQUEST_CONTEXT.reset(token)
    entry = json.loads(line)
    assert entry["message"] == "tool search_code failed"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "bastion.test"
    assert entry["request_id"] == "req-1"
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["span_id"] == "00f067aa0ba902b7"
    assert entry["time"].endswith("+00:00")
    outside = json.loads(JsonFormatter().format(_record("background work")))
    assert "request_id" not in outside and "trace_id" not in outside  # noqa: PT018


def test_plain_lines_name_the_request() -> None:
    token = REQUEST_CONTEXT.set(RequestContext("req-2"))
    try:
        line = PlainFormatter().format(_record("API key rejected"))
    finally:
        REQUEST_CONTEXT.reset(token)
    assert line.endswith("bastion.test: API key rejected [request req-2]")


JWT = sign(rsa_key("k1"), {"sub": "alice", "exp": 4102444800})


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("key bst_0123456789ab_" + "x" * 43, "x" * 43, "bst_0123456789ab_"),
        (f"token {JWT}", JWT.split(".")[2], "token"),
        (f"refused {JWT}", JWT, "refused"),
        (f"clone with {PLANTED_GITHUB_TOKEN} failed", PLANTED_GITHUB_TOKEN, "failed"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz", ""),
        ("Authorization: Bearer abcdefghijklmnop.qrstu", "abcdefghijklmnop", "Authorization: Bearer"),
        ("id AKIAABCDEFGHIJKLMNOP used", "AKIAABCDEFGHIJKLMNOP", "used"),
        ("postgresql://bastion:s3cr3t-pa55@db:5432/x", "s3cr3t-pa55", "postgresql://bastion:"),
        ('{"client_secret": "abcdefgh12345"}', "abcdefgh12345", "client_secret"),
        (f"-----BEGIN RSA PRIVATE KEY-----\n{PLANTED_PRIVATE_KEY_LINE}\n-----END RSA PRIVATE KEY-----", "MIIE", ""),
    ],
)
def test_redact_patterns(text: str, secret: str, kept: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert kept in cleaned
    assert "REDACTED" in cleaned


def test_registered_secrets_and_ordinary_text() -> None:
    register_secret("a-registered-value-42")
    register_secret("short")  # too short to register: it would redact ordinary words
    assert redact("value=a-registered-value-42!") == "value=[REDACTED]!"
    assert redact("a short sentence about tokens and keys") == "a short sentence about tokens and keys"


def test_the_filter_scrubs_message_arguments_and_tracebacks() -> None:
    try:
        raise RuntimeError(f"upstream said no to {PLANTED_GITHUB_TOKEN}")
    except RuntimeError as exc:
        record = _record("fetch with %s failed", PLANTED_GITHUB_TOKEN, exc=exc)
    assert RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    assert PLANTED_GITHUB_TOKEN not in line
    assert "fetch with [REDACTED GITHUB TOKEN] failed" in json.loads(line)["message"]
    assert "RuntimeError: upstream said no to [REDACTED GITHUB TOKEN]" in json.loads(line)["exception"]


def test_our_formatters_redact_without_touching_the_record() -> None:
    record = _record("clone with %s failed", PLANTED_GITHUB_TOKEN)
    assert PLANTED_GITHUB_TOKEN not in JsonFormatter().format(record)
    assert PLANTED_GITHUB_TOKEN not in PlainFormatter().format(record)
    # Another handler on the same logger (a test's capture, an operator's file) still sees what was logged.
    assert record.getMessage() == f"clone with {PLANTED_GITHUB_TOKEN} failed"


def test_already_masked_passwords_stay_as_they_were() -> None:
    assert redact("rate-limit store redis://:***@127.0.0.1:6379/0 failed") == (
        "rate-limit store redis://:***@127.0.0.1:6379/0 failed"
    )


# -- a whole server ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_logging(app: ASGIApp, port: int) -> Generator[str]:
    """Like tests/support/server.serve_app, but uvicorn's own loggers go through the root handler and log at
    DEBUG, configured as `bastion serve` configures uvicorn (log_config=None, no access log)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="debug",
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start in time"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


class _Raw(logging.Handler):
    """Every record as the code logged it (our formatters redact only what they write)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


def test_request_id_in_json_logs_is_the_responses(tmp_path: Path, restore_logging: None) -> None:
    settings, _ = prepare(tmp_path)
    stream = io.StringIO()
    configure_logging(LogSettings(level="INFO", json_format=True), stream=stream)
    with serve_logging(create_app(settings), free_port()) as url:
        response = httpx2.post(
            f"{url}/mcp",
            content=tool_call("list_repositories", {}, meta=envelope()),
            headers=modern_headers("bst_0123456789ab_" + "C" * 43, name="list_repositories"),
            timeout=30,
        )
    assert response.status_code == 401
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (rejected,) = [line for line in lines if line["message"].startswith("API key rejected")]
    assert rejected["request_id"] == response.headers["x-request-id"]
    assert rejected["logger"] == "bastion.auth.apikey"


def _mcp(url: str, credential: str | None, name: str, arguments: dict[str, Any], path: str = "/mcp") -> httpx2.Response:
    return httpx2.post(
        f"{url}{path}",
        content=tool_call(name, arguments, meta=envelope()),
        headers=modern_headers(credential, name=name),
        timeout=30,
    )


def test_no_credential_or_secret_in_any_log_line_at_debug(
    tmp_path: Path, restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rsa_key("obs-k1")
    hmac_key = "audit-hmac-key-0123456789abcdef"
    monkeypatch.setenv("OBS_AUDIT_HMAC", hmac_key)
    metrics_token = "metrics-token-fedcba9876543210"
    github_token = "ghp_" + "Zk3LmN8pQ2rS6tU0vW4xY7aB1cD5eF9gH2jK"
    state_password = "state-password-Vq9Lx2"
    with identity_provider(key) as idp:
        port = free_port()
        settings, keys = prepare(
            tmp_path,
            port=port,
            auth={"oidc": {"issuer": idp.issuer, "audiences": [AUDIENCE]}},
            metrics={"token": metrics_token},
            github={"token": github_token},
            state_password=state_password,
            audit={"hmac_key_secret": "OBS_AUDIT_HMAC"},
            rate_limit={"default": "100000/minute", "protocol": "100000/minute", "tools": {"search_code": "1/minute"}},
        )
        now = int(time.time())
        valid_jwt = sign(key, idp.claims(AUDIENCE))
        expired_jwt = sign(key, idp.claims(AUDIENCE, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
        wrong_audience_jwt = sign(key, idp.claims("someone-else"))
        unsigned_jwt = forge_unsigned(idp.claims(AUDIENCE))
        confused_jwt = forge_hmac_with_public_key(key, idp.claims(AUDIENCE))
        unknown_key = "bst_0123456789ab_" + "D" * 43

        raw = _Raw()
        stream = io.StringIO()
        configure_logging(LogSettings(level="DEBUG", json_format=True), stream=stream)
        logging.getLogger().handlers.insert(0, raw)
        statuses: dict[str, int] = {}
        with serve_logging(create_app(settings), port) as url:
            read = {"owner": OWNER, "repo": REPO, "path": "src/settings.py"}
            statuses["api key read"] = _mcp(url, keys["alice"], "get_file_contents", read).status_code
            statuses["jwt read"] = _mcp(url, valid_jwt, "get_file_contents", read).status_code
            statuses["search for a secret"] = _mcp(
                url, keys["alice"], "search_code", {"query": PLANTED_GITHUB_TOKEN}
            ).status_code
            statuses["rate limited search"] = _mcp(  # the same caller's second search in a minute
                url, keys["alice"], "search_code", {"query": PLANTED_AWS_SECRET}
            ).status_code
            statuses["denied .env"] = _mcp(url, valid_jwt, "get_file_contents", {**read, "path": ".env"}).status_code
            for label, credential in (
                ("revoked key", keys["mallory"]),
                ("unknown key", unknown_key),
                ("truncated key", keys["alice"][:-5]),
                ("expired jwt", expired_jwt),
                ("wrong audience", wrong_audience_jwt),
                ("alg none", unsigned_jwt),
                ("key confusion", confused_jwt),
            ):
                statuses[label] = _mcp(url, credential, "list_repositories", {}).status_code
            statuses["token in the query string"] = _mcp(
                url, None, "list_repositories", {}, path=f"/mcp?access_token={valid_jwt}"
            ).status_code
            statuses["metrics, right token"] = httpx2.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=10
            ).status_code
            statuses["metrics, API key"] = httpx2.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {keys['alice']}"}, timeout=10
            ).status_code

    logging.getLogger().handlers.remove(raw)
    assert statuses == {
        "api key read": 200,
        "jwt read": 200,
        "search for a secret": 200,
        "rate limited search": 429,
        "denied .env": 200,
        "revoked key": 401,
        "unknown key": 401,
        "truncated key": 401,
        "expired jwt": 401,
        "wrong audience": 401,
        "alg none": 401,
        "key confusion": 401,
        "token in the query string": 401,
        "metrics, right token": 200,
        "metrics, API key": 401,
    }
    written = stream.getvalue()
    # The run really logged: refusals at INFO, the identity provider's keys, uvicorn at DEBUG.
    assert "API key rejected: revoked" in written
    assert "OIDC token refused" in written
    assert "JWKS" in written
    assert len(written.splitlines()) >= 10

    secrets: dict[str, str] = {
        "alice's API key secret": keys["alice"].split("_", 2)[2],
        "mallory's API key secret": keys["mallory"].split("_", 2)[2],
        "unknown API key secret": unknown_key.split("_", 2)[2],
        "metrics token": metrics_token,
        "GitHub token (settings)": github_token,
        "state password": state_password,
        "audit HMAC key": hmac_key,
        "planted GitHub token": PLANTED_GITHUB_TOKEN,
        "planted AWS secret": PLANTED_AWS_SECRET,
        "planted private key": PLANTED_PRIVATE_KEY_LINE,
    }
    for label, token in (
        ("valid JWT", valid_jwt),
        ("expired JWT", expired_jwt),
        ("wrong-audience JWT", wrong_audience_jwt),
        ("forged JWT", confused_jwt),
    ):
        secrets[label] = token
        secrets[f"{label} signature"] = token.split(".")[2]
    secrets["unsigned JWT payload"] = unsigned_jwt.split(".")[1]
    for label, secret in secrets.items():
        leaks = [line for line in raw.lines if secret in line]
        assert not leaks, f"code logged the {label}: {leaks[0][:300]}"
        assert secret not in written, f"the {label} reached the log output"
