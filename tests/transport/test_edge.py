"""The outer edge: client address behind trusted proxies, request ids, body limits."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from bastion.audit.event import AuditEvent
from bastion.principal import RequestInfo
from bastion.transport.edge import REQUEST_INFO_KEY, EdgeMiddleware, client_address, send_json_error

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")

# -- client_address ------------------------------------------------------------------------------------------


def _scope(peer: str | None, *forwarded: str) -> Scope:
    return {
        "type": "http",
        "client": (peer, 50000) if peer else None,
        "headers": [(b"x-forwarded-for", value.encode("latin-1")) for value in forwarded],
    }


def test_without_trusted_proxies_the_socket_peer_is_the_client_whatever_the_header_says() -> None:
    assert client_address(_scope("203.0.113.7"), 0) == "203.0.113.7"
    assert client_address(_scope("203.0.113.7", "198.51.100.1"), 0) == "203.0.113.7"
    assert client_address(_scope(None, "198.51.100.1"), 0) is None


def test_one_trusted_proxy_takes_the_address_it_appended() -> None:
    # client 198.51.100.1 -> proxy 10.0.0.5 -> us: the proxy appended the client's address.
    assert client_address(_scope("10.0.0.5", "198.51.100.1"), 1) == "198.51.100.1"


def test_one_trusted_proxy_ignores_what_the_client_wrote_to_the_left() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4" itself; the proxy appended the real address after it.
    assert client_address(_scope("10.0.0.5", "1.2.3.4, 198.51.100.1"), 1) == "198.51.100.1"
    assert client_address(_scope("10.0.0.5", "1.2.3.4, 5.6.7.8 ,198.51.100.1"), 1) == "198.51.100.1"


def test_two_trusted_proxies_take_the_entry_two_hops_from_the_right() -> None:
    # client -> proxy A (10.0.0.9) -> proxy B (10.0.0.5) -> us. A appended the client, B appended A.
    assert client_address(_scope("10.0.0.5", "198.51.100.1, 10.0.0.9"), 2) == "198.51.100.1"
    assert client_address(_scope("10.0.0.5", "1.2.3.4, 198.51.100.1, 10.0.0.9"), 2) == "198.51.100.1"


def test_several_header_lines_are_read_in_order_as_one_list() -> None:
    scope = _scope("10.0.0.5", "1.2.3.4", "198.51.100.1, 10.0.0.9")
    assert client_address(scope, 2) == "198.51.100.1"
    assert client_address(scope, 1) == "10.0.0.9"


def test_empty_entries_are_skipped() -> None:
    assert client_address(_scope("10.0.0.5", "1.2.3.4, , 198.51.100.1,"), 1) == "198.51.100.1"


def test_a_request_that_did_not_pass_the_proxies_cannot_choose_its_own_address() -> None:
    # Two proxies are configured, but this caller reached the server directly and wrote the header itself:
    # nothing in it was written by a proxy we trust, so only the socket peer is a fact.
    assert client_address(_scope("192.0.2.66", "10.1.1.1"), 2) == "192.0.2.66"
    assert client_address(_scope("192.0.2.66"), 2) == "192.0.2.66"
    assert client_address(_scope("192.0.2.66"), 1) == "192.0.2.66"


def test_a_proxy_on_a_unix_socket_counts_as_the_last_hop() -> None:
    # Behind nginx on a unix socket the ASGI server knows no peer address; nginx is still the trusted hop.
    assert client_address(_scope(None, "198.51.100.1"), 1) == "198.51.100.1"
    assert client_address(_scope(None, "1.2.3.4, 198.51.100.1"), 1) == "198.51.100.1"
    assert client_address(_scope(None), 1) is None


# -- the middleware ------------------------------------------------------------------------------------------


async def _info(request: Request) -> JSONResponse:
    info: RequestInfo = request.scope[REQUEST_INFO_KEY]
    return JSONResponse({"request_id": info.request_id, "source_ip": info.source_ip, "user_agent": info.user_agent})


async def _upload(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"received": len(body)})


async def _fails(_: Request) -> PlainTextResponse:
    return PlainTextResponse("teapot", status_code=418)


INNER = Starlette(
    routes=[
        Route("/info", _info),
        Route("/upload", _upload, methods=["POST"]),
        Route("/fails", _fails),
    ]
)
LIMIT = 64


def _client(trusted_proxies: int = 0, peer: str = "203.0.113.7") -> httpx2.AsyncClient:
    app = EdgeMiddleware(INNER, max_body_bytes=LIMIT, trusted_proxies=trusted_proxies)
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app, client=(peer, 40000)), base_url="http://testserver")


@pytest.mark.anyio
async def test_request_info_reaches_the_app() -> None:
    async with _client(trusted_proxies=1, peer="10.0.0.5") as client:
        response = await client.get(
            "/info", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.1", "User-Agent": "probe/1.0"}
        )
    info = response.json()
    assert info["source_ip"] == "198.51.100.1"
    assert info["user_agent"] == "probe/1.0"
    assert GENERATED_ID.match(info["request_id"])
    assert response.headers["x-request-id"] == info["request_id"]


@pytest.mark.anyio
async def test_a_long_user_agent_is_cut_to_256_characters() -> None:
    async with _client() as client:
        response = await client.get("/info", headers={"User-Agent": "u" * 1000})
    assert response.json()["user_agent"] == "u" * 256


@pytest.mark.anyio
@pytest.mark.parametrize("supplied", ["abc-123", "req_1.2:3", "A" * 64, "0f8fad5b-d9cb-469f-a165-70867728950e"])
async def test_a_safe_client_request_id_is_kept_and_echoed(supplied: str) -> None:
    async with _client() as client:
        response = await client.get("/info", headers={"X-Request-Id": supplied})
    assert response.json()["request_id"] == supplied
    assert response.headers["x-request-id"] == supplied


@pytest.mark.anyio
@pytest.mark.parametrize(
    "supplied", ["A" * 65, "has space", "<script>", "a/b", "x;y", "id\u00e9", "line%0Abreak", '"quoted"']
)
async def test_an_unsafe_or_long_request_id_is_replaced(supplied: str) -> None:
    async with _client() as client:
        response = await client.get("/info", headers=[(b"X-Request-Id", supplied.encode("latin-1"))])
    request_id = response.json()["request_id"]
    assert request_id != supplied
    assert GENERATED_ID.match(request_id)
    assert response.headers["x-request-id"] == request_id


@pytest.mark.anyio
async def test_every_request_gets_its_own_id() -> None:
    async with _client() as client:
        first = (await client.get("/info")).headers["x-request-id"]
        second = (await client.get("/info")).headers["x-request-id"]
    assert first != second


@pytest.mark.anyio
async def test_the_request_id_is_on_error_and_not_found_responses() -> None:
    async with _client() as client:
        teapot = await client.get("/fails", headers={"X-Request-Id": "r-418"})
        missing = await client.get("/nowhere", headers={"X-Request-Id": "r-404"})
    assert (teapot.status_code, teapot.headers["x-request-id"]) == (418, "r-418")
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "r-404")


@pytest.mark.anyio
async def test_a_body_at_the_limit_is_accepted() -> None:
    async with _client() as client:
        response = await client.post("/upload", content=b"x" * LIMIT)
    assert (response.status_code, response.json()) == (200, {"received": LIMIT})


@pytest.mark.anyio
async def test_a_declared_content_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    async with _client() as client:
        response = await client.post("/upload", content=b"x" * (LIMIT + 1), headers={"X-Request-Id": "big-1"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "request_too_large",
        "error_description": f"request body over the {LIMIT}-byte limit",
    }
    assert response.headers["x-request-id"] == "big-1"


async def _chunks(total: int, size: int = 16) -> AsyncIterator[bytes]:
    for start in range(0, total, size):
        yield b"y" * min(size, total - start)


@pytest.mark.anyio
async def test_a_chunked_body_under_the_limit_is_passed_through() -> None:
    async with _client() as client:
        response = await client.post("/upload", content=_chunks(LIMIT))
    assert response.json() == {"received": LIMIT}


@pytest.mark.anyio
async def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read() -> None:
    async with _client() as client:
        response = await client.post("/upload", content=_chunks(LIMIT * 4), headers={"X-Request-Id": "big-2"})
    assert "content-length" not in response.request.headers  # really sent without a declared length
    assert response.status_code == 413
    assert response.json() == {
        "error": "request_too_large",
        "error_description": f"request body over the {LIMIT}-byte limit",
    }
    assert response.headers["x-request-id"] == "big-2"


@pytest.mark.anyio
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_a_refused_body_is_audited_before_the_answer_leaves(chunked: bool) -> None:
    recorded: list[AuditEvent] = []
    app = EdgeMiddleware(INNER, max_body_bytes=LIMIT, trusted_proxies=0, record=recorded.append)
    transport = httpx2.ASGITransport(app, client=("203.0.113.7", 40000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        body = _chunks(LIMIT * 4) if chunked else b"x" * (LIMIT + 1)
        response = await client.post("/upload", content=body, headers={"X-Request-Id": "big-3", "Mcp-Name": "t"})
    assert response.status_code == 413
    [event] = recorded
    assert (event.request_id, event.source_ip, event.subject, event.tool) == ("big-3", "203.0.113.7", None, "t")
    assert (event.outcome, event.reason) == ("invalid_input", f"request body over the {LIMIT}-byte limit")
    assert event.metadata == {"layer": "edge", "method": "POST", "path": "/upload"}


async def _call_raw(app: Any, scope: Scope, body: bytes = b"") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
async def test_a_content_length_that_is_not_a_number_is_refused() -> None:
    reached: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope)

    app = EdgeMiddleware(inner, max_body_bytes=LIMIT, trusted_proxies=0)
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "client": ("127.0.0.1", 1),
        "headers": [(b"content-length", b"-1")],
    }
    sent = await _call_raw(app, scope)
    assert reached == []
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "request_too_large"


@pytest.mark.anyio
async def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    app = EdgeMiddleware(inner, max_body_bytes=LIMIT, trusted_proxies=0)
    scope: Scope = {"type": "lifespan"}
    await _call_raw(app, scope)
    assert seen == [{"type": "lifespan"}]


@pytest.mark.anyio
async def test_send_json_error_writes_a_complete_json_response() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await send_json_error(send, 401, "", "no key", headers={"WWW-Authenticate": 'Bearer realm="x"'})
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 401
    assert headers[b"www-authenticate"] == b'Bearer realm="x"'
    assert int(headers[b"content-length"]) == len(body["body"])
    # An empty error code (no credentials at all, RFC 6750 3.1) still gives the body a kind.
    assert json.loads(body["body"]) == {"error": "unauthenticated", "error_description": "no key"}


@pytest.mark.anyio
async def test_the_413_stands_even_when_the_app_catches_the_overflow_and_answers_itself() -> None:
    async def swallowing(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad request"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = EdgeMiddleware(swallowing, max_body_bytes=LIMIT, trusted_proxies=0)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://testserver") as client:
        response = await client.post("/", content=_chunks(LIMIT * 2))
        small = await client.post("/", content=_chunks(LIMIT))
    assert (response.status_code, response.json()["error"]) == (413, "request_too_large")
    assert (small.status_code, small.text) == (200, "ok")
