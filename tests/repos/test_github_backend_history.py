"""GitHub's page and list limits, on a generated repository large enough to hit them: history windows across
pages of 100, a commit with more than 300 files (GitHub pages them), a comparison with more than 300 files
(GitHub lists 300: said so) and more than 250 commits (the newest 250, newest first, like the mirror), an analysis
of more than 1,000 commits (sampled history, exact count and first date)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.github_api import GitHubApi, github_api, github_settings
from tests.support.gitrepo import git, make_bare_remote

from bastion.audit.event import AuditEvent
from bastion.github.credentials import StaticToken
from bastion.policy.loader import PolicyFile
from bastion.principal import Principal
from bastion.repos.github_backend import GitHubBackend
from bastion.repos.github_backend.history import MAX_COMPARE_COMMITS, MAX_COMPARE_FILES
from bastion.services import Services
from bastion.tools.access import Access
from bastion.tools.call import ToolCall
from bastion.tools.history import compare_refs

pytestmark = pytest.mark.anyio

REPO = "acme/big"
WIDE = 320  # files touched by the first two commits
HISTORY = 1050  # commits after those two
START = datetime(2025, 1, 1, tzinfo=UTC)
TAGS = 150  # more than one page of GitHub's tag list


@dataclass
class Big:
    root: Path
    shas: list[str]  # oldest first


def _fast_import(git_dir: Path) -> None:
    """A history written in one fast-import stream (seconds for 1,000+ commits)."""
    lines: list[str] = []

    def commit(mark: int, when: datetime, who: str, message: str, files: dict[str, str]) -> None:
        stamp = int(when.timestamp())
        lines.extend(
            ["commit refs/heads/main", f"mark :{mark}", f"author {who} <{who.lower()}@example.com> {stamp} +0000"]
        )
        lines.append(f"committer {who} <{who.lower()}@example.com> {stamp} +0000")
        data = message.encode()
        lines.append(f"data {len(data)}")
        lines.append(message)
        if mark > 1:
            lines.append(f"from :{mark - 1}")
        for path, content in files.items():
            body = content.encode()
            lines.append(f"M 100644 inline {path}")
            lines.append(f"data {len(body)}")
            lines.append(content)
        lines.append("")

    commit(1, START, "Alice", "wide start", {f"files/f{n:03}.txt": f"one {n}\n" for n in range(WIDE)})
    commit(
        2, START + timedelta(hours=1), "Bob", "wide change", {f"files/f{n:03}.txt": f"two {n}\n" for n in range(WIDE)}
    )
    for n in range(HISTORY):
        who = ("Carol", "Dave", "Erin")[n % 3]
        commit(3 + n, START + timedelta(days=1, hours=n), who, f"step {n}", {"log.txt": f"step {n}\n"})
    stream = ("\n".join(lines) + "\n").encode()
    subprocess.run(["git", "fast-import", "--quiet"], cwd=git_dir, input=stream, check=True, capture_output=True)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Big:
    root = tmp_path_factory.mktemp("big-remotes")
    git_dir = make_bare_remote(root, REPO)
    _fast_import(git_dir)
    shas = git(git_dir, "rev-list", "--reverse", "main").split()
    assert len(shas) == HISTORY + 2
    updates = "".join(f"create refs/tags/t{n:03} {shas[n]}\n" for n in range(TAGS))
    git(git_dir, "update-ref", "--stdin", stdin=updates.encode())
    return Big(root, shas)


@pytest.fixture(scope="module")
def api(big: Big) -> Iterator[GitHubApi]:
    with github_api(big.root) as served:
        yield served


@pytest.fixture
async def github(api: GitHubApi, tmp_path: Path) -> AsyncIterator[GitHubBackend]:
    async with GitHubBackend(github_settings(api.url, tmp_path, [REPO]), StaticToken("test-token")) as backend:
        yield backend


async def test_tags_over_several_pages(github: GitHubBackend, big: Big, api: GitHubApi) -> None:
    snapshot = await github.refs(REPO)
    assert snapshot.tags == {f"t{n:03}": big.shas[n] for n in range(TAGS)}
    assert snapshot.branches == {"main": big.shas[-1]}
    assert len(api.paths("/tags")) == 2


async def test_log_windows_across_pages(github: GitHubBackend, big: Big, api: GitHubApi) -> None:
    head = big.shas[-1]
    newest_first = list(reversed(big.shas))
    window = await github.log(REPO, head, skip=95, limit=11)
    assert [c.sha for c in window] == newest_first[95:106]
    assert [c.subject for c in window[:2]] == [f"step {HISTORY - 96}", f"step {HISTORY - 97}"]
    pages = [p for p in api.paths("/commits\\?") if "per_page=100" in p]
    assert {p.split("page=")[-1] for p in pages} == {"1", "2"}  # two pages of 100 cover the window
    last = await github.log(REPO, head, skip=1040, limit=30)
    assert [c.sha for c in last] == newest_first[1040:]


async def test_author_filter_matches_part_of_the_name(github: GitHubBackend, big: Big) -> None:
    carols = await github.log(REPO, big.shas[-1], author="caro", limit=5)
    assert [c.author_name for c in carols] == ["Carol"] * 5
    assert carols[0].subject == f"step {max(n for n in range(HISTORY) if n % 3 == 0)}"


async def test_a_commit_with_more_than_300_files(github: GitHubBackend, big: Big, api: GitHubApi) -> None:
    found = await github.commit(REPO, big.shas[1], "stats")
    assert len(found.files) == WIDE  # GitHub's second page of files was read
    assert not found.files_truncated
    assert {f.status for f in found.files} == {"modified"}
    assert len(api.paths(f"/commits/{big.shas[1]}")) == 2


async def test_a_comparison_over_300_files_says_it_is_incomplete(github: GitHubBackend, big: Big) -> None:
    found = await github.compare(REPO, big.shas[0], big.shas[2], detail="stats")
    assert len(found.files) == MAX_COMPARE_FILES
    assert found.files_truncated
    small = await github.compare(REPO, big.shas[5], big.shas[9], detail="stats")
    assert [f.path for f in small.files] == ["log.txt"]
    assert not small.files_truncated


async def test_a_long_comparison_returns_the_newest_250_commits_newest_first(github: GitHubBackend, big: Big) -> None:
    found = await github.compare(REPO, big.shas[1], big.shas[-1], detail="none")
    assert (found.ahead_by, found.behind_by, found.merge_base_sha) == (HISTORY, 0, big.shas[1])
    assert [c.sha for c in found.commits] == list(reversed(big.shas))[:MAX_COMPARE_COMMITS]


async def test_analysis_of_a_long_history(github: GitHubBackend, big: Big) -> None:
    facts = await github.analyze(REPO, big.shas[-1])
    assert facts.commit_count == HISTORY + 2  # from the last page, not the 1,000 read
    assert facts.first_commit_at == START
    assert facts.file_count == WIDE + 1
    assert [c.name for c in facts.contributors[:3]] == ["Carol", "Dave", "Erin"]  # GitHub's /contributors
    assert sum(c.commits for c in facts.contributors) == HISTORY + 2


async def test_the_tools_say_when_github_cut_the_file_list(github: GitHubBackend, big: Big, tmp_path: Path) -> None:
    """compare_refs/get_commit over this backend: GitHub's 300-file cap reaches the caller as `truncated` and a
    line in the text."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - name: all\n    repositories: ['acme/big']\n"
        "    subjects: {users: ['*']}\n    operations: ['*']\n"
    )
    events: list[AuditEvent] = []
    services = Services(
        settings=github.settings, backend=github, access=Access(PolicyFile(policy), github), record=events.append
    )
    cut = await compare_refs(
        ToolCall(services, Principal("alice"), "compare_refs"), "acme", "big", big.shas[0], big.shas[2], "stats", None
    )
    whole = await compare_refs(
        ToolCall(services, Principal("alice"), "compare_refs"), "acme", "big", big.shas[5], big.shas[9], "stats", None
    )
    assert cut.structured_content is not None
    assert whole.structured_content is not None
    assert (cut.structured_content["truncated"], len(cut.structured_content["files"])) == (True, MAX_COMPARE_FILES)
    assert cut.content[0].text.endswith(  # type: ignore[union-attr]
        "(the file list is incomplete: the repository source lists only the first changed files)"
    )
    assert whole.structured_content["truncated"] is False
    assert "incomplete" not in whole.content[0].text  # type: ignore[union-attr]
