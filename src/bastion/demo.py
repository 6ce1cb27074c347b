"""`bastion serve --demo`: everything needed to try the server on a laptop, created once and reused.

Under the data directory (default ./.bastion-demo): three git repositories made locally (origin/), their
mirrors made by a real clone, a demo policy, and one API key written to `api-key` (mode 0600).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bastion.auth.keys import KeyStore, keys_match, parse_key_id
from bastion.cli.common import console
from bastion.clients import render_client_config
from bastion.config import Settings
from bastion.demo_repos import DEMO_REPOS, build_demo_repositories
from bastion.repos.registry import Registry
from bastion.repos.sync import add_repository
from bastion.store.db import ensure_private_file, open_state

__all__ = ["DEMO_DATA_DIR", "DEMO_POLICY", "DEMO_SUBJECT", "prepare_demo"]

DEMO_DATA_DIR = Path(".bastion-demo")
DEMO_SUBJECT = "demo-user"
DEMO_POLICY = """\
# Demo policy for mcp-bastion (reference: docs/policy.md). Edit it while the server runs: it reloads.
version: 1
defaults:
  max_file_size: 1MiB          # data/large-export.csv in acme/handbook is over this
rules:
  - name: handbook-open
    description: The handbook is open to every authenticated caller, on every branch and tag
    repositories: ["acme/handbook"]
    subjects: {users: ["*"]}
    operations: ["*"]

  - name: payments-main-read-only
    description: Payments code may be read on main only (no diffs, no other branches)
    repositories: ["acme/payments"]
    subjects: {users: ["*"]}
    operations: [read]
    refs: [main]

  - name: vault-locked
    effect: deny
    description: "Production credentials are never readable through an assistant; ask #security"
    repositories: ["acme/vault"]
    subjects: {users: ["*"]}
"""


def _demo_settings(settings: Settings) -> Settings:
    if "data_dir" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"data_dir": DEMO_DATA_DIR.resolve()})


async def _mirror_all(settings: Settings, origins: dict[str, Path]) -> None:
    registry = Registry(settings.data_dir)
    for name, path in origins.items():
        if registry.find(name) is None:
            console.print(f"  mirroring {name} (git clone of {path})", highlight=False, soft_wrap=True)
            await add_repository(settings, path.resolve().as_uri(), name=name)


def _usable_key(store: KeyStore, key_file: Path) -> str | None:
    """The key saved by an earlier run, if it still authenticates. A revoked or expired key (they live 90 days),
    or one from a state store that was since deleted, would have the demo print a key every request refuses."""
    if not key_file.exists():
        return None
    key = key_file.read_text().strip()
    key_id = parse_key_id(key)
    record = store.get(key_id) if key_id else None
    if record is None or not keys_match(key, record.key_hash) or record.status() != "active":
        return None
    return key


def _api_key(settings: Settings) -> tuple[str, bool]:
    key_file = settings.data_dir / "api-key"
    engine = open_state(settings)
    try:
        store = KeyStore(engine)
        key = _usable_key(store, key_file)
        if key is not None:
            return key, False
        _, key = store.create(
            DEMO_SUBJECT,
            groups=("eng",),
            expires_at=datetime.now(UTC) + timedelta(days=90),
            description="created by bastion serve --demo",
        )
    finally:
        engine.dispose()
    ensure_private_file(key_file)  # 0600 before the key is in it, not after
    key_file.write_text(key + "\n")
    return key, True


def bastion_command() -> str:
    """How to run this bastion from here: `bastion` when the shell finds this one, else its path (`make run`
    starts `.venv/bin/bastion`, which is not on PATH until the virtualenv is activated)."""
    ours = Path(sys.executable).parent / "bastion"
    found = shutil.which("bastion")
    if not ours.exists() or (found is not None and os.path.samefile(found, ours)):
        return "bastion"
    try:
        return str(ours.relative_to(Path.cwd()))
    except ValueError:
        return str(ours)


def prepare_demo(settings: Settings) -> Settings:
    """Create whatever part of the demo is missing; print the URL, the key and client configuration."""
    settings = _demo_settings(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    console.print(f"[bold]mcp-bastion demo[/] in {settings.data_dir}", highlight=False, soft_wrap=True)
    origins = build_demo_repositories(settings.data_dir / "origin")
    asyncio.run(_mirror_all(settings, {name: origins[name] for name in DEMO_REPOS}))
    if not settings.policy_file.exists():
        settings.policy_file.write_text(DEMO_POLICY)
    key, created = _api_key(settings)
    key_file = settings.data_dir / "api-key"
    url = settings.resource_url
    fresh = "new, " if created else ""
    bastion = bastion_command()
    console.print(
        f"\n  MCP endpoint  {url}"
        f"\n  API key       {key}   ({fresh}saved in {key_file}, mode 0600)"
        f"\n  policy        {settings.policy_file}"
        f"\n  audit         {bastion} --data-dir {settings.data_dir} audit tail -f\n",
        highlight=False,
        soft_wrap=True,
    )
    for client in ("claude-code", "vscode"):
        console.print(
            render_client_config(client, url, key=key, key_file=key_file, embed_key=False),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        console.print()
    where = f"--url {shlex.quote(url)} --key-file {shlex.quote(str(key_file))}"
    more = (
        f"    {shlex.quote(bastion)} client-config --client {client} {where}" for client in ("claude-desktop", "cursor")
    )
    console.print("  More clients:\n" + "\n".join(more) + "\n", highlight=False, markup=False, soft_wrap=True)
    return settings
