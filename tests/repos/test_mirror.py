"""Every RepositoryBackend method of MirrorBackend against the sample repository, with exact expected values
(SHAs, sizes and listings come from the fixture repository via git, never typed in by hand)."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.repos.conftest import REPO, Mirrored
from tests.support.gitrepo import ALICE, BOB, CAROL, git

from bastion.errors import InvalidInput, NotFound, Unavailable
from bastion.repos import analysis, gitcmd, history, trees
from bastion.repos.mirror import MirrorBackend
from bastion.repos.registry import Registry, new_record
from bastion.repos.types import Blob, Contributor, TreeEntry

pytestmark = pytest.mark.anyio


def _blob(result: Blob | list[TreeEntry]) -> Blob:
    assert isinstance(result, Blob), result
    return result


def _size(mirrored: Mirrored, spec: str) -> int:
    return int(git(mirrored.sample.work.path, "cat-file", "-s", spec))


def _oid(mirrored: Mirrored, spec: str) -> str:
    return mirrored.sample.work.object_id(spec)


# -- repositories -------------------------------------------------------------------------------------------


async def test_list_and_get_repository(backend: MirrorBackend, mirrored: Mirrored) -> None:
    [info] = await backend.list_repositories()
    assert (info.name, info.url, info.default_branch) == (REPO, mirrored.url, "main")
    assert info.head_sha == mirrored.commits["c5"]
    assert info.last_sync_error is None
    assert info.last_sync_at is not None
    assert (await backend.get_repository("ACME/Widgets")).name == REPO
    with pytest.raises(NotFound) as caught:
        await backend.get_repository("acme/gadgets")
    assert caught.value.message.startswith("repository 'acme/gadgets' is not registered")


async def test_unknown_repository_everywhere(backend: MirrorBackend) -> None:
    with pytest.raises(NotFound, match="'acme/nothing' is not registered"):
        await backend.resolve("acme/nothing", None)
    with pytest.raises(NotFound, match="'acme/nothing' is not registered"):
        await backend.read_blob("acme/nothing", "a" * 40, "x", 10)


async def test_registered_but_not_mirrored(mirrored: Mirrored, tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("unsynced")
    registry = Registry(data_dir, check_interval=0)
    registry.add(new_record("acme/pending", "https://example.com/acme/pending.git", "main"))
    settings = mirrored.settings.model_copy(update={"data_dir": data_dir})
    async with MirrorBackend(settings, registry=registry) as backend:
        with pytest.raises(Unavailable) as caught:
            await backend.resolve("acme/pending", None)
    assert "the mirror of acme/pending is not ready: run `bastion repo sync acme/pending`" in caught.value.message


async def test_methods_refuse_anything_but_full_shas(backend: MirrorBackend) -> None:
    for call in (
        backend.read_blob(REPO, "main", "README.md", 10),
        backend.list_tree(REPO, "HEAD", "", False),
        backend.log(REPO, "--all"),
        backend.commit(REPO, "abc1234", "stats"),
        backend.analyze(REPO, "v1.0"),
    ):
        with pytest.raises(InvalidInput, match="must be a full 40-hex SHA from resolve"):
            await call
    with pytest.raises(InvalidInput, match="tip must be a full 40-hex SHA"):
        await backend.is_ancestor(REPO, "a" * 40, "main")


# -- refs ---------------------------------------------------------------------------------------------------


async def test_refs_snapshot(backend: MirrorBackend, mirrored: Mirrored) -> None:
    snapshot = await backend.refs(REPO)
    commits = mirrored.commits
    assert snapshot.branches == {"main": commits["c5"], "feature": commits["f1"]}
    assert snapshot.tags == {"v0.1": commits["c1"], "v1.0": commits["c2"]}  # the annotated tag is peeled
    assert snapshot.default_branch == "main"
    assert snapshot.tip("refs/heads/feature") == commits["f1"]
    assert snapshot.tip("refs/tags/v1.0") == commits["c2"]


@pytest.mark.parametrize(
    ("ref", "kind", "full_name", "label"),
    [
        (None, "branch", "refs/heads/main", "c5"),
        ("HEAD", "branch", "refs/heads/main", "c5"),
        ("main", "branch", "refs/heads/main", "c5"),
        ("refs/heads/main", "branch", "refs/heads/main", "c5"),
        ("feature", "branch", "refs/heads/feature", "f1"),
        ("v1.0", "tag", "refs/tags/v1.0", "c2"),
        ("refs/tags/v1.0", "tag", "refs/tags/v1.0", "c2"),
        ("v0.1", "tag", "refs/tags/v0.1", "c1"),
    ],
)
async def test_resolve_names(
    backend: MirrorBackend, mirrored: Mirrored, ref: str | None, kind: str, full_name: str, label: str
) -> None:
    resolved = await backend.resolve(REPO, ref)
    assert (resolved.kind, resolved.full_name, resolved.sha) == (kind, full_name, mirrored.commits[label])
    assert resolved.short_name == full_name.split("/", 2)[2]


async def test_resolve_shas(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c3 = mirrored.commits["c3"]
    for given in (c3, c3[:7], c3[:12].upper()):
        resolved = await backend.resolve(REPO, given)
        assert (resolved.kind, resolved.full_name, resolved.sha, resolved.short_name) == ("commit", None, c3, c3)
    tag_object = _oid(mirrored, "v1.0")
    assert tag_object != mirrored.commits["c2"]
    assert (await backend.resolve(REPO, tag_object)).sha == mirrored.commits["c2"]  # peeled to its commit


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope", "ref 'nope' not found in acme/widgets"),
        ("refs/heads/nope", "ref 'refs/heads/nope' not found in acme/widgets"),
        ("refs/remotes/origin/main", "ref 'refs/remotes/origin/main' not found in acme/widgets"),
        ("refs/tags/main", "ref 'refs/tags/main' not found in acme/widgets"),
        ("deadbeefdeadbeef", "ref 'deadbeefdeadbeef' not found in acme/widgets (no commit has that SHA)"),
    ],
)
async def test_resolve_unknown(backend: MirrorBackend, ref: str, message: str) -> None:
    with pytest.raises(NotFound) as caught:
        await backend.resolve(REPO, ref)
    assert caught.value.message == message


async def test_resolve_refuses_a_tree_sha(backend: MirrorBackend, mirrored: Mirrored) -> None:
    tree = _oid(mirrored, f"{mirrored.commits['c5']}^{{tree}}")
    with pytest.raises(NotFound, match="no commit has that SHA"):
        await backend.resolve(REPO, tree)


async def test_ancestry(backend: MirrorBackend, mirrored: Mirrored) -> None:
    commits = mirrored.commits
    assert await backend.is_ancestor(REPO, commits["c1"], commits["c5"])
    assert await backend.is_ancestor(REPO, commits["c2"], commits["f1"])
    assert await backend.is_ancestor(REPO, commits["c5"], commits["c5"])
    assert not await backend.is_ancestor(REPO, commits["f1"], commits["c5"])
    assert not await backend.is_ancestor(REPO, commits["c5"], commits["c1"])
    handle = backend.handle(REPO)
    assert handle.ancestry.get((commits["f1"], commits["c5"])) is False  # cached, and the cache holds False too


# -- files and trees ----------------------------------------------------------------------------------------


async def test_read_small_file(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    blob = _blob(await backend.read_blob(REPO, c5, "src/app.py", 1000))
    assert blob.data == b'def main():\n    print("hello needle")\n    print("goodbye needle")\n'
    assert (blob.path, blob.size, blob.mode, blob.oid) == (
        "src/app.py",
        66,
        "100644",
        _oid(mirrored, f"{c5}:src/app.py"),
    )
    assert not blob.is_symlink
    executable = _blob(await backend.read_blob(REPO, c5, "scripts/run.sh", 1000))
    assert executable.mode == "100755"


async def test_read_at_older_commits(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c1, c5 = mirrored.commits["c1"], mirrored.commits["c5"]
    old = _blob(await backend.read_blob(REPO, c1, "src/app.py", 1000))
    assert old.data == b'def main():\n    print("hello needle")\n'
    assert _blob(await backend.read_blob(REPO, c1, "docs/guide.md", 1000)).data.startswith(b"Guide\n")
    with pytest.raises(NotFound) as caught:
        await backend.read_blob(REPO, c5, "docs/guide.md", 1000)
    assert caught.value.message == f"path 'docs/guide.md' not found at {c5[:12]} in acme/widgets"


async def test_read_through_a_file_is_not_found(backend: MirrorBackend, mirrored: Mirrored) -> None:
    with pytest.raises(NotFound, match=r"'src/app\.py' is not a directory"):
        await backend.read_blob(REPO, mirrored.commits["c5"], "src/app.py/x", 10)


async def test_symlink_mode_reported(backend: MirrorBackend, mirrored: Mirrored) -> None:
    link = _blob(await backend.read_blob(REPO, mirrored.commits["c5"], "link-to-readme", 1000))
    assert (link.mode, link.data, link.size, link.is_symlink) == ("120000", b"README.md", 9, True)


async def test_submodule_reported(backend: MirrorBackend, mirrored: Mirrored) -> None:
    entry = _blob(await backend.read_blob(REPO, mirrored.commits["c5"], "vendor/lib", 1000))
    assert (entry.mode, entry.oid, entry.data, entry.size) == ("160000", mirrored.commits["vendor"], b"", 0)
    [listed] = await backend.list_tree(REPO, mirrored.commits["c5"], "vendor", False)
    assert (listed.path, listed.type, listed.size) == ("vendor/lib", "commit", None)


async def test_directory_read_returns_listing(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    listing = await backend.read_blob(REPO, c5, "src", 1000)
    assert listing == [
        TreeEntry("src/app.py", "blob", "100644", _oid(mirrored, f"{c5}:src/app.py"), 66),
        TreeEntry("src/util", "tree", "040000", _oid(mirrored, f"{c5}:src/util"), None),
    ]
    root = await backend.read_blob(REPO, c5, "", 1000)
    assert isinstance(root, list)
    assert [entry.path for entry in root] == [
        ".env", ".hidden", "README.md", "assets", "data", "docs", "link-to-readme", "scripts", "src", "vendor", "web",
    ]  # fmt: skip


async def test_truncated_reads(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    medium_text = ("m" * 9_999 + "\n").encode()
    medium = _blob(await backend.read_blob(REPO, c5, "data/medium.txt", 100))
    assert (medium.size, medium.data) == (10_000, medium_text[:100])
    big_text = (("0123456789abcdef" * 4 + "\n") * 10_000).encode()
    big = _blob(await backend.read_blob(REPO, c5, "data/big.txt", 1000))  # beyond the slack: one-shot reader
    assert (big.size, big.data) == (650_000, big_text[:1000])
    whole = _blob(await backend.read_blob(REPO, c5, "data/big.txt", 1_000_000))
    assert whole.data == big_text
    nothing = _blob(await backend.read_blob(REPO, c5, "README.md", 0))
    assert (nothing.size, nothing.data) == (52, b"")
    with pytest.raises(InvalidInput, match="max_bytes must be >= 0"):
        await backend.read_blob(REPO, c5, "README.md", -1)


async def test_binary_file(backend: MirrorBackend, mirrored: Mirrored) -> None:
    logo = _blob(await backend.read_blob(REPO, mirrored.commits["c5"], "assets/logo.png", 10_000))
    assert logo.data == bytes(range(256)) * 4


async def test_list_tree_recursive_matches_git(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    listing = await backend.list_tree(REPO, c5, "", True)
    expected_paths = sorted(git(mirrored.sample.work.path, "ls-tree", "-r", "-t", "--name-only", c5).splitlines())
    assert [entry.path for entry in listing] == expected_paths
    for entry in listing:
        if entry.type == "blob":
            assert entry.size == _size(mirrored, entry.oid), entry.path
        else:
            assert entry.size is None
    by_path = {entry.path: entry for entry in listing}
    assert by_path["link-to-readme"].mode == "120000"
    assert by_path["src/util"].type == "tree"
    assert by_path["vendor/lib"].type == "commit"


async def test_list_tree_subdirectory(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    recursive = await backend.list_tree(REPO, c5, "src/", True)
    assert [(entry.path, entry.type) for entry in recursive] == [
        ("src/app.py", "blob"),
        ("src/util", "tree"),
        ("src/util/helpers.py", "blob"),
    ]
    one_level = await backend.list_tree(REPO, c5, "src/util", False)
    assert [(entry.path, entry.size) for entry in one_level] == [("src/util/helpers.py", 28)]
    with pytest.raises(InvalidInput, match=r"'src/app\.py' is a file, not a directory"):
        await backend.list_tree(REPO, c5, "src/app.py", False)
    with pytest.raises(NotFound, match="path 'nope' not found"):
        await backend.list_tree(REPO, c5, "nope", False)


# -- history ------------------------------------------------------------------------------------------------


async def test_log(backend: MirrorBackend, mirrored: Mirrored) -> None:
    commits = mirrored.commits
    c5 = commits["c5"]

    async def shas(**kwargs: object) -> list[str]:
        return [summary.sha for summary in await backend.log(REPO, c5, **kwargs)]  # type: ignore[arg-type]

    assert await shas() == [commits[label] for label in ("c5", "c4", "c3", "c2", "c1")]
    assert await shas(skip=1, limit=2) == [commits["c4"], commits["c3"]]
    assert await shas(path="docs/manual.md") == [commits["c3"]]
    assert await shas(path="src/app.py") == [commits["c5"], commits["c2"], commits["c1"]]
    assert await shas(path="src") == [commits["c5"], commits["c4"], commits["c2"], commits["c1"]]
    assert await shas(author="alice") == [commits["c3"], commits["c1"]]
    assert await shas(author="BOB BUILDER") == [commits["c4"], commits["c2"]]
    assert await shas(author="Al.ce") == []  # a fixed string, never a regex
    assert await shas(author="example.com") == [commits[label] for label in ("c5", "c4", "c3", "c2", "c1")]
    since, until = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 31, tzinfo=UTC)
    assert await shas(since=since, until=until) == [commits["c3"], commits["c2"]]
    assert await shas(since=datetime(2024, 2, 1)) == [
        commits[label] for label in ("c5", "c4", "c3", "c2")
    ]  # naive: UTC
    feature = [summary.sha for summary in await backend.log(REPO, commits["f1"])]
    assert feature == [commits["f1"], commits["c2"], commits["c1"]]


async def test_log_summary_fields(backend: MirrorBackend, mirrored: Mirrored) -> None:
    *_, first = await backend.log(REPO, mirrored.commits["c5"])
    assert first.sha == mirrored.commits["c1"]
    assert first.parents == ()
    assert (first.author_name, first.author_email, first.committer_name) == (ALICE[0], ALICE[1], ALICE[0])
    assert first.authored_at == mirrored.sample.dates["c1"]
    assert first.committed_at == mirrored.sample.dates["c1"]
    assert first.subject == "Initial commit"
    assert first.message == "Initial commit\n\nSets up the widgets project.\n"


async def test_log_refuses_bad_paging(backend: MirrorBackend, mirrored: Mirrored) -> None:
    with pytest.raises(InvalidInput, match="skip must be >= 0 and limit >= 1"):
        await backend.log(REPO, mirrored.commits["c5"], limit=0)
    with pytest.raises(InvalidInput, match="control characters"):
        await backend.log(REPO, mirrored.commits["c5"], author="a\nb")


async def test_commit_stats(backend: MirrorBackend, mirrored: Mirrored) -> None:
    detail = await backend.commit(REPO, mirrored.commits["c2"], "stats")
    assert detail.commit.sha == mirrored.commits["c2"]
    assert detail.commit.parents == (mirrored.commits["c1"],)
    assert (detail.commit.author_name, detail.commit.subject) == (BOB[0], "Add assets, scripts and data")
    assert [(f.path, f.status, f.additions, f.deletions, f.binary) for f in detail.files] == [
        (".env", "added", 1, 0, False),
        ("assets/logo.png", "added", 0, 0, True),
        ("data/big.txt", "added", 10_000, 0, False),
        ("data/medium.txt", "added", 1, 0, False),
        ("link-to-readme", "added", 1, 0, False),
        ("scripts/run.sh", "added", 2, 0, False),
        ("src/app.py", "modified", 1, 0, False),
        ("web/app.min.js", "added", 1, 0, False),
    ]
    assert all(f.patch is None for f in detail.files)  # stats only


async def test_commit_full_patch_with_rename(backend: MirrorBackend, mirrored: Mirrored) -> None:
    detail = await backend.commit(REPO, mirrored.commits["c3"], "full_patch")
    files = {f.path: f for f in detail.files}
    assert sorted(files) == [".hidden/config.txt", "docs/manual.md", "vendor/lib"]
    manual = files["docs/manual.md"]
    assert (manual.status, manual.old_path, manual.additions, manual.deletions) == ("renamed", "docs/guide.md", 1, 0)
    assert manual.patch == "@@ -4,3 +4,4 @@ Guide\n Step one.\n Step two.\n Step three.\n+Step four.\n"
    assert files[".hidden/config.txt"].patch == "@@ -0,0 +1 @@\n+hidden needle\n"
    assert files["vendor/lib"].patch == f"@@ -0,0 +1 @@\n+Subproject commit {mirrored.commits['vendor']}\n"


async def test_commit_binary_and_root(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c2 = await backend.commit(REPO, mirrored.commits["c2"], "full_patch")
    logo = next(f for f in c2.files if f.path == "assets/logo.png")
    assert (logo.binary, logo.patch) == (True, None)
    app = next(f for f in c2.files if f.path == "src/app.py")
    assert app.patch == '@@ -1,2 +1,3 @@\n def main():\n     print("hello needle")\n+    print("goodbye")\n'
    root = await backend.commit(REPO, mirrored.commits["c1"], "stats")
    assert [(f.path, f.status, f.additions) for f in root.files] == [
        ("README.md", "added", 3),
        ("docs/guide.md", "added", 6),
        ("src/app.py", "added", 2),
        ("src/util/helpers.py", "added", 2),
    ]
    bare = await backend.commit(REPO, mirrored.commits["c1"], "none")
    assert bare.files == ()
    assert bare.commit.message == "Initial commit\n\nSets up the widgets project.\n"


async def test_commit_unknown(backend: MirrorBackend) -> None:
    with pytest.raises(NotFound, match=f"commit {'d' * 40} not found in acme/widgets"):
        await backend.commit(REPO, "d" * 40, "stats")


async def test_compare(backend: MirrorBackend, mirrored: Mirrored) -> None:
    commits = mirrored.commits
    comparison = await backend.compare(REPO, commits["f1"], commits["c5"], detail="stats")
    assert (comparison.base_sha, comparison.head_sha) == (commits["f1"], commits["c5"])
    assert comparison.merge_base_sha == commits["c2"]
    assert (comparison.ahead_by, comparison.behind_by) == (3, 1)
    assert [c.sha for c in comparison.commits] == [commits["c5"], commits["c4"], commits["c3"]]
    # three dots: src/feature.py (only on the base side) is not part of the diff
    assert [(f.path, f.status, f.additions, f.deletions) for f in comparison.files] == [
        (".hidden/config.txt", "added", 1, 0),
        ("docs/manual.md", "renamed", 1, 0),
        ("src/app.py", "modified", 1, 1),
        ("src/util/helpers.py", "modified", 1, 1),
        ("vendor/lib", "added", 1, 0),
    ]
    reverse = await backend.compare(REPO, commits["c5"], commits["f1"], detail="none")
    assert (reverse.ahead_by, reverse.behind_by, reverse.files) == (1, 3, ())
    assert [c.sha for c in reverse.commits] == [commits["f1"]]


async def test_compare_path_filter_and_patch(backend: MirrorBackend, mirrored: Mirrored) -> None:
    commits = mirrored.commits
    comparison = await backend.compare(REPO, commits["c2"], commits["c5"], detail="full_patch", path="src/util")
    [helpers] = comparison.files
    assert helpers.path == "src/util/helpers.py"
    assert helpers.patch == "@@ -1,2 +1,2 @@\n def helper():\n-    return 42\n+    return 43\n"
    same = await backend.compare(REPO, commits["c5"], commits["c5"], detail="stats")
    assert (same.ahead_by, same.behind_by, same.commits, same.files) == (0, 0, (), ())


# -- analysis -----------------------------------------------------------------------------------------------


async def test_analyze(backend: MirrorBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    analysis = await backend.analyze(REPO, c5)
    sizes = {
        path: _size(mirrored, f"{c5}:{path}")
        for path in git(mirrored.sample.work.path, "ls-tree", "-r", "--name-only", c5).splitlines()
        if path != "vendor/lib"
    }
    assert analysis.sha == c5
    assert analysis.file_count == len(sizes) == 12
    assert analysis.total_bytes == sum(sizes.values())
    assert analysis.languages == {
        "JavaScript": sizes["web/app.min.js"],
        "Markdown": sizes["README.md"] + sizes["docs/manual.md"],
        "Python": sizes["src/app.py"] + sizes["src/util/helpers.py"],
        "Shell": sizes["scripts/run.sh"],
    }
    assert list(analysis.languages) == ["JavaScript", "Markdown", "Python", "Shell"]  # largest first
    assert analysis.files_by_language == {"Markdown": 2, "Python": 2, "JavaScript": 1, "Shell": 1}
    assert [entry.path for entry in analysis.largest_files[:3]] == ["data/big.txt", "data/medium.txt", "web/app.min.js"]
    assert len(analysis.largest_files) == 10
    assert analysis.contributors == (
        Contributor(ALICE[0], 2),
        Contributor(BOB[0], 2),
        Contributor(CAROL[0], 1),
    )
    assert analysis.commit_count == 5
    assert analysis.first_commit_at == mirrored.sample.dates["c1"]
    assert analysis.last_commit_at == mirrored.sample.dates["c5"]
    assert (analysis.commits_last_30_days, analysis.commits_last_90_days) == (1, 2)
    # c5 is 3 days old (this week), c4 40 days old (5 full weeks ago); 12 buckets, oldest first
    assert analysis.weekly_commits == (0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1)
    assert await backend.analyze(REPO, c5) is analysis  # cached by SHA


async def test_analyze_older_commit(backend: MirrorBackend, mirrored: Mirrored) -> None:
    analysis = await backend.analyze(REPO, mirrored.commits["c1"])
    assert (analysis.file_count, analysis.commit_count) == (4, 1)
    assert analysis.contributors == (Contributor(ALICE[0], 1),)
    assert analysis.first_commit_at == analysis.last_commit_at == mirrored.sample.dates["c1"]
    assert analysis.commits_last_90_days == 0
    assert datetime.now(UTC) - mirrored.sample.dates["c1"] > timedelta(days=90)


async def test_a_history_too_long_to_read_whole_is_summarized_from_its_newest_commits_and_says_so(
    backend: MirrorBackend, mirrored: Mirrored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`git log` output is capped (MAX_LOG_OUTPUT) like every other git output: memory stays bounded on a history
    of millions of commits, and the answer says it counts only the newest."""
    full = await backend.analyze(REPO, mirrored.commits["c5"])
    assert full.history_complete
    monkeypatch.setattr(analysis, "MAX_LOG_OUTPUT", 60)  # two records of about 30 bytes, the last one cut
    backend.handle(REPO).analyses.clear()
    cut = await backend.analyze(REPO, mirrored.commits["c5"])
    assert not cut.history_complete
    assert 0 < cut.commit_count < full.commit_count
    assert cut.last_commit_at == full.last_commit_at
    assert all(c.name in {ALICE[0], BOB[0], CAROL[0]} for c in cut.contributors)  # no name cut in two


async def test_mirror_removed_while_serving(mirrored: Mirrored, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A backend whose mirror disappears answers Unavailable, not a crash."""
    data_dir = tmp_path_factory.mktemp("copy")
    shutil.copytree(mirrored.settings.data_dir, data_dir, dirs_exist_ok=True, symlinks=True)
    settings = mirrored.settings.model_copy(update={"data_dir": data_dir})
    async with MirrorBackend(settings, registry=Registry(data_dir, check_interval=0)) as backend:
        head = await backend.resolve(REPO, None)
        shutil.rmtree(data_dir / "mirrors")
        with pytest.raises(Unavailable):
            await backend.read_blob(REPO, head.sha, "never-read-before.txt", 10)


# -- huge diffs and listings ------------------------------------------------------------------------------------


async def test_a_diff_over_the_file_cap_lists_the_first_files_and_says_so(
    backend: MirrorBackend, mirrored: Mirrored, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = mirrored.commits
    whole = await backend.commit(REPO, commits["c2"], "stats")
    assert (len(whole.files), whole.files_truncated) == (8, False)
    monkeypatch.setattr(history, "MAX_DIFF_FILES", 3)
    capped = await backend.commit(REPO, commits["c2"], "stats")
    assert (capped.files, capped.files_truncated) == (whole.files[:3], True)
    comparison = await backend.compare(REPO, commits["f1"], commits["c5"], detail="stats")
    assert (len(comparison.files), comparison.files_truncated) == (3, True)
    exact = await backend.compare(REPO, commits["c2"], commits["c5"], detail="full_patch", path="src")
    assert (len(exact.files), exact.files_truncated) == (2, False)


async def test_a_diff_cut_before_its_line_counts_is_incomplete_not_empty(
    backend: MirrorBackend, mirrored: Mirrored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output over MAX_DIFF_OUTPUT that ends inside the per-file records yields no files; that must read as an
    incomplete list (files_truncated), never as a commit that changed nothing."""
    monkeypatch.setattr(history, "MAX_DIFF_OUTPUT", 200)
    cut = await backend.commit(REPO, mirrored.commits["c2"], "stats")
    assert (cut.files, cut.files_truncated) == ((), True)


async def test_large_outputs_are_parsed_off_the_event_loop(
    backend: MirrorBackend, mirrored: Mirrored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing is ~10 µs per file or entry: a 200,000-file commit or tree parsed on the event loop stalled every
    other caller for seconds. Above a size (here: any), the parse runs in a worker thread with the same result."""
    commits = mirrored.commits
    on_loop = {
        "diff": await backend.commit(REPO, commits["c2"], "full_patch"),
        "tree": await backend.list_tree(REPO, commits["c5"], "", True),
    }
    threads: dict[str, list[bool]] = {"diff": [], "tree": [], "analysis": []}

    def recorded(kind: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            threads[kind].append(threading.current_thread() is threading.main_thread())
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(gitcmd, "PARSE_IN_THREAD", 0)
    monkeypatch.setattr(history, "parse_diff_tree", recorded("diff", history.parse_diff_tree))
    monkeypatch.setattr(trees, "_parse_ls_tree", recorded("tree", trees._parse_ls_tree))
    monkeypatch.setattr(analysis, "_summarize_output", recorded("analysis", analysis._summarize_output))
    async with MirrorBackend(mirrored.settings) as fresh:  # nothing cached
        assert await fresh.commit(REPO, commits["c2"], "full_patch") == on_loop["diff"]
        assert await fresh.list_tree(REPO, commits["c5"], "", True) == on_loop["tree"]
        await fresh.analyze(REPO, commits["c4"])
    assert threads == {"diff": [False], "tree": [False, False], "analysis": [False]}  # analyze lists c4 too
