"""A diff carries no more of a file than a read may: a patch is checked against the size limit of the rule that
allows its path, for the file's size (not the patch's), in get_commit and compare_refs alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.gitrepo import WorkRepo, make_bare_remote
from tests.tools.conftest import alice_calling, write_policy

from bastion.config import Settings
from bastion.errors import AccessDenied
from bastion.policy.sizes import format_size_pair
from bastion.repos.sync import add_repository
from bastion.tools.call import ToolCall
from bastion.tools.files import get_file_contents
from bastion.tools.history import compare_refs, get_commit

REPO = "acme/ledger"
OWNER, NAME = REPO.split("/")
# Two allow rules for one ref: code may be large, data may not. The ref alone is allowed by 'code' first.
POLICY = """\
version: 1
rules:
  - name: code
    repositories: ["acme/ledger"]
    subjects: {users: ["*"]}
    operations: ["*"]
    allow_paths: ["src/**"]
    max_file_size: 64KiB
  - name: data
    repositories: ["acme/ledger"]
    subjects: {users: ["*"]}
    operations: ["*"]
    allow_paths: ["data/**"]
    max_file_size: 1KiB
"""
ROWS = "".join(f"row-{i:04d},customer-{i:04d},{i * 7}\n" for i in range(120))  # 3.2 KB: over 'data''s 1 KiB
CODE = "".join(f"line {i}\n" for i in range(400))  # 3.5 KB: well under 'code''s 64 KiB


@dataclass
class Ledger:
    settings: Settings
    policy: Path
    added: str  # both files added
    edited: str  # one line changed in each
    moded: str  # the data file made executable: a patch with no lines at all
    deleted: str  # the data file removed


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    remote = make_bare_remote(tmp_path_factory.mktemp("ledger-remote"), REPO)
    work = WorkRepo(tmp_path_factory.mktemp("ledger-work") / "w", remote)
    work.write("src/app.py", CODE)
    work.write("data/rows.csv", ROWS)
    added = work.commit("Add the ledger", when="2024-05-01T12:00:00+00:00")
    work.write("src/app.py", CODE.replace("line 7\n", "line seven\n"))
    work.write("data/rows.csv", ROWS.replace("customer-0042", "customer-4242"))
    edited = work.commit("One line each", when="2024-05-02T12:00:00+00:00")
    work.write("data/rows.csv", ROWS.replace("customer-0042", "customer-4242"), executable=True)
    moded = work.commit("Executable rows", when="2024-05-02T18:00:00+00:00")
    work.remove("data/rows.csv")
    deleted = work.commit("Drop the rows", when="2024-05-03T12:00:00+00:00")
    work.push("main")
    settings = Settings(data_dir=tmp_path_factory.mktemp("ledger-data"))
    asyncio.run(add_repository(settings, remote.resolve().as_uri(), name=REPO))
    policy = write_policy(tmp_path_factory.mktemp("ledger-policy"), POLICY)
    return Ledger(settings, policy, added, edited, moded, deleted)


@pytest.fixture
async def call(ledger: Ledger) -> AsyncIterator[ToolCall]:
    async with alice_calling(ledger.settings, ledger.policy, "get_commit") as call:
        yield call


def _files(answer: Any) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in answer.structured_content["files"]}


SHOWN_SIZE, SHOWN_LIMIT = format_size_pair(len(ROWS), 1024)
TOO_LARGE = f"file is {SHOWN_SIZE}, over the {SHOWN_LIMIT} limit of rule 'data'"


@pytest.mark.anyio
async def test_a_one_line_change_to_a_file_over_its_paths_limit_shows_no_lines(call: ToolCall, ledger: Ledger) -> None:
    commit = _files(await get_commit(call, OWNER, NAME, ledger.edited, "full_patch"))
    compared = _files(await compare_refs(call, OWNER, NAME, ledger.added, ledger.edited, "full_patch", None))
    for files in (commit, compared):
        rows, app = files["data/rows.csv"], files["src/app.py"]
        assert rows["patch"] is None
        assert rows["patch_withheld"] == f"patch withheld: {TOO_LARGE}"
        assert (rows["additions"], rows["deletions"]) == (1, 1)  # what changed is still told
        assert "+line seven" in app["patch"]  # the larger limit of the rule for src/** applies there
        assert app["patch_withheld"] is None
    # the same limit a read of the file meets
    with pytest.raises(AccessDenied) as refused:
        await get_file_contents(call, OWNER, NAME, "data/rows.csv", ledger.edited, 1, 2, None)
    assert str(refused.value).startswith(TOO_LARGE)


@pytest.mark.anyio
async def test_a_deleted_file_is_judged_by_its_size_before(call: ToolCall, ledger: Ledger) -> None:
    rows = _files(await get_commit(call, OWNER, NAME, ledger.deleted, "full_patch"))["data/rows.csv"]
    assert (rows["status"], rows["patch"], rows["deletions"]) == ("deleted", None, 120)
    assert rows["patch_withheld"].startswith("patch withheld: file is ")


@pytest.mark.anyio
async def test_the_file_is_judged_not_the_patch(call: ToolCall, ledger: Ledger) -> None:
    """A mode change has a patch without a single line: still a patch of a file over its limit."""
    rows = _files(await get_commit(call, OWNER, NAME, ledger.moded, "full_patch"))["data/rows.csv"]
    assert (rows["patch"], rows["patch_withheld"]) == (None, f"patch withheld: {TOO_LARGE}")


@pytest.mark.anyio
async def test_stats_alone_are_not_judged_by_size(call: ToolCall, ledger: Ledger) -> None:
    rows = _files(await get_commit(call, OWNER, NAME, ledger.edited, "stats"))["data/rows.csv"]
    assert (rows["patch"], rows["patch_withheld"], rows["additions"]) == (None, None, 1)
