"""The long-lived cat-file process: protocol, pipelining, ambiguity, restart after it dies, cancellation,
the timeout."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from tests.repos.conftest import REPO, Mirrored
from tests.support.gitrepo import WorkRepo, git

from bastion.errors import Unavailable
from bastion.repos.catfile import AmbiguousObjectName, CatFile
from bastion.repos.mirror import MirrorBackend
from bastion.repos.types import Blob

pytestmark = pytest.mark.anyio


def _git_dir(mirrored: Mirrored) -> Path:
    return mirrored.settings.mirrors_dir / "acme" / "widgets.git"


async def test_info_and_read(mirrored: Mirrored) -> None:
    catfile = CatFile(_git_dir(mirrored), timeout=30)
    try:
        c5 = mirrored.commits["c5"]
        commit = await catfile.info(c5)
        assert commit is not None
        assert (commit.oid, commit.type) == (c5, "commit")
        blob_oid = mirrored.sample.work.object_id(f"{c5}:src/app.py")
        found = await catfile.read(blob_oid)
        assert found is not None
        info, data = found
        assert (info.oid, info.type, info.size) == (blob_oid, "blob", 66)
        assert data == b'def main():\n    print("hello needle")\n    print("goodbye needle")\n'
        truncated = await catfile.read(blob_oid, 10)
        assert truncated is not None
        assert truncated[1] == b"def main()"
        assert await catfile.info("0" * 40) is None
        assert await catfile.read("0" * 40) is None
        # the process is still in step after a miss and a truncated read
        assert (await catfile.info(c5)) == commit
    finally:
        await catfile.aclose()


async def test_pipelined_infos_keep_order(mirrored: Mirrored) -> None:
    catfile = CatFile(_git_dir(mirrored), timeout=30)
    try:
        labels = ["c1", "c2", "c3", "c4", "c5"] * 300  # more than one pipelined batch
        answers = await catfile.infos([mirrored.commits[label] for label in labels])
        assert [answer.oid if answer else None for answer in answers] == [mirrored.commits[x] for x in labels]
        mixed = await catfile.infos([mirrored.commits["c1"], "f" * 40, f"{mirrored.commits['c2']}^{{tree}}"])
        assert [answer.type if answer else None for answer in mixed] == ["commit", None, "tree"]
    finally:
        await catfile.aclose()


async def test_refuses_names_that_break_the_protocol(mirrored: Mirrored) -> None:
    catfile = CatFile(_git_dir(mirrored), timeout=30)
    try:
        for bad in ("HEAD\ninfo x", "a b", ""):
            with pytest.raises(ValueError, match="not an object name"):
                await catfile.info(bad)
    finally:
        await catfile.aclose()


async def test_ambiguous_prefix(tmp_path: Path) -> None:
    """Enough blobs that two share a 4-hex prefix: git answers 'ambiguous', which is raised, and the process
    stays usable."""
    repo = WorkRepo(tmp_path / "many")
    paths = tmp_path / "blobs"
    paths.mkdir()
    for index in range(1500):
        (paths / f"{index}.txt").write_text(f"blob number {index}\n")
    listing = "\n".join(str(paths / f"{index}.txt") for index in range(1500)).encode()
    oids = git(repo.path, "hash-object", "-w", "--stdin-paths", stdin=listing).split()
    prefixes: dict[str, int] = {}
    for oid in oids:
        prefixes[oid[:4]] = prefixes.get(oid[:4], 0) + 1
    shared = next(prefix for prefix, count in prefixes.items() if count > 1)
    catfile = CatFile(repo.path / ".git", timeout=30)
    try:
        with pytest.raises(AmbiguousObjectName):
            await catfile.info(shared)
        with pytest.raises(AmbiguousObjectName):
            await catfile.infos([oids[0], shared, oids[1]])
        assert (await catfile.info(oids[0])) is not None  # still in step
    finally:
        await catfile.aclose()


async def test_restart_after_the_process_is_killed(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    first = await backend.read_blob(REPO, c5, "README.md", 1000)
    handle = backend.handle(REPO)
    old_pid = handle.catfile.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    again = await backend.read_blob(REPO, c5, "src/util/helpers.py", 1000)  # a fresh read: not from a cache
    assert isinstance(first, Blob)
    assert isinstance(again, Blob)
    assert again.data == b"def helper():\n    return 43\n"
    assert handle.catfile.pid not in (None, old_pid)


async def test_closed_reader_refuses(mirrored: Mirrored) -> None:
    catfile = CatFile(_git_dir(mirrored), timeout=30)
    await catfile.info(mirrored.commits["c1"])
    await catfile.aclose()
    assert catfile.pid is None
    with pytest.raises(Unavailable, match="is closed"):
        await catfile.info(mirrored.commits["c1"])


async def test_a_reader_retired_by_a_sync_hands_later_reads_to_its_successor(mirrored: Mirrored) -> None:
    """A read that took the old reader just before a sync swapped it must still be answered (it failed with
    "object reader ... is closed" under load in tests/repos/test_sync.py)."""
    old = CatFile(_git_dir(mirrored), timeout=30)
    await old.info(mirrored.commits["c1"])
    fresh = CatFile(_git_dir(mirrored), timeout=30)
    old.successor = fresh
    await old.aclose()
    try:
        info = await old.info(mirrored.commits["c1"])
        assert info is not None
        assert (info.oid, info.type) == (mirrored.commits["c1"], "commit")
        assert old.pid is None
        assert fresh.pid is not None
    finally:
        await fresh.aclose()


async def test_reads_waiting_to_start_a_reader_that_a_sync_retires_go_to_its_successor(mirrored: Mirrored) -> None:
    """Four reads start the process together; the sync retires the reader while the first one spawns it and the
    others wait for it: every read is still answered, and no process is left behind."""
    old = CatFile(_git_dir(mirrored), timeout=30)
    fresh = CatFile(_git_dir(mirrored), timeout=30)
    reads = [asyncio.create_task(old.info(mirrored.commits["c1"])) for _ in range(4)]
    await asyncio.sleep(0)  # the first read is spawning the process, the others wait for the start lock
    old.successor = fresh
    await old.aclose()
    try:
        answers = await asyncio.gather(*reads)
        assert [(info.oid, info.type) if info else None for info in answers] == [(mirrored.commits["c1"], "commit")] * 4
        assert old.pid is None
    finally:
        await fresh.aclose()


async def test_missing_repository(tmp_path: Path) -> None:
    catfile = CatFile(tmp_path / "nothing.git", timeout=30)
    with pytest.raises(Unavailable, match="is missing"):
        await catfile.info("a" * 40)


def _raw(work: Path, kind: str, oid: str) -> bytes:
    return subprocess.run(["git", "cat-file", kind, oid], cwd=work, capture_output=True, check=True).stdout


def _sample_objects(mirrored: Mirrored) -> dict[str, bytes]:
    """Every blob, tree and commit reachable from c5, with its bytes as git prints them."""
    work = mirrored.sample.work.path
    c5 = mirrored.commits["c5"]
    oids = {c5, git(work, "rev-parse", f"{c5}^{{tree}}")}
    for line in git(work, "ls-tree", "-r", "-t", c5).splitlines():
        _mode, kind, oid = line.split("\t")[0].split()
        if kind != "commit":  # the submodule's commit is not in this repository
            oids.add(oid)
    return {oid: _raw(work, git(work, "cat-file", "-t", oid), oid) for oid in sorted(oids)}


async def test_concurrent_requests_are_pipelined_and_answered_in_order(mirrored: Mirrored) -> None:
    """Many reads and info batches in flight at once on one process, each getting its own answer."""
    expected = _sample_objects(mirrored)
    assert len(expected) > 20
    catfile = CatFile(_git_dir(mirrored), timeout=30)
    try:
        oids = list(expected) * 3
        reads = asyncio.gather(*(catfile.read(oid) for oid in oids), catfile.read("e" * 40))
        infos = asyncio.gather(catfile.infos(list(expected)), catfile.info("f" * 40))
        (*answers, missing_read), (batch, missing_info) = await asyncio.gather(reads, infos)
        for oid, answer in zip(oids, answers, strict=True):
            assert answer is not None
            assert (answer[0].oid, answer[0].size, answer[1]) == (oid, len(expected[oid]), expected[oid])
        assert [info.oid if info else None for info in batch] == list(expected)
        assert (missing_info, missing_read) == (None, None)
        big_oid = mirrored.sample.work.object_id(f"{mirrored.commits['c5']}:data/big.txt")
        big = await catfile.read(big_oid, 100)  # 650,000 bytes drained, the first 100 returned
        assert big is not None
        assert (big[0].size, big[1]) == (650_000, expected[big_oid][:100])
    finally:
        await catfile.aclose()


async def test_a_cancelled_read_keeps_the_process_in_step(mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    big_oid = mirrored.sample.work.object_id(f"{c5}:data/big.txt")
    small_oid = mirrored.sample.work.object_id(f"{c5}:src/util/helpers.py")
    catfile = CatFile(_git_dir(mirrored), timeout=30)
    try:
        await catfile.info(c5)  # the process is running
        pid = catfile.pid
        abandoned = asyncio.ensure_future(catfile.read(big_oid))
        await asyncio.sleep(0)  # the command is written
        abandoned.cancel()
        found = await catfile.read(small_oid)  # answered after the abandoned 650 KB, which is dropped
        assert found is not None
        assert found[1] == b"def helper():\n    return 43\n"
        assert abandoned.cancelled()
        assert catfile.pid == pid  # the same process: the cancellation did not cost a restart
    finally:
        await catfile.aclose()


async def test_requests_in_flight_when_the_process_dies_are_retried(mirrored: Mirrored) -> None:
    expected = _sample_objects(mirrored)
    catfile = CatFile(_git_dir(mirrored), timeout=30)
    try:
        await catfile.info(mirrored.commits["c5"])
        old_pid = catfile.pid
        assert old_pid is not None
        reads = asyncio.gather(*(catfile.read(oid) for oid in expected))
        await asyncio.sleep(0)  # all written
        os.kill(old_pid, signal.SIGKILL)
        answers = await reads
        assert [answer[1] if answer else None for answer in answers] == list(expected.values())
        assert catfile.pid not in (None, old_pid)
    finally:
        await catfile.aclose()


async def test_a_request_that_takes_too_long_is_unavailable(mirrored: Mirrored, tmp_path: Path) -> None:
    """git blocks opening a FIFO where it expects the alternates file: nothing is ever answered."""
    git_dir = tmp_path / "stuck.git"
    shutil.copytree(_git_dir(mirrored), git_dir, symlinks=True)
    (git_dir / "objects" / "info").mkdir(parents=True, exist_ok=True)
    os.mkfifo(git_dir / "objects" / "info" / "alternates")
    catfile = CatFile(git_dir, timeout=0.3)
    try:
        with pytest.raises(Unavailable) as caught:
            await catfile.read(mirrored.commits["c5"])
        assert caught.value.message == "reading objects of stuck.git timed out after 0.3 s"
        assert catfile.pid is None  # killed
        infos = await asyncio.gather(catfile.info("a" * 40), catfile.info("b" * 40), return_exceptions=True)
        assert [answer.message if isinstance(answer, Unavailable) else answer for answer in infos] == [
            "reading objects of stuck.git timed out after 0.3 s"
        ] * 2
    finally:
        await catfile.aclose()
