"""Reading a request body ahead of the app, and handing it on unchanged."""

from __future__ import annotations

from starlette.types import Message, Receive

__all__ = ["read_body", "replay"]


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
