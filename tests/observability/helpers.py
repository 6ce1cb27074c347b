"""A small real deployment for the observability tests: one local git repository mirrored into a fresh data
directory, a policy, API keys, the whole ASGI app under uvicorn on 127.0.0.1, and raw JSON-RPC over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from tests.e2e.helpers import envelope, modern_headers, rpc_message, tool_call
from tests.support.gitrepo import WorkRepo
from tests.support.server import serve_app

from bastion.app import create_app
from bastion.auth.keys import KeyStore
from bastion.config import Settings
from bastion.repos.sync import add_repository
from bastion.store.db import open_state

__all__ = [
    "OWNER",
    "PLANTED_AWS_SECRET",
    "PLANTED_GITHUB_TOKEN",
    "PLANTED_PRIVATE_KEY_LINE",
    "REPO",
    "Deployment",
    "call_tool",
    "deployment",
    "prepare",
    "samples",
    "scrape",
]

OWNER, REPO = "obs", "app"
# Secrets planted in a file the policy lets callers read: tools return them (until the content guard redacts
# them); no log line may ever show them. Fake values of the real shapes.
PLANTED_GITHUB_TOKEN = "ghp_" + "Q7xT2mWv9LbR4kZs8NcY1pHd6FjE3gUa0Ko5"
PLANTED_AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9vLm2Tq8"
PLANTED_PRIVATE_KEY_LINE = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"

POLICY = f"""\
version: 1
rules:
  - name: obs-open
    description: alice may do anything on {OWNER}/{REPO}
    repositories: ["{OWNER}/{REPO}"]
    subjects: {{users: ["alice", "user-1234"]}}
    operations: ["*"]
"""


def _origin(root: Path) -> Path:
    repo = WorkRepo(root / "origin")
    repo.write("README.md", "# obs/app\n\nA repository for the observability tests.\n")
    repo.write(
        "src/settings.py",
        '"""Settings that someone committed with live credentials in them."""\n\n'
        f'GITHUB_TOKEN = "{PLANTED_GITHUB_TOKEN}"\n'
        f'AWS_SECRET_ACCESS_KEY = "{PLANTED_AWS_SECRET}"\n'
        'DEPLOY_KEY = """-----BEGIN RSA PRIVATE KEY-----\n'
        f"{PLANTED_PRIVATE_KEY_LINE}\n"
        '-----END RSA PRIVATE KEY-----"""\n',
    )
    repo.write(".env", "DATABASE_URL=postgres://app:hunter2hunter2@db.internal/app\n")
    repo.commit("Start", when="2026-01-01T00:00:00Z")
    return repo.path


def prepare(base: Path, **overrides: Any) -> tuple[Settings, dict[str, str]]:
    """A data directory with obs/app mirrored, the policy and keys for alice (and a revoked one for mallory);
    `overrides` are Settings fields (nested dicts for sections). Rate limits default to generous."""
    values: dict[str, Any] = {
        "data_dir": base / "data",
        "rate_limit": {"default": "100000/minute", "protocol": "100000/minute", "tools": {}},
        **overrides,
    }
    settings = Settings.model_validate(values)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    origin = _origin(base)
    asyncio.run(add_repository(settings, origin.as_uri(), name=f"{OWNER}/{REPO}"))
    settings.policy_file.write_text(POLICY)
    engine = open_state(settings)
    keys: dict[str, str] = {}
    try:
        store = KeyStore(engine)
        soon = datetime.now(UTC) + timedelta(days=1)
        for subject in ("alice", "mallory"):
            record, keys[subject] = store.create(subject, groups=["eng"], expires_at=soon, description="obs")
            if subject == "mallory":
                store.revoke(record.key_id)
    finally:
        engine.dispose()
    return settings, keys


@dataclass
class Deployment:
    settings: Settings
    app: Starlette | None  # None when another process serves
    url: str
    keys: dict[str, str]

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


@contextlib.contextmanager
def deployment(base: Path, **overrides: Any) -> Generator[Deployment]:
    settings, keys = prepare(base, **overrides)
    app = create_app(settings)
    with serve_app(app) as url:
        yield Deployment(settings, app, url, keys)
    shutil.rmtree(base / "origin", ignore_errors=True)


def call_tool(
    target: Deployment, key: str | None, name: str, arguments: dict[str, Any], **headers: str
) -> httpx2.Response:
    """One 2026-07-28 tools/call over HTTP; `headers` are added as given."""
    return httpx2.post(
        target.mcp_url,
        content=tool_call(name, arguments, meta=envelope()),
        headers={**modern_headers(key, name=name), **headers},
        timeout=30,
    )


def tool_text(response: httpx2.Response) -> str:
    message = rpc_message(response)
    return json.dumps(message)


def scrape(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx2.get(url, headers=headers, timeout=30)
    assert response.status_code == 200, f"/metrics answered {response.status_code}: {response.text[:300]}"
    return response.text


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (series name, labels) -> value."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)
