"""Mirror creation and sync from a real smart-HTTP remote; a running backend picks up new commits; failures
leave the previous mirror usable; worktree swaps; the scheduled sync."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.gitrepo import BOB, WorkRepo, git, make_bare_remote

from bastion.config import Settings
from bastion.errors import InvalidInput, NotFound, Unavailable
from bastion.repos.mirror import MirrorBackend
from bastion.repos.registry import Registry, mirror_path, worktree_root
from bastion.repos.sync import SyncProgress, add_repository, run_scheduled_sync, sync_repository
from bastion.repos.types import Blob, SearchQuery
from bastion.repos.worktree import current_worktree

pytestmark = pytest.mark.anyio
_names = itertools.count()


@dataclass
class Remote:
    name: str
    path: Path
    url: str
    work: WorkRepo
    settings: Settings

    def commit(self, path: str, content: str, message: str, when: str = "2025-01-01T00:00:00+00:00") -> str:
        self.work.write(path, content)
        return self.work.commit(message, author=BOB, when=when)


@pytest.fixture
def remote(tmp_path: Path, git_http_root: Path, git_http_url: str) -> Remote:
    """A fresh remote on the shared smart-HTTP server with one commit on main, and a fresh data dir."""
    name = f"sync/project{next(_names)}"
    path = make_bare_remote(git_http_root, name)
    work = WorkRepo(tmp_path / "work", path)
    remote = Remote(name, path, f"{git_http_url}/{name}.git", work, Settings(data_dir=tmp_path / "data"))
    remote.commit("README.md", "first\n", "first", when="2024-06-01T00:00:00+00:00")
    work.push("main")
    return remote


@pytest.fixture
async def backend(remote: Remote) -> AsyncIterator[MirrorBackend]:
    registry = Registry(remote.settings.data_dir, check_interval=0)
    async with MirrorBackend(remote.settings, registry=registry) as backend:
        yield backend


async def test_add_creates_a_complete_mirror(remote: Remote) -> None:
    events: list[SyncProgress] = []
    info = await add_repository(remote.settings, remote.url, progress=events.append)
    head = remote.work.rev("main")
    assert (info.name, info.url, info.default_branch, info.head_sha) == (remote.name, remote.url, "main", head)
    assert info.last_sync_at is not None
    assert info.last_sync_error is None
    git_dir = mirror_path(remote.settings.data_dir, remote.name)
    fetch_specs = git(git_dir, "config", "--get-all", "remote.origin.fetch").splitlines()
    assert fetch_specs == ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    assert (git_dir / "packed-refs").is_file()
    assert list((git_dir / "refs" / "heads").iterdir()) == []  # everything packed
    assert current_worktree(worktree_root(remote.settings.data_dir, remote.name)) is not None
    steps = [event.step for event in events]
    assert steps[0] == "creating mirror"
    assert "fetching" in steps
    assert "packing refs" in steps
    assert steps[-1] == "done"
    assert {event.repo for event in events} == {remote.name}
    assert [p.name for p in git_dir.parent.iterdir() if ".tmp-" in p.name] == []  # no staging left behind


async def test_the_directories_it_creates_are_private(remote: Remote) -> None:
    """Mirrors hold the company's code: every directory bastion creates on the way is 0700 (`bastion doctor`
    fails an open data directory), whatever the umask."""
    await add_repository(remote.settings, remote.url)
    data = remote.settings.data_dir
    owner = remote.name.split("/")[0]
    made = [data, data / "mirrors", data / "mirrors" / owner, data / "worktrees", data / "worktrees" / owner]
    assert {str(path.relative_to(data.parent)): oct(path.stat().st_mode & 0o777) for path in made} == {
        str(path.relative_to(data.parent)): "0o700" for path in made
    }


async def test_push_then_sync_is_seen_by_a_running_backend(remote: Remote, backend: MirrorBackend) -> None:
    await add_repository(remote.settings, remote.url)
    first = await backend.resolve(remote.name, None)
    await backend.read_blob(remote.name, first.sha, "README.md", 100)
    old_pid = backend.handle(remote.name).catfile.pid
    remote.work.branch("to-delete")
    remote.work.push("to-delete")
    await sync_repository(remote.settings, remote.name)
    assert "to-delete" in (await backend.refs(remote.name)).branches

    second = remote.commit("src/new.py", "print('new needle')\n", "second")
    remote.work.tag("v2", message="two")
    remote.work.branch("topic")
    remote.work.push("main", "topic", "v2")
    git(remote.work.path, "push", "--quiet", "origin", "--delete", "to-delete")
    git(remote.work.path, "push", "--quiet", "origin", f"{second}:refs/pull/1/head")  # never mirrored
    info = await sync_repository(remote.settings, remote.name)

    assert info.head_sha == second
    resolved = await backend.resolve(remote.name, None)  # same backend object: refs reloaded
    assert resolved.sha == second
    blob = await backend.read_blob(remote.name, second, "src/new.py", 100)
    assert isinstance(blob, Blob)
    assert blob.data == b"print('new needle')\n"
    assert backend.handle(remote.name).catfile.pid != old_pid  # a fresh cat-file after the sync
    snapshot = await backend.refs(remote.name)
    assert snapshot.branches == {"main": second, "topic": second}
    assert snapshot.tags == {"v2": second}
    with pytest.raises(NotFound, match="ref 'to-delete' not found"):
        await backend.resolve(remote.name, "to-delete")  # pruned
    git_dir = mirror_path(remote.settings.data_dir, remote.name)
    all_refs = git(git_dir, "for-each-ref", "--format=%(refname)").splitlines()
    assert sorted(all_refs) == ["refs/heads/main", "refs/heads/topic", "refs/tags/v2"]
    found = await backend.search(
        remote.name, second, SearchQuery("new needle"), timeout=30, allow_path=lambda path: True
    )
    assert (found.engine, [(hit.path, hit.line_number) for hit in found.hits]) == ("ripgrep", [("src/new.py", 1)])
    [repo] = await backend.list_repositories()
    assert repo.head_sha == second


async def test_worktree_swap(remote: Remote) -> None:
    await add_repository(remote.settings, remote.url)
    root = worktree_root(remote.settings.data_dir, remote.name)
    first = remote.work.rev("main")
    assert current_worktree(root) == (first, root / first)

    second = remote.commit("b.txt", "b\n", "second")
    remote.work.push("main")
    await sync_repository(remote.settings, remote.name)
    assert current_worktree(root) == (second, root / second)
    assert os.readlink(root / "current") == second  # relative: the data dir can move
    assert sorted(p.name for p in root.iterdir()) == sorted(["current", first, second])  # previous kept
    assert (root / second / "b.txt").read_text() == "b\n"

    third = remote.commit("c.txt", "c\n", "third")
    remote.work.push("main")
    await sync_repository(remote.settings, remote.name)
    assert sorted(p.name for p in root.iterdir()) == sorted(["current", second, third])  # oldest removed

    await sync_repository(remote.settings, remote.name)  # nothing new: same tree, nothing rebuilt
    assert current_worktree(root) == (third, root / third)


async def test_failed_sync_keeps_the_mirror(remote: Remote, backend: MirrorBackend) -> None:
    await add_repository(remote.settings, remote.url)
    head = remote.work.rev("main")
    hidden = remote.path.with_name("hidden.git")
    remote.path.rename(hidden)
    try:
        with pytest.raises(Unavailable) as caught:
            await sync_repository(remote.settings, remote.name)
        assert caught.value.message.startswith(f"sync of {remote.name} failed: git ls-remote failed: ")
        record = Registry(remote.settings.data_dir).get(remote.name)
        assert record.last_sync_error is not None
        assert record.last_sync_error.startswith("git ls-remote failed: ")
        assert record.head_sha == head
        assert (await backend.resolve(remote.name, None)).sha == head  # still serving
    finally:
        hidden.rename(remote.path)
    await sync_repository(remote.settings, remote.name)
    assert Registry(remote.settings.data_dir).get(remote.name).last_sync_error is None


async def test_missing_mirror_is_rebuilt(remote: Remote) -> None:
    import shutil

    await add_repository(remote.settings, remote.url)
    git_dir = mirror_path(remote.settings.data_dir, remote.name)
    shutil.rmtree(git_dir)
    info = await sync_repository(remote.settings, remote.name)
    assert info.head_sha == remote.work.rev("main")
    assert (git_dir / "packed-refs").is_file()


@pytest.mark.parametrize("damage", ["HEAD", "objects"])
async def test_a_damaged_mirror_is_rebuilt(remote: Remote, damage: str) -> None:
    """The operations guide says `repo sync NAME` rebuilds a corrupt mirror; it failed every time with "not a git
    repository" until the directory was deleted by hand (found by a probe). The data directory here is inside no
    other repository, and one that is must not pass for the mirror: discovery stops at the mirror's parent."""
    await add_repository(remote.settings, remote.url)
    git_dir = mirror_path(remote.settings.data_dir, remote.name)
    target = git_dir / damage
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    info = await sync_repository(remote.settings, remote.name)
    assert info.head_sha == remote.work.rev("main")
    assert (git_dir / "HEAD").is_file()
    assert (git_dir / "objects").is_dir()


async def test_add_refusals(remote: Remote) -> None:
    settings = remote.settings
    credentialed = remote.url.replace("http://", "http://user:token@")
    with pytest.raises(InvalidInput, match="credentials come from the configured credential helper"):
        await add_repository(settings, credentialed)
    with pytest.raises(Unavailable) as caught:
        await add_repository(settings, remote.url.replace(".git", "-missing.git"))
    assert caught.value.message.startswith(f"cannot mirror {remote.name}-missing from ")
    assert Registry(settings.data_dir).records() == []
    mirrors = settings.data_dir / "mirrors"
    leftovers = (
        [p.name for p in mirrors.rglob("*") if p.is_dir() and p.name.endswith(".git")] if mirrors.exists() else []
    )
    assert leftovers == []
    await add_repository(settings, remote.url, name="Custom/Name")
    with pytest.raises(InvalidInput, match="'Custom/Name' is already registered"):
        await add_repository(settings, remote.url, name="custom/name")
    with pytest.raises(InvalidInput, match=r"no \.git suffix"):
        await add_repository(settings, remote.url, name="custom/name.git")


async def test_local_path_and_empty_remote(remote: Remote, tmp_path: Path, backend: MirrorBackend) -> None:
    info = await add_repository(remote.settings, str(remote.path))  # a plain local path
    assert info.name == remote.name
    empty = make_bare_remote(tmp_path / "empties", "acme/empty")
    added = await add_repository(remote.settings, str(empty))
    assert (added.name, added.default_branch, added.head_sha) == ("acme/empty", None, None)
    with pytest.raises(NotFound, match="acme/empty has no default branch yet"):
        await backend.resolve("acme/empty", None)
    work = WorkRepo(tmp_path / "fill", empty)
    work.write("x.txt", "x\n")
    sha = work.commit("x", when="2024-01-01T00:00:00+00:00")
    work.push("main")
    synced = await sync_repository(remote.settings, "acme/empty")
    assert (synced.default_branch, synced.head_sha) == ("main", sha)
    assert (await backend.resolve("acme/empty", None)).sha == sha


async def test_default_branch_change_is_followed(remote: Remote, backend: MirrorBackend) -> None:
    await add_repository(remote.settings, remote.url)
    trunk = remote.commit("t.txt", "t\n", "on trunk")
    git(remote.work.path, "push", "--quiet", "origin", "HEAD:refs/heads/trunk")
    git(remote.path, "symbolic-ref", "HEAD", "refs/heads/trunk")
    info = await sync_repository(remote.settings, remote.name)
    assert (info.default_branch, info.head_sha) == ("trunk", trunk)
    resolved = await backend.resolve(remote.name, None)
    assert (resolved.full_name, resolved.sha) == ("refs/heads/trunk", trunk)


async def test_backend_sees_a_repository_added_by_another_process(remote: Remote, backend: MirrorBackend) -> None:
    assert await backend.list_repositories() == []
    bastion = Path(sys.executable).with_name("bastion")
    completed = await asyncio.to_thread(
        subprocess.run,
        [str(bastion), "--data-dir", str(remote.settings.data_dir), "repo", "add", remote.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert [info.name for info in await backend.list_repositories()] == [remote.name]
    assert (await backend.resolve(remote.name, None)).sha == remote.work.rev("main")


async def test_scheduled_sync(remote: Remote) -> None:
    await add_repository(remote.settings, remote.url)
    newer = remote.commit("n.txt", "n\n", "newer")
    remote.work.push("main")
    settings = remote.settings.model_copy(
        update={"repos": remote.settings.repos.model_copy(update={"sync_interval_seconds": 0.05})}
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_scheduled_sync(settings, stop=stop))
    registry = Registry(settings.data_dir, check_interval=0)
    try:
        async with asyncio.timeout(60):
            while registry.get(remote.name).head_sha != newer:  # noqa: ASYNC110 - another task writes the file
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert registry.get(remote.name).last_sync_error is None


async def test_schedule_disabled_returns_at_once(remote: Remote) -> None:
    assert remote.settings.repos.sync_interval_seconds == 0
    await asyncio.wait_for(run_scheduled_sync(remote.settings), 5)


async def test_reads_and_searches_during_a_sync(remote: Remote, backend: MirrorBackend) -> None:
    """While a sync swaps refs, packs, cat-file and worktree, every read and search still answers, from the old
    tree or the new one."""
    await add_repository(remote.settings, remote.url)
    old = remote.work.rev("main")
    for index in range(3):
        remote.commit(f"f{index}.txt", f"needle {index}\n", f"commit {index}")
    new = remote.work.rev("main")
    remote.work.push("main")
    done = asyncio.Event()
    answers: list[str] = []

    async def keep_reading() -> None:
        while not done.is_set():
            head = await backend.resolve(remote.name, None)
            blob = await backend.read_blob(remote.name, head.sha, "README.md", 100)
            assert isinstance(blob, Blob)
            assert blob.data == b"first\n"
            found = await backend.search(
                remote.name, head.sha, SearchQuery("first"), timeout=30, allow_path=lambda path: True
            )
            assert [(hit.path, hit.line) for hit in found.hits] == [("README.md", "first")]
            answers.append(head.sha)
            await asyncio.sleep(0)

    readers = [asyncio.create_task(keep_reading()) for _ in range(4)]
    try:
        await sync_repository(remote.settings, remote.name)
        seen_new = False
        async with asyncio.timeout(30):
            while not seen_new:
                seen_new = new in answers
                await asyncio.sleep(0.01)
    finally:
        done.set()
        await asyncio.gather(*readers)
    assert set(answers) <= {old, new}
    assert new in answers


async def test_a_sync_keeps_what_is_known_about_objects(remote: Remote, backend: MirrorBackend) -> None:
    """Objects never change, so a sync (new refs, new packs, a fresh cat-file) keeps the caches: the file read
    before comes back as the very bytes object that was kept, not read again."""
    await add_repository(remote.settings, remote.url)
    first = await backend.resolve(remote.name, "main")
    before = await backend.read_blob(remote.name, first.sha, "README.md", 100)
    old_pid = backend.handle(remote.name).catfile.pid
    second = remote.commit("b.txt", "b\n", "second")
    remote.work.push("main")
    await sync_repository(remote.settings, remote.name)
    assert (await backend.resolve(remote.name, "main")).sha == second
    after = await backend.read_blob(remote.name, first.sha, "README.md", 100)
    assert isinstance(before, Blob)
    assert isinstance(after, Blob)
    assert after == before
    assert after.data is before.data  # from the cache
    new = await backend.read_blob(remote.name, second, "b.txt", 100)  # new objects: through the fresh cat-file
    assert isinstance(new, Blob)
    assert new.data == b"b\n"
    assert backend.handle(remote.name).catfile.pid not in (None, old_pid)


async def test_a_recreated_mirror_serves_nothing_of_the_old_one(
    remote: Remote, backend: MirrorBackend, tmp_path: Path, git_http_root: Path, git_http_url: str
) -> None:
    """The mirror is deleted and built again from another repository under the same name: what was cached
    about the old one (a commit, its files, a resolved name) must not be served any more."""
    await add_repository(remote.settings, remote.url)
    old = await backend.resolve(remote.name, "main")
    assert (await backend.resolve(remote.name, old.sha)).sha == old.sha
    old_readme = await backend.read_blob(remote.name, old.sha, "README.md", 100)
    assert isinstance(old_readme, Blob)
    assert old_readme.data == b"first\n"

    other_name = f"sync/other{next(_names)}"
    other = WorkRepo(tmp_path / "other-work", make_bare_remote(git_http_root, other_name))
    other.write("README.md", "another repository\n")
    other_head = other.commit("unrelated", author=BOB, when="2024-07-01T00:00:00+00:00")
    other.push("main")
    Registry(remote.settings.data_dir).update(remote.name, url=f"{git_http_url}/{other_name}.git")
    git_dir = mirror_path(remote.settings.data_dir, remote.name)
    await asyncio.to_thread(shutil.rmtree, git_dir)
    await sync_repository(remote.settings, remote.name)

    assert (await backend.resolve(remote.name, "main")).sha == other_head
    with pytest.raises(NotFound, match=f"commit {old.sha} not found"):
        await backend.read_blob(remote.name, old.sha, "README.md", 100)
    with pytest.raises(NotFound, match="no commit has that SHA"):
        await backend.resolve(remote.name, old.sha)
    readme = await backend.read_blob(remote.name, other_head, "README.md", 100)
    assert isinstance(readme, Blob)
    assert readme.data == b"another repository\n"
