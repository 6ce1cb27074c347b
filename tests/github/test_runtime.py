"""The whole server with the GitHub parts on (create_app over real HTTP): repositories of BASTION_REPOS__BOOTSTRAP
mirrored in the background with the App's installation token (/health answers at once, /ready waits), a signed
push webhook syncing the mirror, the token's seconds-to-expiry exported, and the webhook outside MCP auth."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx2
from tests.github.conftest import app_settings, git_server
from tests.support.github_stub import GitHubAppStub
from tests.support.gitrepo import WorkRepo, make_bare_remote
from tests.support.server import serve_app

from bastion.app import create_app
from bastion.config import Settings
from bastion.github.webhooks import signature_of
from bastion.repos.registry import Registry

WEBHOOK_SECRET = "hook-secret-0123456789"
POLICY = (
    "version: 1\nrules:\n  - name: eng\n    repositories: [acme/*]\n    subjects: {groups: [eng]}\n"
    "    operations: [read]\n"
)


def _wait_for(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll `condition()` until it is true (a wait for an event, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_bootstrap_webhook_and_token_metric_through_the_app(
    tmp_path: Path, stub: GitHubAppStub, secrets_dir: Path
) -> None:
    (secrets_dir / "webhook").write_text(WEBHOOK_SECRET)
    root = tmp_path / "remotes"
    author = WorkRepo(tmp_path / "author", make_bare_remote(root, "acme/widgets"))
    author.write("README.md", "one\n")
    author.commit("first", when="2026-01-01T00:00:00+00:00")
    author.push("main")
    token = f"ghs_{uuid.uuid4().hex}"
    stub.queued_tokens[:] = [token]

    with git_server(root, ("x-access-token", token)) as remote:
        remote.gate.clear()  # the remote does not answer yet: the bootstrap mirror cannot finish
        settings = app_settings(
            tmp_path / "data",
            secrets_dir,
            stub.url,
            remote.base_url,
            github={"org_allowlist": ["acme"], "webhook_secret_name": "webhook", "webhook_sync_delay_seconds": 0},
            repos={"bootstrap": [{"url": f"{remote.base_url}/acme/widgets.git", "name": "acme/widgets"}]},
        )
        settings.data_dir.mkdir(parents=True)
        settings.policy_file.write_text(POLICY)
        with serve_app(create_app(settings)) as url:
            assert httpx2.get(f"{url}/health").status_code == 200
            waiting = httpx2.get(f"{url}/ready", timeout=10)
            assert waiting.status_code == 503
            assert waiting.json()["checks"]["bootstrap"] == ("mirroring at start: 1 of 1 not ready yet (acme/widgets)")
            remote.gate.set()
            _wait_for(lambda: httpx2.get(f"{url}/ready", timeout=10).status_code == 200, "/ready")
            registry = Registry(settings.data_dir, check_interval=0)
            first_head = registry.get("acme/widgets").head_sha
            assert first_head == author.rev("main")
            assert [item.token for item in stub.minted("acme")] == [token]

            author.write("NEWS.md", "two\n")
            second_head = author.commit("second", when="2026-01-02T00:00:00+00:00")
            author.push("main")
            body = b'{"ref": "refs/heads/main", "repository": {"full_name": "acme/widgets"}}'
            response = httpx2.post(
                f"{url}/webhooks/github",
                content=body,
                headers={
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": signature_of(WEBHOOK_SECRET.encode(), body),
                    "Content-Type": "application/json",
                },
            )
            assert (response.status_code, response.json()) == (202, {"status": "queued", "repository": "acme/widgets"})
            _wait_for(lambda: registry.get("acme/widgets").head_sha == second_head, "the push to be mirrored")

            metrics = httpx2.get(f"{url}/metrics").text
            found = re.search(r'^\w*token_seconds_to_expiry\w*\{organization="acme"\} (\S+)$', metrics, re.MULTILINE)
            assert found is not None, metrics
            assert 3000 < float(found.group(1)) <= 3600
            assert token not in metrics


def test_without_a_webhook_secret_there_is_no_webhook_route(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    settings.policy_file.write_text(POLICY)
    with serve_app(create_app(settings)) as url:
        response = httpx2.post(f"{url}/webhooks/github", content=b"{}")
        assert response.status_code == 401  # falls through to the authenticated MCP mount


def test_the_ip_allowlist_guards_mcp_but_not_the_signed_webhook(tmp_path: Path, secrets_dir: Path) -> None:
    (secrets_dir / "webhook").write_text(WEBHOOK_SECRET)
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "secrets": {"provider": "file", "directory": str(secrets_dir)},
            "github": {"webhook_secret_name": "webhook"},
            "server": {"ip_allowlist": ["10.0.0.0/8"]},  # the test client (127.0.0.1) is outside
        }
    )
    settings.data_dir.mkdir(parents=True)
    settings.policy_file.write_text(POLICY)
    with serve_app(create_app(settings)) as url:
        assert httpx2.post(f"{url}/mcp", content=b"{}").status_code == 403
        body = b'{"zen": "Design for failure."}'
        ping = httpx2.post(
            f"{url}/webhooks/github",
            content=body,
            headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": signature_of(WEBHOOK_SECRET.encode(), body)},
        )
        assert (ping.status_code, ping.json()) == (200, {"status": "pong"})
