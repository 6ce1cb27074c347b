"""Logging set-up: plain or JSON lines, each carrying the request id and trace id of the request it was logged in,
and redaction as defence in depth.

The rule is that no code logs a credential or a secret (tests/test_logs.py drives a whole server at DEBUG and
looks for every one it used). Redaction is the second line: every line our handler writes is scrubbed of things
that look like credentials (API keys, JWTs, GitHub and AWS tokens, bearer values, passwords in URLs, PEM private
keys) and of every value registered with `register_secret()` (the settings' secrets: state password, metrics token,
GitHub token). Our formatters redact what they write without changing the record, so another handler on the same
logger (a test's capture, an operator's) sees the record as logged; `RedactingFilter` rewrites records in place,
for a handler of your own that should only ever see scrubbed text.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import BaseModel, SecretStr

from bastion.config import LogSettings
from bastion.observability.context import REQUEST_CONTEXT

__all__ = [
    "JsonFormatter",
    "PlainFormatter",
    "RedactingFilter",
    "configure_logging",
    "redact",
    "register_secret",
    "register_settings_secrets",
]

# Loggers that are chatty at INFO about things the audit trail already records better.
_QUIET = ("alembic", "mcp", "mcp.server", "mcp.server.streamable_http", "uvicorn.access", "httpx", "httpx2")

_REDACTED = "[REDACTED]"
# (pattern, replacement): what a credential looks like, whoever logged it.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
        "[REDACTED PRIVATE KEY]",
    ),
    (re.compile(r"\b(bst_[0-9a-f]{12}_)[A-Za-z0-9_-]{16,}"), r"\1" + _REDACTED),  # API key: the key id stays
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[REDACTED JWT]"),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), "[REDACTED GITHUB TOKEN]"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED AWS KEY ID]"),
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+|=)[A-Za-z0-9._~+/=-]{12,}"), r"\1\2" + _REDACTED),
    (re.compile(r"(?i)\b(password|passwd|secret|client_secret)(\"?\s*[:=]\s*\"?)[^\s\"',;&]{4,}"), r"\1\2" + _REDACTED),
    (re.compile(r"(://[^/\s:@]*:)(?!\*\*\*@)[^/\s@]+@"), r"\1" + _REDACTED + "@"),  # https://user:password@host
)

_secrets_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Scrub this exact value from every log line from now on (values under 8 characters are ignored: they would
    turn ordinary words into [REDACTED])."""
    global _secrets
    if not value or len(value) < 8:
        return
    with _secrets_lock:
        if value not in _secrets:
            # Longest first, so a secret that contains another is replaced whole.
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def register_settings_secrets(model: BaseModel) -> None:
    """Register every SecretStr value in a settings tree (the state password, the metrics token, tokens)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif isinstance(value, BaseModel):
            register_settings_secrets(value)


def redact(text: str) -> str:
    for value in _secrets:
        if value in text:
            text = text.replace(value, _REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites the record's message, exception text and stack in place, so every handler and formatter after it
    only sees the scrubbed text (our own handler does not need it: its formatters redact what they write)."""

    _exception_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the formatter to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _context_fields() -> dict[str, str]:
    context = REQUEST_CONTEXT.get()
    if context is None:
        return {}
    fields: dict[str, str] = {}
    if context.request_id:
        fields["request_id"] = context.request_id
    if context.trace_id:
        fields["trace_id"] = context.trace_id
    if context.span_id:
        fields["span_id"] = context.span_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id / trace_id / span_id when the line was
    logged during a request, exception and stack when there are."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),  # field by field, before JSON escaping
            **_context_fields(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger: message [request <id>]` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        request_id = _context_fields().get("request_id")
        if request_id:
            first, newline, rest = text.partition("\n")
            text = f"{first} [request {request_id}]{newline}{rest}"
        return text


def configure_logging(settings: LogSettings, stream: IO[str] | None = None) -> logging.Handler:
    """Route every logger through one handler on the root (stderr unless `stream` is given); returns it."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if settings.json_format else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[settings.level]))
    return handler
