"""POST /webhooks/github over real HTTP: HMAC signature checked, ping answered, only pushes to registered
repositories queue a sync, replays and other events ignored, bodies bounded, a rotated secret re-read once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from tests.support.server import serve_app

from bastion.github.webhooks import WebhookReceiver, signature_of
from bastion.repos.registry import Registry, new_record
from bastion.secrets import SecretsCache
from bastion.secrets.file import FileSecretsProvider

SECRET = "It's a Secret to Everybody"


@dataclass
class Hook:
    url: str
    pushed: list[str]
    secrets: SecretsCache
    secret_file: Path

    def post(
        self,
        payload: Any,
        *,
        event: str = "push",
        secret: str = SECRET,
        delivery: str | None = None,
        signature: str | None = None,
        raw: bytes | None = None,
    ) -> httpx2.Response:
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature if signature is not None else signature_of(secret.encode(), body),
            "Content-Type": "application/json",
        }
        return httpx2.post(f"{self.url}/webhooks/github", content=body, headers=headers, timeout=10)


def _push(full_name: str) -> dict[str, Any]:
    return {"ref": "refs/heads/main", "after": "a" * 40, "repository": {"full_name": full_name}}


@pytest.fixture
def hook(tmp_path: Path) -> Generator[Hook]:
    (tmp_path / "secrets").mkdir()
    secret_file = tmp_path / "secrets" / "webhook"
    secret_file.write_text(SECRET)
    registry = Registry(tmp_path / "data", check_interval=0)
    registry.add(new_record("Acme/API", "https://github.com/acme/api.git", "main"))
    secrets = SecretsCache(FileSecretsProvider(tmp_path / "secrets"), ttl=300)
    pushed: list[str] = []
    receiver = WebhookReceiver(
        secrets=secrets, secret_name="webhook", registry=registry, on_push=pushed.append, max_body=64 * 1024
    )
    app = Starlette(routes=[Route("/webhooks/github", receiver.endpoint, methods=["POST"])])
    with serve_app(app) as url:
        yield Hook(url, pushed, secrets, secret_file)


def test_a_signed_push_to_a_registered_repository_queues_its_sync(hook: Hook) -> None:
    response = hook.post(_push("acme/api"))
    assert (response.status_code, response.json()) == (202, {"status": "queued", "repository": "Acme/API"})
    assert hook.pushed == ["Acme/API"]


def test_ping_is_answered_and_other_events_are_ignored(hook: Hook) -> None:
    assert hook.post({"zen": "Keep it logically awesome."}, event="ping").json() == {"status": "pong"}
    ignored = hook.post(_push("acme/api"), event="issues")
    assert ignored.status_code == 202
    assert ignored.json()["reason"] == "event 'issues' is not handled, only push"
    assert hook.pushed == []


def test_bad_or_missing_signatures_are_refused(hook: Hook) -> None:
    wrong = hook.post(_push("acme/api"), secret="guess")
    assert wrong.status_code == 401
    assert wrong.json()["error_description"] == "X-Hub-Signature-256 does not match the body and the shared secret"
    missing = hook.post(_push("acme/api"), signature="")
    assert missing.status_code == 401
    assert "missing X-Hub-Signature-256" in missing.json()["error_description"]
    body = json.dumps(_push("acme/api")).encode()
    tampered = hook.post(
        None, raw=body.replace(b"acme/api", b"acme/apx"), signature=signature_of(SECRET.encode(), body)
    )
    assert tampered.status_code == 401
    assert hook.pushed == []


def test_a_replayed_delivery_does_nothing(hook: Hook) -> None:
    assert hook.post(_push("acme/api"), delivery="d-1").status_code == 202
    again = hook.post(_push("acme/api"), delivery="d-1")
    assert (again.status_code, again.json()) == (200, {"status": "duplicate", "delivery": "d-1"})
    assert hook.pushed == ["Acme/API"]


def test_unknown_repositories_and_bad_payloads(hook: Hook) -> None:
    unknown = hook.post(_push("acme/secret-repo"))
    assert (unknown.status_code, unknown.json()["reason"]) == (202, "repository is not mirrored here")
    assert hook.post({"ref": "refs/heads/main"}).json()["error_description"] == (
        "push payload without repository.full_name"
    )
    not_json = hook.post(None, raw=b"payload=%7B%7D")
    assert not_json.status_code == 400
    assert "content type to application/json" in not_json.json()["error_description"]
    too_large = hook.post(None, raw=b"x" * (64 * 1024 + 1))
    assert too_large.status_code == 413
    assert hook.pushed == []


def test_a_rotated_secret_is_read_again_once(hook: Hook) -> None:
    assert hook.post(_push("acme/api")).status_code == 202  # the old secret is now cached
    hook.secret_file.write_text("rotated secret")
    fetches = hook.secrets.fetches
    assert hook.post(_push("acme/api"), secret="rotated secret").status_code == 202
    assert hook.secrets.fetches == fetches + 1
    assert hook.post(_push("acme/api"), secret="attacker").status_code == 401
    assert hook.secrets.fetches == fetches + 1  # a mismatch right after a re-read does not read again
    assert hook.pushed == ["Acme/API", "Acme/API"]


def test_an_unreadable_secret_is_503(hook: Hook) -> None:
    hook.secret_file.unlink()
    hook.secrets.invalidate("webhook")
    response = hook.post(_push("acme/api"))
    assert response.status_code == 503
    assert "webhook secret cannot be read" in response.json()["error_description"]
