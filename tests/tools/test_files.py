"""get_repository_tree's listing limit (a real mirror of a repository with thousands of entries) and what
get_file_contents' `truncated` means (the sample repository)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.gitrepo import ALICE, git, make_bare_remote
from tests.tools.conftest import Widgets, alice_calling, write_policy

from bastion.config import Settings
from bastion.policy.loader import PolicyFile
from bastion.policy.types import Operation
from bastion.principal import Principal
from bastion.repos import trees
from bastion.repos.mirror import MirrorBackend
from bastion.repos.sync import add_repository
from bastion.services import Services
from bastion.tools import files
from bastion.tools.access import Access
from bastion.tools.call import ToolCall
from bastion.tools.files import MAX_TREE_ENTRIES, get_file_contents, get_repository_tree

REPO = "acme/crowded"
HIDDEN = ("keys/a.pem", "keys/b.pem", "z.pem")  # denied by the default deny list ('*.pem')
POLICY = """\
version: 1
rules:
  - name: everyone
    repositories: ["acme/*"]
    subjects: {users: ["*"]}
    operations: ["*"]
"""


def _commit_tree(remote: Path, files: list[str], branch: str) -> str:
    """A commit whose tree holds `files` (all the same small blob), made with plumbing: thousands of entries in
    milliseconds instead of a checkout of thousands of files."""
    blob = git(remote, "hash-object", "-w", "--stdin", stdin=b"x\n")
    top: list[str] = []
    subdirs: dict[str, list[str]] = {}
    for path in files:
        directory, _, name = path.rpartition("/")
        if directory:
            subdirs.setdefault(directory, []).append(name)
        else:
            top.append(name)
    lines = [f"100644 blob {blob}\t{name}" for name in top]
    for directory, names in subdirs.items():
        listing = "".join(f"100644 blob {blob}\t{name}\n" for name in names).encode()
        lines.append(f"040000 tree {git(remote, 'mktree', stdin=listing)}\t{directory}")
    tree = git(remote, "mktree", stdin=("\n".join(lines) + "\n").encode())
    stamp = "2024-05-01T12:00:00+00:00"
    env = {
        "GIT_AUTHOR_NAME": ALICE[0],
        "GIT_AUTHOR_EMAIL": ALICE[1],
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": ALICE[0],
        "GIT_COMMITTER_EMAIL": ALICE[1],
        "GIT_COMMITTER_DATE": stamp,
    }
    commit = git(remote, "commit-tree", tree, "-m", f"{len(files)} files", env=env)
    git(remote, "update-ref", f"refs/heads/{branch}", commit)
    return commit


@dataclass
class Crowded:
    settings: Settings
    policy: Path


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Crowded:
    remote = make_bare_remote(tmp_path_factory.mktemp("crowded-remote"), REPO)
    names = [f"f{i:05d}.txt" for i in range(MAX_TREE_ENTRIES + 1)]
    _commit_tree(remote, [*names, *HIDDEN], "main")
    _commit_tree(remote, [*names[: MAX_TREE_ENTRIES - 1], *HIDDEN], "exact")  # + the keys directory: 5000
    settings = Settings(data_dir=tmp_path_factory.mktemp("crowded-data"))
    asyncio.run(add_repository(settings, remote.resolve().as_uri(), name=REPO))
    return Crowded(settings, write_policy(tmp_path_factory.mktemp("crowded-policy"), POLICY))


@pytest.fixture
async def call(crowded: Crowded) -> AsyncIterator[ToolCall]:
    async with alice_calling(crowded.settings, crowded.policy, "get_repository_tree") as call:
        yield call


def _text(result: Any) -> str:
    return result.content[0].text


@pytest.mark.anyio
async def test_a_listing_over_the_limit_is_cut_and_says_so(call: ToolCall) -> None:
    result = await get_repository_tree(call, "acme", "crowded", None, None, True)
    out = result.structured_content
    assert out is not None
    assert len(out["entries"]) == MAX_TREE_ENTRIES
    assert out["truncated"] is True
    assert out["omitted_by_policy"] == len(HIDDEN)
    assert out["entries"][0]["path"] == "f00000.txt"
    assert all(not entry["path"].endswith(".pem") for entry in out["entries"])
    header = _text(result).splitlines()[0]
    assert header.endswith(
        f": {MAX_TREE_ENTRIES} entries (first {MAX_TREE_ENTRIES} of {MAX_TREE_ENTRIES + 2}; narrow with path_filter)"
    )


@pytest.mark.anyio
async def test_a_listing_exactly_at_the_limit_is_complete_and_hidden_entries_do_not_count(call: ToolCall) -> None:
    # Branch `exact`, top level: 4999 files and the `keys` directory are visible (5000), z.pem is hidden.
    result = await get_repository_tree(call, "acme", "crowded", "exact", None, False)
    out = result.structured_content
    assert out is not None
    assert (len(out["entries"]), out["truncated"], out["omitted_by_policy"]) == (MAX_TREE_ENTRIES, False, 1)
    assert "first" not in _text(result).splitlines()[0]
    assert [entry["path"] for entry in out["entries"][-2:]] == [f"f{MAX_TREE_ENTRIES - 2:05d}.txt", "keys"]


@pytest.mark.anyio
async def test_a_directory_of_hidden_files_lists_as_empty_with_the_count(call: ToolCall) -> None:
    result = await get_repository_tree(call, "acme", "crowded", "exact", "keys", False)
    out = result.structured_content
    assert out is not None
    assert (out["entries"], out["truncated"], out["omitted_by_policy"]) == ([], False, 2)
    assert _text(result).endswith(": 0 entries\n(2 entries hidden by policy)")
    listed = await get_file_contents(call, "acme", "crowded", "keys", "exact", None, None, None)
    assert _text(listed).endswith(": 0 entries\n(2 entries hidden by policy)")


# -- get_file_contents: what `truncated` means -----------------------------------------------------------------

MANUAL = "Guide\n=====\n\nStep one.\nStep two.\nStep three.\nStep four.\n"  # docs/manual.md on main


@pytest.fixture
async def widgets_call(widgets: Widgets, tmp_path: Path) -> AsyncIterator[ToolCall]:
    async with MirrorBackend(widgets.settings) as backend:
        access = Access(PolicyFile(write_policy(tmp_path, POLICY)), backend)
        services = Services(settings=widgets.settings, backend=backend, access=access, record=lambda event: None)
        yield ToolCall(services, Principal("alice"), "get_file_contents")


@pytest.mark.anyio
async def test_the_whole_file_is_not_truncated(widgets_call: ToolCall) -> None:
    result = await get_file_contents(widgets_call, "acme", "widgets", "docs/manual.md", None, None, None, None)
    out = result.structured_content
    assert out is not None
    assert (out["content"], out["truncated"], out["start_line"], out["end_line"], out["total_lines"]) == (
        MANUAL,
        False,
        1,
        7,
        7,
    )


@pytest.mark.anyio
async def test_a_line_range_is_not_the_whole_file_but_needs_no_budget_hint(widgets_call: ToolCall) -> None:
    result = await get_file_contents(widgets_call, "acme", "widgets", "docs/manual.md", None, 4, 5, None)
    out = result.structured_content
    assert out is not None
    assert (out["content"], out["truncated"], out["start_line"], out["end_line"]) == (
        "Step one.\nStep two.\n",
        True,
        4,
        5,
    )
    first_line = _text(result).splitlines()[0]
    assert first_line.endswith("(lines 4-5 of 7)")
    assert "max_bytes" not in first_line


@pytest.mark.anyio
async def test_a_range_that_covers_the_file_is_the_whole_file(widgets_call: ToolCall) -> None:
    result = await get_file_contents(widgets_call, "acme", "widgets", "docs/manual.md", None, 1, 99, None)
    assert result.structured_content is not None
    assert result.structured_content["truncated"] is False


@pytest.mark.anyio
async def test_a_budget_cut_says_how_to_get_more(widgets_call: ToolCall) -> None:
    result = await get_file_contents(widgets_call, "acme", "widgets", "docs/manual.md", None, None, None, 10)
    out = result.structured_content
    assert out is not None
    assert (out["content"], out["truncated"], out["end_line"], out["returned_bytes"]) == ("Guide\n====", True, 2, 10)
    assert "truncated: ask for a line range or a larger max_bytes for more" in _text(result).splitlines()[0]


@pytest.mark.anyio
async def test_a_binary_file_is_described_not_returned(widgets_call: ToolCall) -> None:
    result = await get_file_contents(widgets_call, "acme", "widgets", "assets/logo.png", None, None, None, None)
    out = result.structured_content
    assert out is not None
    assert (out["binary"], out["content"], out["description"], out["size"]) == (True, None, "binary data", 1024)
    assert "is binary (binary data, 1024 bytes); its content is not returned as text" in _text(result)


# -- a huge listing does not stall other callers ---------------------------------------------------------------


@pytest.mark.anyio
async def test_judging_thousands_of_entries_gives_other_callers_turns(
    call: ToolCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each entry is one policy question (~10 µs): 200,000 of them in one go stalled the event loop for seconds.
    The listing itself is parsed in a worker thread (tests/repos/test_mirror.py); judging it yields regularly."""
    threads: list[bool] = []
    parse = trees._parse_ls_tree

    def recording(output: bytes) -> Any:
        threads.append(threading.current_thread() is threading.main_thread())
        return parse(output)

    monkeypatch.setattr(trees, "_parse_ls_tree", recording)
    name = await call.repository("acme", "crowded", Operation.READ)
    target = await call.authorize_ref(name, None, Operation.READ)
    entries = await call.backend.list_tree(name, target.sha, "", True)
    assert threads == [False]  # ~350 KB of ls-tree output: parsed off the event loop
    assert len(entries) > 4 * files._YIELD_EVERY

    ticks = 0

    async def other_caller() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_caller())
    await asyncio.sleep(0)
    before = ticks
    visible, hidden = await files._visible(call, name, target, entries)
    during = ticks - before
    other.cancel()
    assert (len(visible), hidden) == (len(entries) - len(HIDDEN), len(HIDDEN))
    assert during >= len(entries) // files._YIELD_EVERY  # the other caller ran between every chunk
