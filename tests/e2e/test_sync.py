"""Mirrors follow their remote: new commits pushed over real smart HTTP reach the running server after a sync
(the library call, then the `bastion repo sync` command in its own process), with no restart. This module has
its own deployment, because it moves branches that the shared one's tests expect to stay put."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

import anyio
import pytest
from tests.e2e.helpers import MODERN, Deployment, denial_text, deploy, mcp_client, rev, structured
from tests.support.gitrepo import WorkRepo, git

from bastion.repos.registry import Registry
from bastion.repos.sync import sync_repository

pytestmark = pytest.mark.anyio

HANDBOOK = {"owner": "acme", "repo": "handbook"}
PUSHER = ("Push Er", "pusher@acme.example")


@pytest.fixture(scope="module")
def own(
    tmp_path_factory: pytest.TempPathFactory, demo_origins: dict[str, Path], git_root: Path, git_url: str
) -> Generator[Deployment]:
    with deploy(tmp_path_factory.mktemp("sync"), demo_origins, git_root, git_url) as running:
        yield running


def _clone(deployment: Deployment, into: Path) -> WorkRepo:
    """A working clone of the handbook over smart HTTP, ready to commit and push back."""
    git(into.parent, "clone", "--quiet", f"{deployment.git_url}/acme/handbook.git", str(into))
    return WorkRepo(into)  # re-initialising an existing repository keeps it; this only adds the helpers


def _bastion(*args: str) -> subprocess.CompletedProcess[str]:
    """The `bastion` console script of this virtualenv, in its own process."""
    script = Path(sys.executable).with_name("bastion")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, check=False)


async def _readme(deployment: Deployment) -> dict[str, object]:
    async with mcp_client(deployment, MODERN) as client:
        return structured(await client.call_tool("get_file_contents", {**HANDBOOK, "path": "README.md"}))


async def test_mirrors_were_cloned_over_smart_http(own: Deployment) -> None:
    record = Registry(own.settings.data_dir).get("acme/handbook")
    assert record.url == f"{own.git_url}/acme/handbook.git"
    assert record.url.startswith("http://127.0.0.1:")
    mirror = own.settings.mirrors_dir / "acme" / "handbook.git"
    assert git(mirror, "config", "remote.origin.url") == record.url
    assert rev(mirror, "main") == own.facts.handbook["main"]


async def test_new_commits_reach_the_running_server_after_a_sync(own: Deployment, tmp_path: Path, era: str) -> None:
    work = _clone(own, tmp_path / "work")
    before = rev(own.remotes["acme/handbook"], "main")
    assert (await _readme(own))["resolved_sha"] == before

    work.write("README.md", f"# ACME handbook\n\nPushed for the {era} client.\n")
    pushed = work.commit(f"README: a line for {era}", author=PUSHER, when="2026-11-01T10:00:00+00:00")
    work.push("main")
    assert rev(own.remotes["acme/handbook"], "main") == pushed  # the push went over HTTP into the served remote

    stale = await _readme(own)  # not fetched yet: the mirror still serves what it had
    assert stale["resolved_sha"] == before

    info = await sync_repository(own.settings, "acme/handbook")
    assert info.head_sha == pushed

    async with mcp_client(own, era) as client:
        fresh = structured(await client.call_tool("get_file_contents", {**HANDBOOK, "path": "README.md"}))
        commits = structured(await client.call_tool("list_commits", {**HANDBOOK, "per_page": 1}))
        found = structured(await client.call_tool("search_code", {"query": f"Pushed for the {era}"}))
    assert (fresh["resolved_sha"], fresh["content"]) == (pushed, f"# ACME handbook\n\nPushed for the {era} client.\n")
    # list_repositories reports the registry's record, which a running server re-reads at most once a second
    assert await _listed_head(own, "acme/handbook", pushed) == pushed
    assert (commits["commits"][0]["sha"], commits["commits"][0]["author_name"]) == (pushed, "Push Er")
    # the search checkout of the default branch moved too
    assert [(h["path"], h["resolved_sha"]) for h in found["hits"]] == [("README.md", pushed)]
    [event] = [e for e in await own.audit(tool="get_file_contents") if e.resolved_sha == pushed and e.client]
    assert event.paths == ["README.md"]


async def test_cli_sync_brings_new_branches_tags_and_deletions(own: Deployment, tmp_path: Path) -> None:
    work = _clone(own, tmp_path / "work")
    work.write("docs/release-notes.md", "# Release notes\n\n- Pushed, then synced by the CLI.\n")
    pushed = work.commit("Release notes", author=PUSHER, when="2026-11-02T10:00:00+00:00")
    work.branch("release/2026.11")
    work.tag("v1.2", message="Handbook 1.2", when="2026-11-02T11:00:00+00:00")
    work.push("main", "release/2026.11")
    git(work.path, "push", "--quiet", "origin", "v1.2", ":refs/heads/feature/search-ranking")

    done = _bastion("--data-dir", str(own.settings.data_dir), "repo", "sync", "acme/handbook")
    assert done.returncode == 0, done.stderr
    assert f"synced acme/handbook (head {pushed[:12]})" in done.stdout

    async with mcp_client(own, MODERN) as client:
        branches = structured(await client.call_tool("list_branches", HANDBOOK))
        tags = structured(await client.call_tool("list_tags", HANDBOOK))
        at_tag = structured(
            await client.call_tool("get_file_contents", {**HANDBOOK, "path": "docs/release-notes.md", "ref": "v1.2"})
        )
        gone = await client.call_tool("list_commits", {**HANDBOOK, "ref": "feature/search-ranking"})
    assert {(r["name"], r["sha"]) for r in branches["refs"]} == {
        ("dev", own.facts.handbook["dev"]),
        ("main", pushed),
        ("release/2026.11", pushed),
    }  # feature/search-ranking was deleted on the remote: --prune removed it from the mirror
    assert ("v1.2", pushed) in {(r["name"], r["sha"]) for r in tags["refs"]}
    assert (at_tag["resolved_sha"], at_tag["content"]) == (
        pushed,
        "# Release notes\n\n- Pushed, then synced by the CLI.\n",
    )
    assert denial_text(gone) == "not found: ref 'feature/search-ranking' not found in acme/handbook"


async def test_failed_sync_keeps_serving_the_last_good_mirror(own: Deployment, tmp_path: Path) -> None:
    served = own.remotes["acme/payments"]
    moved = served.with_name("payments.git.offline")
    before = (await _payments_refund(own))["resolved_sha"]
    served.rename(moved)  # the remote disappears (404 over HTTP)
    try:
        done = _bastion("--data-dir", str(own.settings.data_dir), "repo", "sync", "acme/payments")
    finally:
        moved.rename(served)
    assert done.returncode == 1
    assert "sync of acme/payments failed" in done.stderr
    after = await _payments_refund(own)
    assert after["resolved_sha"] == before == own.facts.payments["main"]
    assert Registry(own.settings.data_dir).get("acme/payments").last_sync_error


async def _listed_head(deployment: Deployment, name: str, expected: str) -> str | None:
    """The head list_repositories reports for `name`, once it shows `expected` (or what it shows after 5 s)."""
    head: str | None = None
    async with mcp_client(deployment, MODERN) as client:
        with anyio.move_on_after(5):
            while head != expected:
                listed = structured(await client.call_tool("list_repositories", {}))
                head = next(r["head_sha"] for r in listed["repositories"] if r["name"] == name)
                if head != expected:
                    await anyio.sleep(0.1)
    return head


async def _payments_refund(deployment: Deployment) -> dict[str, object]:
    async with mcp_client(deployment, MODERN) as client:
        refund = {"owner": "acme", "repo": "payments", "path": "service/refund.go"}
        return structured(await client.call_tool("get_file_contents", refund))
