"""GitHubBackend against the local GitHub stand-in serving the sample repository: every RepositoryBackend method,
compared with MirrorBackend's answer for the same repository (the same bare repository feeds both), plus what
only the REST path has (search limits, caching, API-call counts)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from tests.repos.conftest import REPO, Mirrored
from tests.support.github_api import GitHubApi, github_api, github_settings

from bastion.errors import ConfigError, InvalidInput, NotFound, Unavailable
from bastion.github.credentials import StaticToken
from bastion.repos.github_backend import GitHubBackend
from bastion.repos.github_backend.search import _matching_lines  # pyright: ignore[reportPrivateUsage]
from bastion.repos.mirror import MirrorBackend
from bastion.repos.types import Blob, CommitSummary, SearchQuery, TreeEntry

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def api(mirrored: Mirrored, git_http_root: Path) -> Iterator[GitHubApi]:
    with github_api(git_http_root) as served:
        yield served


@pytest.fixture
async def github(api: GitHubApi, tmp_path: Path) -> AsyncIterator[GitHubBackend]:
    settings = github_settings(api.url, tmp_path, [REPO])
    async with GitHubBackend(settings, StaticToken("test-token")) as backend:
        yield backend


def _plain(commit: CommitSummary) -> CommitSummary:
    """GitHub drops the message's trailing newline; everything else (dates as instants) must be equal."""
    return replace(commit, message=commit.message.rstrip("\n"))


def _blob(found: Blob | list[TreeEntry]) -> Blob:
    assert isinstance(found, Blob), found
    return found


# -- repositories and refs ----------------------------------------------------------------------------------


async def test_repositories_come_from_the_configuration(github: GitHubBackend, api: GitHubApi) -> None:
    [info] = await github.list_repositories()
    assert (info.name, info.url, info.default_branch) == (REPO, f"https://github.com/{REPO}.git", "main")
    assert (await github.get_repository("ACME/Widgets")).name == REPO
    with pytest.raises(NotFound) as caught:
        await github.get_repository("acme/gadgets")
    assert "'acme/gadgets' is not configured (BASTION_REPOS__BOOTSTRAP" in caught.value.message


async def test_configured_but_missing_on_github_is_listed_with_the_reason(api: GitHubApi, tmp_path: Path) -> None:
    settings = github_settings(api.url, tmp_path, [REPO, "acme/ghost"])
    async with GitHubBackend(settings, StaticToken("test-token")) as github:
        ghost, widgets = await github.list_repositories()
    assert widgets.last_sync_error is None
    assert (ghost.name, ghost.default_branch) == ("acme/ghost", None)
    assert ghost.last_sync_error == "repository 'acme/ghost' does not exist on GitHub or the credentials cannot see it"


async def test_org_allowlist_serves_unlisted_repositories_of_allowed_owners(api: GitHubApi, tmp_path: Path) -> None:
    settings = github_settings(api.url, tmp_path, [], org_allowlist=["ACME"])
    async with GitHubBackend(settings, StaticToken("test-token")) as github:
        assert (await github.get_repository("acme/widgets")).default_branch == "main"
        with pytest.raises(NotFound, match="owner is not in BASTION_GITHUB__ORG_ALLOWLIST"):
            await github.get_repository("other/widgets")


def test_a_backend_that_would_serve_nothing_refuses_to_start(api: GitHubApi, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="would serve nothing: list the repositories in BASTION_REPOS__BOOTSTRAP"):
        GitHubBackend(github_settings(api.url, tmp_path, []), StaticToken("test-token"))


async def test_refs_equal_the_mirrors(github: GitHubBackend, backend: MirrorBackend) -> None:
    assert await github.refs(REPO) == await backend.refs(REPO)


@pytest.mark.parametrize("ref", [None, "HEAD", "main", "refs/heads/main", "feature", "v1.0", "refs/tags/v1.0", "v0.1"])
async def test_resolve_names_like_the_mirror(github: GitHubBackend, backend: MirrorBackend, ref: str | None) -> None:
    assert await github.resolve(REPO, ref) == await backend.resolve(REPO, ref)


async def test_resolve_shas(github: GitHubBackend, mirrored: Mirrored, api: GitHubApi) -> None:
    c3 = mirrored.commits["c3"]
    for given in (c3, c3[:7], c3[:12].upper()):
        resolved = await github.resolve(REPO, given)
        assert (resolved.kind, resolved.full_name, resolved.sha) == ("commit", None, c3)
    asked = len(api.paths(f"/commits/{c3[:7]}"))
    await github.resolve(REPO, c3[:7])
    assert len(api.paths(f"/commits/{c3[:7]}")) == asked  # a prefix seen once is not asked again
    [request] = [headers for path, headers in api.requests if path.endswith(f"/commits/{c3}")][-1:]
    assert request["accept"] == "application/vnd.github.sha"  # the SHA alone, not the commit with its files


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope", "ref 'nope' not found in acme/widgets"),
        ("refs/heads/nope", "ref 'refs/heads/nope' not found in acme/widgets"),
        ("refs/tags/main", "ref 'refs/tags/main' not found in acme/widgets"),
        ("deadbeefdeadbeef", "ref 'deadbeefdeadbeef' not found in acme/widgets (no commit has that SHA)"),
    ],
)
async def test_resolve_unknown_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, ref: str, message: str
) -> None:
    for source in (github, backend):
        with pytest.raises(NotFound) as caught:
            await source.resolve(REPO, ref)
        assert caught.value.message == message


async def test_ancestry(github: GitHubBackend, mirrored: Mirrored, api: GitHubApi) -> None:
    commits = mirrored.commits
    assert await github.is_ancestor(REPO, commits["c1"], commits["c5"])
    assert await github.is_ancestor(REPO, commits["c2"], commits["f1"])
    assert await github.is_ancestor(REPO, commits["c5"], commits["c5"])
    assert not await github.is_ancestor(REPO, commits["f1"], commits["c5"])
    assert not await github.is_ancestor(REPO, commits["c5"], commits["c1"])
    before = len(api.paths("/compare/"))
    assert not await github.is_ancestor(REPO, commits["f1"], commits["c5"])
    assert len(api.paths("/compare/")) == before  # cached, False included


async def test_methods_refuse_anything_but_full_shas(github: GitHubBackend) -> None:
    for call in (
        github.read_blob(REPO, "main", "README.md", 10),
        github.list_tree(REPO, "HEAD", "", False),
        github.log(REPO, "--all"),
        github.commit(REPO, "abc1234", "stats"),
        github.analyze(REPO, "v1.0"),
    ):
        with pytest.raises(InvalidInput, match="must be a full 40-hex SHA from resolve"):
            await call
    with pytest.raises(InvalidInput, match="tip must be a full 40-hex SHA"):
        await github.is_ancestor(REPO, "a" * 40, "main")


# -- files and trees ----------------------------------------------------------------------------------------

_PATHS = ["src/app.py", "scripts/run.sh", "link-to-readme", "vendor/lib", "assets/logo.png", "README.md", ".env"]


@pytest.mark.parametrize("path", _PATHS)
@pytest.mark.parametrize("max_bytes", [0, 5, 100_000])
async def test_read_blob_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, path: str, max_bytes: int
) -> None:
    c5 = mirrored.commits["c5"]
    assert await github.read_blob(REPO, c5, path, max_bytes) == await backend.read_blob(REPO, c5, path, max_bytes)


async def test_a_large_file_is_read_only_as_far_as_asked(
    github: GitHubBackend, mirrored: Mirrored, api: GitHubApi
) -> None:
    blob = _blob(await github.read_blob(REPO, mirrored.commits["c5"], "data/big.txt", 1000))
    assert (blob.size, len(blob.data)) == (mirrored.sample.big_size, 1000)  # size from the tree, bytes as asked
    assert blob.data.startswith(b"0123456789abcdef")
    again = _blob(await github.read_blob(REPO, mirrored.commits["c5"], "data/big.txt", 2000))
    assert len(again.data) == 2000  # a prefix is not cached as if it were the whole file
    assert len(api.paths(f"/git/blobs/{blob.oid}")) == 2


async def test_read_directories_and_older_commits(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored
) -> None:
    c1, c5 = mirrored.commits["c1"], mirrored.commits["c5"]
    for commit, path in ((c5, ""), (c5, "src"), (c5, "vendor"), (c1, "docs"), (c1, "docs/guide.md")):
        assert await github.read_blob(REPO, commit, path, 1000) == await backend.read_blob(REPO, commit, path, 1000)


@pytest.mark.parametrize(
    ("path", "why"), [("docs/guide.md", ""), ("src/app.py/x", ": 'src/app.py' is not a directory")]
)
async def test_missing_paths_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, path: str, why: str
) -> None:
    c5 = mirrored.commits["c5"]
    for source in (github, backend):
        with pytest.raises(NotFound) as caught:
            await source.read_blob(REPO, c5, path, 10)
        assert caught.value.message == f"path '{path}' not found at {c5[:12]} in acme/widgets{why}"


@pytest.mark.parametrize(
    ("path", "recursive"), [("", False), ("", True), ("src", False), ("src", True), ("docs", True)]
)
async def test_list_tree_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, path: str, recursive: bool
) -> None:
    c5 = mirrored.commits["c5"]
    listed = await github.list_tree(REPO, c5, path, recursive)
    assert listed == await backend.list_tree(REPO, c5, path, recursive)
    assert listed


async def test_list_tree_of_a_file_is_invalid(github: GitHubBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    with pytest.raises(InvalidInput) as caught:
        await github.list_tree(REPO, c5, "README.md", False)
    assert caught.value.message == f"'README.md' is a file, not a directory, at {c5[:12]} in acme/widgets"


async def test_one_tree_call_per_commit_serves_every_read(
    github: GitHubBackend, mirrored: Mirrored, api: GitHubApi
) -> None:
    c4 = mirrored.commits["c4"]
    before = len(api.requests)
    await github.list_tree(REPO, c4, "", True)
    await github.read_blob(REPO, c4, "src/util/helpers.py", 100)
    await github.read_blob(REPO, c4, "src/util/helpers.py", 100)
    await github.read_blob(REPO, c4, "docs", 100)
    paths = [path for path, _ in api.requests[before:]]
    assert [p for p in paths if "/git/trees/" in p] == [f"/repos/{REPO}/git/trees/{c4}?recursive=1"]
    assert len([p for p in paths if "/git/blobs/" in p]) == 1  # the second read came from the cache


async def test_truncated_trees_fall_back_to_one_level_per_directory(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, api: GitHubApi
) -> None:
    c3 = mirrored.commits["c3"]
    api.max_tree_entries = 3
    try:
        assert await github.read_blob(REPO, c3, "src/util/helpers.py", 100) == await backend.read_blob(
            REPO, c3, "src/util/helpers.py", 100
        )
        assert await github.list_tree(REPO, c3, "src", False) == await backend.list_tree(REPO, c3, "src", False)
        with pytest.raises(NotFound, match=r"path 'src/nope\.py' not found"):
            await github.read_blob(REPO, c3, "src/nope.py", 100)
        with pytest.raises(Unavailable) as caught:
            await github.list_tree(REPO, c3, "", True)
        assert caught.value.message == "the tree of acme/widgets is too large to list recursively; list a subdirectory"
    finally:
        api.max_tree_entries = 100_000


# -- history ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window",
    [
        {},
        {"limit": 2},
        {"skip": 1, "limit": 2},
        {"skip": 10},
        {"path": "src/app.py"},
        {"author": "alice"},
        {"author": "BOB@EXAMPLE"},
        {"author": "nobody"},
    ],
)
async def test_log_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, window: dict[str, object]
) -> None:
    c5 = mirrored.commits["c5"]
    ours = await github.log(REPO, c5, **window)  # type: ignore[arg-type]
    theirs = await backend.log(REPO, c5, **window)  # type: ignore[arg-type]
    assert [_plain(c) for c in ours] == [_plain(c) for c in theirs]


async def test_log_since_until(github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored) -> None:
    c5 = mirrored.commits["c5"]
    since, until = mirrored.sample.dates["c2"], mirrored.sample.dates["c3"]
    ours = await github.log(REPO, c5, since=since, until=until)
    assert [c.sha for c in ours] == [mirrored.commits["c3"], mirrored.commits["c2"]]
    assert [_plain(c) for c in ours] == [_plain(c) for c in await backend.log(REPO, c5, since=since, until=until)]


@pytest.mark.parametrize("label", ["c1", "c2", "c3", "c5"])
@pytest.mark.parametrize("detail", ["none", "stats", "full_patch"])
async def test_commit_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, label: str, detail: str
) -> None:
    sha = mirrored.commits[label]
    ours = await github.commit(REPO, sha, detail)  # type: ignore[arg-type]
    theirs = await backend.commit(REPO, sha, detail)  # type: ignore[arg-type]
    assert _plain(ours.commit) == _plain(theirs.commit)
    assert ours.files == theirs.files
    assert not ours.files_truncated


async def test_commit_files_of_the_rename_commit(github: GitHubBackend, mirrored: Mirrored) -> None:
    found = await github.commit(REPO, mirrored.commits["c3"], "full_patch")
    manual = next(f for f in found.files if f.path == "docs/manual.md")
    assert (manual.status, manual.old_path, manual.additions, manual.deletions) == ("renamed", "docs/guide.md", 1, 0)
    assert manual.patch is not None
    assert manual.patch.endswith("+Step four.\n")
    logo = next(
        f
        for f in (await github.commit(REPO, mirrored.commits["c2"], "full_patch")).files
        if f.path == "assets/logo.png"
    )
    assert (logo.binary, logo.patch) == (True, None)


@pytest.mark.parametrize(("base", "head"), [("c1", "c5"), ("c2", "f1"), ("f1", "c5"), ("c5", "c5"), ("c5", "c1")])
@pytest.mark.parametrize("detail", ["stats", "full_patch"])
async def test_compare_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, base: str, head: str, detail: str
) -> None:
    base_sha, head_sha = mirrored.commits[base], mirrored.commits[head]
    ours = await github.compare(REPO, base_sha, head_sha, detail=detail)  # type: ignore[arg-type]
    theirs = await backend.compare(REPO, base_sha, head_sha, detail=detail)  # type: ignore[arg-type]
    assert replace(ours, commits=()) == replace(theirs, commits=())
    assert [_plain(c) for c in ours.commits] == [_plain(c) for c in theirs.commits]


async def test_compare_with_a_path(github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored) -> None:
    c1, c5 = mirrored.commits["c1"], mirrored.commits["c5"]
    ours = await github.compare(REPO, c1, c5, detail="stats", path="src")
    assert [f.path for f in ours.files] == ["src/app.py", "src/util/helpers.py"]
    assert ours.files == (await backend.compare(REPO, c1, c5, detail="stats", path="src")).files


# -- search -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        SearchQuery("needle"),
        SearchQuery("NEEDLE", case_sensitive=True),
        SearchQuery("Needle", case_sensitive=False, path_glob="*.py"),
        SearchQuery("needle", max_results=3),
    ],
)
async def test_search_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, query: SearchQuery
) -> None:
    c5 = mirrored.commits["c5"]
    ours = await github.search(REPO, c5, query, timeout=10, allow_path=lambda path: path != ".env")
    theirs = await backend.search(REPO, c5, query, timeout=10, allow_path=lambda path: path != ".env")
    assert (ours.hits, ours.truncated, ours.engine) == (theirs.hits, theirs.truncated, "github")
    assert ".env" not in {hit.path for hit in ours.hits}


async def test_search_is_one_code_search_request(github: GitHubBackend, mirrored: Mirrored, api: GitHubApi) -> None:
    before = len(api.paths("/search/code"))
    result = await github.search(
        REPO, mirrored.commits["c5"], SearchQuery("goodbye"), timeout=10, allow_path=lambda _: True
    )
    assert [(h.path, h.line_number) for h in result.hits] == [("src/app.py", 3)]
    [asked] = api.paths("/search/code")[before:]
    assert "repo%3Aacme%2Fwidgets" in asked
    assert "%22goodbye%22" in asked
    assert github.client.rate_limits()["code_search"].limit == 10


async def test_search_explains_what_github_cannot_do(github: GitHubBackend, mirrored: Mirrored) -> None:
    with pytest.raises(Unavailable) as caught:
        await github.search(REPO, mirrored.commits["f1"], SearchQuery("needle"), timeout=10, allow_path=lambda _: True)
    assert caught.value.message == (
        "acme/widgets is served through GitHub's code search API, which searches only its default branch 'main' "
        f"({mirrored.commits['c5'][:12]}); {mirrored.commits['f1'][:12]} cannot be searched here "
        "(omit ref to search the default branch)"
    )
    with pytest.raises(Unavailable, match="takes no regular expressions; search for a fixed string"):
        await github.search(
            REPO, mirrored.commits["c5"], SearchQuery("nee.le", regex=True), timeout=10, allow_path=lambda _: True
        )


# -- analysis -----------------------------------------------------------------------------------------------


async def test_analyze_like_the_mirror(
    github: GitHubBackend, backend: MirrorBackend, mirrored: Mirrored, api: GitHubApi
) -> None:
    for label in ("c5", "c2"):
        sha = mirrored.commits[label]
        assert await github.analyze(REPO, sha) == await backend.analyze(REPO, sha)
    before = len(api.requests)
    await github.analyze(REPO, mirrored.commits["c5"])
    assert len(api.requests) == before  # cached per SHA


def test_search_lines_end_at_newlines_only_as_git_counts_them() -> None:
    """str.splitlines also splits at a form feed, "\\x1c", "\\u2028", ...: the hit's line number then named another
    line than git's, and the content guard, which reads the hit's line from the whole file, missed it."""
    data = "\x0c\nfirst\x1csecond\u2028\r\nneedle here\r\n".encode()
    assert _matching_lines(data, SearchQuery("needle")) == [(3, "needle here")]
