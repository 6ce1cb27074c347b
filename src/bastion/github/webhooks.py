"""`POST /webhooks/github`: GitHub tells us about a push, we fetch that repository now instead of at the next
scheduled sync.

Not behind the MCP authentication (GitHub has no bearer token): the body's HMAC-SHA256 with the shared webhook
secret (`X-Hub-Signature-256`) is the authentication, compared in constant time. Checks, in order, each with a
status and a message GitHub shows under "Recent Deliveries": body size (413), signature (401), event (`ping` is
answered, anything but `push` is acknowledged and ignored), delivery id already seen (a replay: 200, nothing done),
repository registered here (else 202 ignored). A push then queues a debounced sync (202).

The signature covers the body only, not the delivery id header: replay protection by delivery id stops a plain
resend of a captured delivery; a modified id still costs the sender no more than one debounced fetch of a
repository we mirror anyway. When a signature does not match, the secret is read again once (it may have been
rotated) at most every 30 s, so bad requests cannot drive reads of the secrets store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from bastion.errors import BastionError
from bastion.repos.registry import Registry
from bastion.secrets import SecretsCache

__all__ = ["MAX_WEBHOOK_BODY", "WebhookReceiver", "signature_of"]

log = logging.getLogger(__name__)

MAX_WEBHOOK_BODY = 1_048_576  # push payloads list at most 20 commits; GitHub's own ceiling is 25 MB
_DELIVERIES_KEPT = 10_000
_DELIVERY_MEMORY_SECONDS = 24 * 3600
_SECRET_REREAD_SECONDS = 30.0


def signature_of(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _reply(code: int, **fields: Any) -> JSONResponse:
    return JSONResponse(fields, status_code=code)


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return _reply(status, error=kind, error_description=message)


class WebhookReceiver:
    """`endpoint` is the Starlette endpoint. `on_push(name)` gets the registered name of a pushed repository."""

    def __init__(
        self,
        *,
        secrets: SecretsCache,
        secret_name: str,
        registry: Registry,
        on_push: Callable[[str], None],
        max_body: int = MAX_WEBHOOK_BODY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secrets = secrets
        self._secret_name = secret_name
        self._registry = registry
        self._on_push = on_push
        self._max_body = max_body
        self._clock = clock
        self._deliveries: OrderedDict[str, float] = OrderedDict()
        self._reread_at = 0.0

    async def endpoint(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        if body is None:
            return _error(413, "too_large", f"webhook body over {self._max_body} bytes")
        signature = request.headers.get("x-hub-signature-256", "")
        if not signature.startswith("sha256="):
            return _error(401, "unauthenticated", "missing X-Hub-Signature-256 (set a secret on the webhook)")
        try:
            verified = await self._verify(signature, body)
        except BastionError as exc:
            log.warning("webhook: cannot read the webhook secret %s: %s", self._secret_name, exc.message)
            return _error(503, "unavailable", "the webhook secret cannot be read right now; GitHub will show a retry")
        if not verified:
            log.warning("webhook: signature mismatch (delivery %s)", request.headers.get("x-github-delivery", "-"))
            return _error(401, "unauthenticated", "X-Hub-Signature-256 does not match the body and the shared secret")
        return self._handle(request, body)

    def _handle(self, request: Request, body: bytes) -> JSONResponse:
        event = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery", "")
        if event == "ping":
            return _reply(200, status="pong")
        if event != "push":
            return _reply(202, status="ignored", reason=f"event {event or '(none)'!r} is not handled, only push")
        if delivery and not self._first_time(delivery):
            log.info("webhook: delivery %s seen before, ignored", delivery)
            return _reply(200, status="duplicate", delivery=delivery)
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return _error(
                400, "invalid_input", "the body is not JSON: set the webhook's content type to application/json"
            )
        repository = payload.get("repository") if isinstance(payload, dict) else None
        full_name = repository.get("full_name") if isinstance(repository, dict) else None
        if not isinstance(full_name, str) or not full_name:
            return _error(400, "invalid_input", "push payload without repository.full_name")
        record = self._registry.find(full_name)
        if record is None:
            log.info("webhook: push to %s ignored: not mirrored here (delivery %s)", full_name[:200], delivery or "-")
            return _reply(202, status="ignored", reason="repository is not mirrored here")
        log.info("webhook: push to %s (delivery %s): syncing", record.name, delivery or "-")
        self._on_push(record.name)
        return _reply(202, status="queued", repository=record.name)

    async def _body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self._max_body:
                    return None
                chunks.append(chunk)
        except ClientDisconnect:
            return b""
        return b"".join(chunks)

    async def _verify(self, signature: str, body: bytes) -> bool:
        secret = await self._secrets.get(self._secret_name)
        if hmac.compare_digest(signature_of(secret.value.get_secret_value().encode(), body), signature):
            return True
        now = self._clock()
        if now < self._reread_at:
            return False
        self._reread_at = now + _SECRET_REREAD_SECONDS  # the secret may have been rotated: read it once more
        self._secrets.invalidate(self._secret_name)
        secret = await self._secrets.get(self._secret_name)
        return hmac.compare_digest(signature_of(secret.value.get_secret_value().encode(), body), signature)

    def _first_time(self, delivery: str) -> bool:
        now = self._clock()
        while self._deliveries and (
            len(self._deliveries) >= _DELIVERIES_KEPT
            or next(iter(self._deliveries.values())) < now - _DELIVERY_MEMORY_SECONDS
        ):
            self._deliveries.popitem(last=False)
        key = delivery[:100]
        if key in self._deliveries:
            return False
        self._deliveries[key] = now
        return True
