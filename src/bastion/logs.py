"""Logging set-up: plain or JSON lines, with the request id on every record logged during a request."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from bastion.config import LogSettings

__all__ = ["configure_logging"]

# Loggers that are chatty at INFO about things the audit trail already records better.
_QUIET = ("alembic", "mcp", "mcp.server", "mcp.server.streamable_http", "uvicorn.access", "httpx", "httpx2")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: LogSettings) -> None:
    handler = logging.StreamHandler()
    if settings.json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[settings.level]))
