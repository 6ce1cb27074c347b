"""Bad input, one class per test, over real HTTP with the SDK's client: each call gets an error that says what is
wrong, the audit records the refusal with that reason, and nothing changes (no file under the data directory
appears or disappears, no ref of any mirror moves, no file an injected option would write exists)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from tests.e2e.helpers import Deployment, mcp_client, snapshot, structured, text_of

pytestmark = pytest.mark.anyio

HANDBOOK = {"owner": "acme", "repo": "handbook"}


class Refusals:
    """Calls that must fail; remembers each (tool, outcome, reason) to compare with the audit afterwards."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.expected: list[tuple[str, str, str]] = []

    async def __call__(self, tool: str, outcome: str, **arguments: Any) -> str:
        result = await self.client.call_tool(tool, arguments)
        text = text_of(result)
        assert result.is_error, f"{tool}({arguments}) was not refused: {text[:300]}"
        title, _, reason = text.partition(": ")
        assert title == {"invalid_input": "invalid input", "not_found": "not found", "denied": "access denied"}[outcome]
        self.expected.append((tool, outcome, reason))
        return text

    async def allowed(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """A call that must succeed (bad-looking input that is in fact fine); audited as allowed."""
        out = structured(await self.client.call_tool(tool, arguments))
        self.expected.append((tool, "ok", "allowed by rule 'handbook-open'"))
        return out


@pytest.fixture
async def refuse(deployment: Deployment, era: str, request: pytest.FixtureRequest) -> AsyncGenerator[Refusals]:
    """A client whose every request carries one request id; on teardown, checks the audit and that nothing
    changed."""
    request_id = f"e2e-bad-{request.node.name}".replace("[", "-").replace("]", "")[:64]
    before = snapshot(deployment)
    async with mcp_client(deployment, era, headers={"X-Request-Id": request_id}) as client:
        refusals = Refusals(client)
        yield refusals
    assert snapshot(deployment) == before
    events = await deployment.audit_for(request_id)
    assert [(e.tool, e.outcome, e.reason) for e in events] == refusals.expected
    for event in events:
        assert (event.subject, event.source_ip) == ("alice", "127.0.0.1")
        if event.outcome != "ok":
            assert event.bytes_returned == 0
        if event.outcome == "denied":
            assert event.decision == "deny"
        else:  # "allow" on a refused call: policy allowed the repository before the input was found wrong
            assert event.decision in ("allow", "none")


def _option(value: str, what: str = "ref") -> str:
    return f"invalid input: {what} '{value}' starts with '-' (looks like a command-line option)"


async def test_option_like_refs_and_paths(refuse: Refusals, tmp_path: Path) -> None:
    written = tmp_path / "written-by-git"
    output = f"--output={written}"
    assert await refuse("get_file_contents", "invalid_input", **HANDBOOK, path="README.md", ref="--upload-pack=x") == (
        _option("--upload-pack=x")
    )
    assert await refuse("list_commits", "invalid_input", **HANDBOOK, ref="-c") == _option("-c")
    assert await refuse("compare_refs", "invalid_input", **HANDBOOK, base=output, head="main") == _option(output)
    assert await refuse("get_commit", "invalid_input", **HANDBOOK, sha="--upload-pack=x") == _option("--upload-pack=x")
    assert await refuse("get_file_contents", "invalid_input", **HANDBOOK, path=output) == _option(output, "path")
    assert await refuse("list_commits", "invalid_input", **HANDBOOK, path=output) == _option(output, "path")
    assert await refuse("get_repository_tree", "invalid_input", **HANDBOOK, path_filter="-c") == _option("-c", "path")
    assert await refuse("list_branches", "invalid_input", owner="-c", repo="handbook") == (
        "invalid input: repository name segment '-c' starts with '-' (looks like an option)"
    )
    assert await refuse("search_code", "invalid_input", query="x", repo="acme/handbook", path_glob="--pre=sh") == (
        "invalid input: path_glob must be one glob like 'src/**/*.py' (no '!' negation, no options)"
    )
    # A query that looks like an option is searched for as text by both engines, never run as one.
    for ref in (None, "dev"):  # ripgrep on the default branch's checkout, git grep at another ref
        found = await refuse.allowed(
            "search_code", query=f"--open-files-in-pager=touch {written}", repo="acme/handbook", ref=ref
        )
        assert found["hits"] == []
    assert not written.exists()


async def test_dot_dot_and_absolute_paths(refuse: Refusals) -> None:
    def traversal(path: str) -> str:
        return f"invalid input: path '{path}' contains a '..' segment (or an encoded one); paths stay inside the repo"

    for path in ("../../etc/passwd", "docs/../config/.env", "%2e%2e/%2E%2E/etc/passwd"):
        assert await refuse("get_file_contents", "invalid_input", **HANDBOOK, path=path) == traversal(path)
    assert await refuse("get_repository_tree", "invalid_input", **HANDBOOK, path_filter="src/../..") == traversal(
        "src/../.."
    )
    assert await refuse("get_file_contents", "invalid_input", **HANDBOOK, path="/etc/passwd") == (
        "invalid input: path '/etc/passwd' is absolute; paths are relative to the repository root (e.g. 'src/app.py')"
    )
    assert await refuse("list_commits", "invalid_input", **HANDBOOK, path="/etc") == (
        "invalid input: path '/etc' is absolute; paths are relative to the repository root (e.g. 'src/app.py')"
    )
    assert await refuse("get_file_contents", "invalid_input", owner="acme", repo="../vault", path="README.md") == (
        "invalid input: repository name 'acme/../vault' contains a '..' segment"
    )
    assert await refuse("get_file_contents", "invalid_input", **HANDBOOK, path="README.md", ref="main..dev") == (
        "invalid input: ref 'main..dev' contains '..'; compare two refs with the compare tool instead"
    )


async def test_nul_bytes(refuse: Refusals) -> None:
    nul = "'\\x00' (U+0000 unnamed character)"
    assert await refuse("get_file_contents", "invalid_input", **HANDBOOK, path="README.md\x00.png") == (
        f"invalid input: path contains a control character {nul}"
    )
    assert await refuse("get_file_contents", "invalid_input", **HANDBOOK, path="README.md", ref="main\x00") == (
        f"invalid input: ref contains a control character {nul}"
    )
    assert await refuse("list_branches", "invalid_input", owner="acme", repo="hand\x00book") == (
        f"invalid input: repository name contains a control character {nul}"
    )
    assert await refuse("search_code", "invalid_input", query="handbook\x00", repo="acme/handbook") == (
        "invalid input: query must be a single line without NUL characters"
    )
    assert await refuse("list_commits", "invalid_input", **HANDBOOK, author="Ada\x00") == (
        "invalid input: author must be a single line of at most 200 characters"
    )


async def test_unknown_repositories(refuse: Refusals) -> None:
    """Policy is asked before the registry, so an unknown repository reads exactly like one the caller may not
    use: the answer never tells whether it exists."""
    for owner, repo in (("acme", "does-not-exist"), ("other", "handbook")):
        assert await refuse("get_file_contents", "denied", owner=owner, repo=repo, path="README.md") == (
            f"access denied: no rule allows read on {owner}/{repo} for alice (groups: eng)"
        )
    assert await refuse("search_code", "denied", query="x", repo="acme/does-not-exist") == (
        "access denied: no rule allows search on acme/does-not-exist for alice (groups: eng)"
    )
    assert await refuse("search_code", "denied", query="x", owner="other") == (
        "access denied: no repository of other is open to you for search"
    )


async def test_missing_refs_and_paths(refuse: Refusals, deployment: Deployment) -> None:
    assert await refuse("get_file_contents", "not_found", **HANDBOOK, path="README.md", ref="no-such-branch") == (
        "not found: ref 'no-such-branch' not found in acme/handbook"
    )
    missing_sha = "0123456789abcdef0123456789abcdef01234567"
    assert missing_sha not in deployment.facts.handbook.values()
    # Refused in the words used for a commit the caller may not reach (tests/tools/test_access.py says why).
    assert await refuse("list_commits", "denied", **HANDBOOK, ref=missing_sha) == (
        f"access denied: commit {missing_sha[:12]} is not reachable from any branch or tag you may read in "
        "acme/handbook (allowed: main, dev, feature/search-ranking, v1.0, v1.1), or no commit has that id"
    )
    assert await refuse("compare_refs", "not_found", **HANDBOOK, base="main", head="release/9.9") == (
        "not found: ref 'release/9.9' not found in acme/handbook"
    )
    main = deployment.facts.handbook["main"][:12]
    assert await refuse("get_file_contents", "not_found", **HANDBOOK, path="docs/no-such-page.md") == (
        f"not found: path 'docs/no-such-page.md' not found at {main} in acme/handbook"
    )
    assert await refuse("get_repository_tree", "not_found", **HANDBOOK, path_filter="no-such-dir") == (
        f"not found: path 'no-such-dir' not found at {main} in acme/handbook"
    )


async def test_huge_line_ranges_and_budgets(refuse: Refusals, deployment: Deployment) -> None:
    readme = {**HANDBOOK, "path": "README.md"}
    assert await refuse("get_file_contents", "invalid_input", **readme, start_line=1_000_000) == (
        "invalid input: start_line 1000000 is past the end (the file has 5 lines)"
    )
    assert await refuse("get_file_contents", "invalid_input", **readme, start_line=2**62) == (
        f"invalid input: start_line {2**62} is past the end (the file has 5 lines)"
    )
    assert await refuse("get_file_contents", "invalid_input", **readme, start_line=4, end_line=2) == (
        "invalid input: end_line (2) is before start_line (4)"
    )
    # Ranges and budgets larger than the file are clipped to it, not refused.
    tail = await refuse.allowed("get_file_contents", **readme, start_line=3, end_line=10**12)
    assert (tail["start_line"], tail["end_line"], tail["total_lines"]) == (3, 5, 5)
    whole = await refuse.allowed("get_file_contents", **readme, max_bytes=10**18)
    assert (whole["truncated"], whole["returned_bytes"], whole["size"]) == (False, whole["size"], whole["size"])
    assert whole["resolved_sha"] == deployment.facts.handbook["main"]


async def test_arguments_failing_the_schema_or_unknown(refuse: Refusals) -> None:
    """The SDK checks arguments against the tool's signature before any body runs; the refusal names each argument
    in our words (not pydantic's, with its model name and documentation link), and an argument the tool does not
    take is refused instead of dropped: `sha` (github-mcp-server's name) must not read the default branch."""
    readme = {**HANDBOOK, "path": "README.md"}
    assert await refuse("get_file_contents", "invalid_input", **readme, start_line=0) == (
        "invalid input: start_line: input should be greater than or equal to 1 (got 0)"
    )
    assert await refuse("get_file_contents", "invalid_input", **readme, max_bytes="lots") == (
        "invalid input: max_bytes: input should be a valid integer, unable to parse string as an integer (got 'lots')"
    )
    assert await refuse("get_commit", "invalid_input", **HANDBOOK, sha="main", detail="everything") == (
        "invalid input: detail: input should be 'none', 'stats' or 'full_patch' (got 'everything')"
    )
    assert await refuse("list_branches", "invalid_input", owner="acme") == "invalid input: repo is required"
    assert await refuse("get_file_contents", "invalid_input", **readme, sha="v1.0") == (
        "invalid input: get_file_contents has no argument 'sha' "
        "(it takes: owner, repo, path, ref, start_line, end_line, max_bytes)"
    )
    assert await refuse("list_repositories", "invalid_input", owner="acme", repo="handbook") == (
        "invalid input: list_repositories has no arguments 'owner', 'repo' (it takes: no arguments)"
    )
    huge = "x" * 10_000
    text = await refuse("search_code", "invalid_input", query="needle", max_results=huge)
    assert huge not in text
    assert len(text) < 200, text
