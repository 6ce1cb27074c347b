"""`bastion serve --demo`'s preparation: repositories, mirrors, policy and key, created once and then reused."""

from __future__ import annotations

import asyncio
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.auth.apikey import ApiKeyAuthenticator
from bastion.auth.keys import KeyStore, parse_key_id
from bastion.cli.main import app
from bastion.config import Settings
from bastion.demo import DEMO_DATA_DIR, DEMO_POLICY, DEMO_SUBJECT, _demo_settings, bastion_command, prepare_demo
from bastion.demo_repos import DEMO_REPOS
from bastion.errors import AccessDenied
from bastion.policy.loader import PolicyFile
from bastion.policy.types import Operation
from bastion.principal import Principal
from bastion.repos.mirror import MirrorBackend
from bastion.repos.registry import Registry, mirror_path
from bastion.store.db import open_state
from bastion.tools.access import Access
from tests.support.gitrepo import git


@dataclass
class Demo:
    settings: Settings
    output: str


def _prepare(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> Demo:
    settings = prepare_demo(Settings(data_dir=data_dir))
    return Demo(settings, capsys.readouterr().out)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    # Module-scoped, so capsys is not available: the output is checked in the rerun test.
    settings = prepare_demo(Settings(data_dir=tmp_path_factory.mktemp("demo")))
    return Demo(settings, "")


def _authenticate(settings: Settings, key: str) -> Principal:
    engine = open_state(settings)
    authenticator = ApiKeyAuthenticator(KeyStore(engine))
    try:
        return asyncio.run(authenticator.authenticate(key))
    finally:
        authenticator.close()
        engine.dispose()


def test_the_given_data_dir_is_used(demo: Demo) -> None:
    assert demo.settings.data_dir.name.startswith("demo")
    assert (demo.settings.data_dir / "origin").is_dir()


def test_without_a_chosen_data_dir_the_demo_uses_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BASTION_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert _demo_settings(Settings()).data_dir == tmp_path / DEMO_DATA_DIR
    chosen = Settings(data_dir=tmp_path / "mine")
    assert _demo_settings(chosen).data_dir == tmp_path / "mine"


def test_every_demo_repository_is_mirrored_and_registered(demo: Demo) -> None:
    records = Registry(demo.settings.data_dir).records()
    assert [record.name for record in records] == sorted(DEMO_REPOS)
    for record in records:
        origin = demo.settings.data_dir / "origin" / record.name
        assert record.url == origin.resolve().as_uri()
        assert record.default_branch == "main"
        assert record.last_sync_error is None
        assert record.head_sha == git(origin, "rev-parse", "main")
        assert (mirror_path(demo.settings.data_dir, record.name) / "HEAD").is_file()


def test_the_policy_file_is_the_demo_policy(demo: Demo) -> None:
    assert demo.settings.policy_file.read_text() == DEMO_POLICY


def test_the_api_key_file_is_private_and_its_key_authenticates(demo: Demo) -> None:
    key_file = demo.settings.data_dir / "api-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert parse_key_id(key) is not None
    principal = _authenticate(demo.settings, key)
    assert (principal.subject, principal.groups) == (DEMO_SUBJECT, frozenset({"eng"}))


@pytest.mark.anyio
async def test_the_demo_policy_does_what_it_says_over_the_mirrors(demo: Demo) -> None:
    user = Principal(DEMO_SUBJECT, frozenset({"eng"}))
    origin = demo.settings.data_dir / "origin"
    async with MirrorBackend(demo.settings) as backend:
        access = Access(PolicyFile(demo.settings.policy_file), backend)
        # handbook: open on every branch, but its credential-looking file stays hidden
        feature = await access.ref(user, "acme/handbook", "feature/search-ranking", Operation.READ)
        assert feature.sha == git(origin / "acme/handbook", "rev-parse", "feature/search-ranking")
        assert access.path_filter(user, "acme/handbook", feature, Operation.READ)("config/.env") is False
        # payments: main yes, the dev-only experiment no (by name or by SHA), and no diffs at all
        assert (await access.ref(user, "acme/payments", None, Operation.READ)).policy_ref == "refs/heads/main"
        experiment = git(origin / "acme/payments", "rev-parse", "dev")
        with pytest.raises(AccessDenied, match=r"not reachable from any branch or tag you may read in acme/payments"):
            await access.ref(user, "acme/payments", experiment, Operation.READ)
        with pytest.raises(AccessDenied, match=r"no rule allows diff on acme/payments"):
            await access.repository(user, "acme", "payments", Operation.DIFF)
        # vault: an explicit deny with its description
        with pytest.raises(AccessDenied) as vault:
            await access.repository(user, "acme", "vault", Operation.READ)
        assert vault.value.reason == (
            "denied by rule 'vault-locked': Production credentials are never readable through an assistant; "
            "ask #security"  # a '#' in YAML starts a comment unless the value is quoted
        )


def test_a_second_run_reuses_everything_and_keeps_an_edited_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _prepare(tmp_path / "demo", capsys)
    key_file = first.settings.data_dir / "api-key"
    key = key_file.read_text().strip()
    assert f"API key       {key}   (new, saved in {key_file}, mode 0600)" in first.output
    assert first.output.count("  mirroring acme/") == 3
    assert "MCP endpoint  http://127.0.0.1:8000/mcp" in first.output
    assert f"$(cat {key_file})" in first.output  # the Claude Code line refers to the key file
    records = Registry(first.settings.data_dir).records()
    edited = "# tightened by hand\n" + DEMO_POLICY
    first.settings.policy_file.write_text(edited)
    heads = {name: git(tmp_path / "demo" / "origin" / name, "rev-parse", "HEAD") for name in DEMO_REPOS}

    second = _prepare(tmp_path / "demo", capsys)
    assert key_file.read_text().strip() == key
    assert f"API key       {key}   (saved in {key_file}, mode 0600)" in second.output
    assert "mirroring" not in second.output
    assert Registry(second.settings.data_dir).records() == records  # not even re-synced
    assert second.settings.policy_file.read_text() == edited
    assert {name: git(tmp_path / "demo" / "origin" / name, "rev-parse", "HEAD") for name in DEMO_REPOS} == heads


def test_a_revoked_demo_key_is_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _prepare(tmp_path / "demo", capsys)
    key_file = first.settings.data_dir / "api-key"
    old_key = key_file.read_text().strip()
    old_id = parse_key_id(old_key)
    assert old_id is not None
    engine = open_state(first.settings)
    try:
        KeyStore(engine).revoke(old_id)
    finally:
        engine.dispose()

    second = _prepare(tmp_path / "demo", capsys)
    new_key = key_file.read_text().strip()
    assert new_key != old_key
    assert f"API key       {new_key}   (new, saved in {key_file}, mode 0600)" in second.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _authenticate(second.settings, new_key).subject == DEMO_SUBJECT


def test_the_banner_names_the_bastion_the_shell_would_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`make run` starts .venv/bin/bastion, which is not on PATH: the printed commands must work when pasted."""
    ours = Path(sys.executable).parent / "bastion"
    assert ours.exists()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(ours.parent.parent.parent)  # the checkout holding .venv
    assert bastion_command() == str(Path(ours.parent.parent.name) / "bin" / "bastion")
    monkeypatch.chdir(tmp_path)
    assert bastion_command() == str(ours)
    monkeypatch.setenv("PATH", f"{ours.parent}:/usr/bin:/bin")
    assert bastion_command() == "bastion"


def test_the_banners_other_client_commands_run_as_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo = _prepare(tmp_path / "a demo", capsys)  # a space in the path: the commands must quote it
    commands = [line.strip() for line in demo.output.splitlines() if " client-config --client " in line]
    assert [shlex.split(command)[3] for command in commands] == ["claude-desktop", "cursor"]
    for command in commands:
        answer = CliRunner().invoke(app, shlex.split(command)[1:])
        assert answer.exit_code == 0, answer.output
        assert "http://127.0.0.1:8000/mcp" in answer.stdout
