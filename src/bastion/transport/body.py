"""Reading a request body ahead of the app, and handing it on unchanged."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Message, Receive, Scope

__all__ = ["NOT_JSON", "decode_json", "jsonrpc_id", "read_body", "replay"]

_DECODED_KEY = "bastion.decoded_body"
NOT_JSON: Any = object()  # what decode_json returns for a body that is not JSON


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body (already bounded by EdgeMiddleware), or None when the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then whatever the client sends next (disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def decode_json(scope: Scope, body: bytes) -> Any:
    """`json.loads(body)`, or NOT_JSON; remembered in the scope, so the next layer that reads the same body (the
    rate limiter, then the direct tools/call path) does not decode it again. Callers must not change it."""
    remembered = scope.get(_DECODED_KEY)
    if remembered is not None and remembered[0] == body:
        return remembered[1]
    try:
        decoded: Any = json.loads(body)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and huge integers too
        decoded = NOT_JSON
    scope[_DECODED_KEY] = (body, decoded)
    return decoded


def jsonrpc_id(message: dict[str, Any]) -> str | int | None:
    """A JSON-RPC request's id when it is one (a string or an integer, not a boolean), else None."""
    identifier = message.get("id")
    return identifier if isinstance(identifier, str | int) and not isinstance(identifier, bool) else None
