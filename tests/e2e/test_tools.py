"""Every tool, called over real HTTP by the SDK's own client in both protocol eras, on the demo repositories.

Expected values come from git on the served remotes (never written in by hand). Every successful answer must
name the commit it was read from (`resolved_sha`), equal to the branch tip or the commit asked for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client
from tests.e2e.helpers import Deployment, denial_text, mcp_client, show, structured, text_of, tree_paths
from tests.support.gitrepo import git

pytestmark = pytest.mark.anyio

HANDBOOK = {"owner": "acme", "repo": "handbook"}
PAYMENTS = {"owner": "acme", "repo": "payments"}
VAULT = {"owner": "acme", "repo": "vault"}
VAULT_REASON = (
    "denied by rule 'vault-locked': Production credentials are never readable through an assistant; ask #security"
)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    return structured(await client.call_tool(tool, arguments))


async def denied(client: Client, tool: str, **arguments: Any) -> str:
    """The text of a denial (asserting the call failed as a tool error, not a protocol error)."""
    return denial_text(await client.call_tool(tool, arguments))


# -- repositories and refs --------------------------------------------------------------------------------------


async def test_list_repositories_shows_what_policy_allows(deployment: Deployment, era: str) -> None:
    facts = deployment.facts
    async with mcp_client(deployment, era) as client:
        listed = (await call(client, "list_repositories"))["repositories"]
    assert [(r["name"], r["operations"], r["default_branch"], r["head_sha"]) for r in listed] == [
        ("acme/handbook", ["read", "diff", "analyze", "search"], "main", facts.handbook["main"]),
        ("acme/payments", ["read"], "main", facts.payments["main"]),
    ]  # acme/vault is registered but denied to everyone, so it is not even named
    assert all(r["last_sync_at"] for r in listed)


async def test_list_branches(deployment: Deployment, era: str) -> None:
    facts = deployment.facts
    async with mcp_client(deployment, era) as client:
        handbook = await call(client, "list_branches", **HANDBOOK)
        payments = await call(client, "list_branches", **PAYMENTS)
        paged = await call(client, "list_branches", **HANDBOOK, page=2, per_page=2)
        vault = await denied(client, "list_branches", **VAULT)
    assert [(r["name"], r["sha"]) for r in handbook["refs"]] == [
        ("dev", facts.handbook["dev"]),
        ("feature/search-ranking", facts.handbook["feature/search-ranking"]),
        ("main", facts.handbook["main"]),
    ]
    assert (handbook["default_branch"], handbook["total"]) == ("main", 3)
    # payments has dev and release/2026.10 too, but the rule opens main only
    assert [(r["name"], r["sha"]) for r in payments["refs"]] == [("main", facts.payments["main"])]
    assert payments["total"] == 1
    assert [r["name"] for r in paged["refs"]] == ["main"]
    assert vault.startswith("access denied: denied by rule 'vault-locked': Production credentials are never readable")


async def test_list_tags(deployment: Deployment, era: str) -> None:
    facts = deployment.facts
    async with mcp_client(deployment, era) as client:
        handbook = await call(client, "list_tags", **HANDBOOK)
        payments = await call(client, "list_tags", **PAYMENTS)
    # v1.0 is annotated: the listing names the commit it points at, not the tag object
    assert [(r["name"], r["sha"]) for r in handbook["refs"]] == [
        ("v1.0", facts.handbook["v1.0"]),
        ("v1.1", facts.handbook["v1.1"]),
    ]
    # payments has one tag, which the caller may not read: neither its name nor that there is one shows
    assert (payments["refs"], payments["total"]) == ([], 0)


# -- get_file_contents ------------------------------------------------------------------------------------------


async def test_read_a_file_at_the_default_branch(deployment: Deployment, era: str) -> None:
    main = deployment.facts.handbook["main"]
    expected = show(deployment.remotes["acme/handbook"], main, "README.md")
    async with mcp_client(deployment, era) as client:
        result = await client.call_tool("get_file_contents", {**HANDBOOK, "path": "README.md"})
    out = structured(result)
    assert (out["repository"], out["path"], out["ref"], out["resolved_sha"]) == (
        "acme/handbook",
        "README.md",
        "main",
        main,
    )
    assert (out["type"], out["encoding"], out["truncated"], out["binary"]) == ("file", "utf-8", False, False)
    assert out["content"] == expected.decode()
    assert (out["size"], out["returned_bytes"], out["total_lines"]) == (len(expected), len(expected), 5)
    assert text_of(result).startswith(f"acme/handbook:README.md @ main ({main[:12]}) (lines 1-5 of 5)")


async def test_read_a_line_range(deployment: Deployment, era: str) -> None:
    main = deployment.facts.handbook["main"]
    lines = show(deployment.remotes["acme/handbook"], main, "src/handbook/search.py").decode().splitlines(True)
    async with mcp_client(deployment, era) as client:
        out = await call(
            client, "get_file_contents", **HANDBOOK, path="src/handbook/search.py", start_line=4, end_line=5
        )
    assert out["content"] == "".join(lines[3:5])
    assert (out["start_line"], out["end_line"], out["total_lines"]) == (4, 5, len(lines))
    assert out["resolved_sha"] == main
    # the output schema says: "True when `content` is not the whole file (budget or line range)"
    assert out["truncated"] is True


async def test_read_within_a_byte_budget_is_truncated(deployment: Deployment, era: str) -> None:
    expected = show(deployment.remotes["acme/handbook"], "main", "README.md")
    async with mcp_client(deployment, era) as client:
        result = await client.call_tool("get_file_contents", {**HANDBOOK, "path": "README.md", "max_bytes": 10})
    out = structured(result)
    assert out["content"] == expected[:10].decode() == "# ACME han"
    assert (out["truncated"], out["returned_bytes"], out["size"]) == (True, 10, len(expected))
    assert "truncated: ask for a line range or a larger max_bytes for more" in text_of(result)


async def test_binary_file_is_described_not_returned(deployment: Deployment, era: str) -> None:
    size = int(git(deployment.remotes["acme/handbook"], "cat-file", "-s", "main:assets/logo.png"))
    async with mcp_client(deployment, era) as client:
        result = await client.call_tool("get_file_contents", {**HANDBOOK, "path": "assets/logo.png"})
    out = structured(result)
    assert (out["binary"], out["description"], out["content"], out["encoding"]) == (True, "PNG image", None, "none")
    assert out["size"] == size
    assert out["resolved_sha"] == deployment.facts.handbook["main"]
    assert f"is binary (PNG image, {size} bytes); its content is not returned as text" in text_of(result)
    assert "PNG" in text_of(result)
    assert "\x89" not in text_of(result)


async def test_symlink_is_named_not_followed(deployment: Deployment, era: str) -> None:
    async with mcp_client(deployment, era) as client:
        out = await call(client, "get_file_contents", **HANDBOOK, path="docs/start-here.md")
    assert (out["type"], out["symlink_target"], out["content"]) == ("symlink", "onboarding.md", None)
    assert out["resolved_sha"] == deployment.facts.handbook["main"]


async def test_directory_listing_hides_denied_entries(deployment: Deployment, era: str) -> None:
    main = deployment.facts.handbook["main"]
    async with mcp_client(deployment, era) as client:
        docs = await call(client, "get_file_contents", **HANDBOOK, path="docs")
        config = await call(client, "get_file_contents", **HANDBOOK, path="config/")
    assert docs["type"] == "directory"
    assert {e["path"] for e in docs["entries"]} == tree_paths(deployment.remotes["acme/handbook"], main, "docs")
    assert docs["omitted_by_policy"] == 0
    assert (config["entries"], config["omitted_by_policy"], config["resolved_sha"]) == ([], 1, main)


async def test_read_at_a_tag_a_branch_and_a_sha(deployment: Deployment, era: str) -> None:
    facts, remote = deployment.facts, deployment.remotes["acme/handbook"]
    async with mcp_client(deployment, era) as client:
        at_tag = await call(client, "get_file_contents", **HANDBOOK, path="docs/onboarding.md", ref="v1.0")
        at_dev = await call(client, "get_file_contents", **HANDBOOK, path="docs/onboarding.md", ref="dev")
        at_sha = await call(client, "get_file_contents", **HANDBOOK, path="README.md", ref=facts.handbook["first"])
        payments_main = await call(client, "get_file_contents", **PAYMENTS, path="service/refund.go")
    assert (at_tag["ref"], at_tag["resolved_sha"]) == ("v1.0", facts.handbook["v1.0"])
    assert at_tag["content"] == show(remote, "v1.0", "docs/onboarding.md").decode()
    assert (at_dev["ref"], at_dev["resolved_sha"]) == ("dev", facts.handbook["dev"])
    assert "4. Pair with a buddy for a week." in at_dev["content"]
    assert "buddy" not in at_tag["content"]
    # a raw SHA on main (not a tip): allowed because main reaches it, answered at exactly that commit
    assert at_sha["resolved_sha"] == facts.handbook["first"]
    assert at_sha["content"] == show(remote, facts.handbook["first"], "README.md").decode()
    assert payments_main["resolved_sha"] == facts.payments["main"]
    assert "const MaxRefund = 50_00" in payments_main["content"]


async def test_sha_only_on_a_closed_branch_is_denied(deployment: Deployment, era: str) -> None:
    dev_only = deployment.facts.payments["dev"]
    async with mcp_client(deployment, era) as client:
        by_sha = await denied(client, "get_file_contents", **PAYMENTS, path="service/refund.go", ref=dev_only)
        by_name = await denied(client, "get_file_contents", **PAYMENTS, path="service/refund.go", ref="dev")
        by_prefix = await denied(client, "get_file_contents", **PAYMENTS, path="service/refund.go", ref=dev_only[:10])
    assert by_sha == (
        f"access denied: commit {dev_only[:12]} is not reachable from any branch or tag you may read in "
        "acme/payments (allowed: main), or no commit has that id"
    )
    assert by_prefix == by_sha.replace(dev_only[:12], dev_only[:10])  # the prefix as given: no digit more
    assert by_name == "access denied: ref 'dev' is not allowed by rule 'payments-main-read-only' (allowed: main)"
    assert "500_00" not in by_sha + by_name


async def test_secret_file_denied_by_default_deny_list(deployment: Deployment, era: str) -> None:
    async with mcp_client(deployment, era) as client:
        result = await client.call_tool("get_file_contents", {**HANDBOOK, "path": "config/.env"})
        upper = await client.call_tool("get_file_contents", {**HANDBOOK, "path": "config/.ENV"})
    reason = "path 'config/.env' is denied by the default deny list (pattern '.env')"
    assert denial_text(result) == f"access denied: {reason}"
    assert result.meta is not None
    assert result.meta["mcp-bastion/error"] == {
        "error": "access_denied",
        "message": reason,
        "reason": reason,
        "rule": None,
    }
    assert "not-a-real-password" not in text_of(result)
    # deny matching ignores case: a differently spelled name is still refused (and never found on disk)
    assert denial_text(upper).startswith("access denied: path 'config/.ENV' is denied by the default deny list")


async def test_file_over_the_size_limit_is_denied(deployment: Deployment, era: str) -> None:
    size = int(git(deployment.remotes["acme/handbook"], "cat-file", "-s", "main:data/large-export.csv"))
    assert size > 1024 * 1024
    async with mcp_client(deployment, era) as client:
        text = await denied(client, "get_file_contents", **HANDBOOK, path="data/large-export.csv")
        ranged = await denied(client, "get_file_contents", **HANDBOOK, path="data/large-export.csv", start_line=1)
    mib = f"{size / 1024 / 1024:.1f}"
    assert text == (
        f"access denied: file is {mib} MiB, over the 1.0 MiB limit of the policy's defaults.max_file_size "
        "(a limit on the whole file: a line range does not lift it)"
    )
    assert ranged == text  # a line range does not get around the limit


async def test_a_diff_carries_no_more_of_a_file_than_a_read_may(deployment: Deployment, era: str) -> None:
    """The commit that added the 1.6 MiB CSV: its stats are shown, its patch is withheld by the size limit."""
    remote = deployment.remotes["acme/handbook"]
    added = git(remote, "log", "--format=%H", "-1", "main", "--", "data/large-export.csv").strip()
    parent = git(remote, "rev-parse", f"{added}~1").strip()
    mib = f"{int(git(remote, 'cat-file', '-s', f'{added}:data/large-export.csv')) / 1024 / 1024:.1f}"
    async with mcp_client(deployment, era) as client:
        commit = await call(client, "get_commit", **HANDBOOK, sha=added, detail="full_patch")
        compared = await call(client, "compare_refs", **HANDBOOK, base=parent, head=added, detail="full_patch")
    for answer in (commit, compared):
        [csv] = [f for f in answer["files"] if f["path"] == "data/large-export.csv"]
        assert csv["patch"] is None
        assert csv["patch_withheld"] == (
            f"patch withheld: file is {mib} MiB, over the 1.0 MiB limit of the policy's defaults.max_file_size"
        )
        assert csv["additions"] == 60_001  # the stats still tell what changed
        assert "employee-000042" not in str(answer)


async def test_vault_is_denied_with_the_rules_reason(deployment: Deployment, era: str) -> None:
    async with mcp_client(deployment, era) as client:
        text = await denied(client, "get_file_contents", **VAULT, path="README.md")
        tree = await denied(client, "get_repository_tree", **VAULT)
    assert text == tree == f"access denied: {VAULT_REASON}"


# -- get_repository_tree ----------------------------------------------------------------------------------------


async def test_repository_tree(deployment: Deployment, era: str) -> None:
    facts, remote = deployment.facts, deployment.remotes["acme/handbook"]
    async with mcp_client(deployment, era) as client:
        everything = await call(client, "get_repository_tree", **HANDBOOK)
        top = await call(client, "get_repository_tree", **HANDBOOK, recursive=False)
        src = await call(client, "get_repository_tree", **HANDBOOK, path_filter="src", ref="feature/search-ranking")
    all_paths = tree_paths(remote, facts.handbook["main"])
    assert "config/.env" in all_paths
    assert {e["path"] for e in everything["entries"]} == all_paths - {"config/.env"}
    assert (everything["omitted_by_policy"], everything["truncated"], everything["recursive"]) == (1, False, True)
    assert everything["resolved_sha"] == facts.handbook["main"]
    by_path = {e["path"]: e for e in everything["entries"]}
    assert (by_path["docs/start-here.md"]["mode"], by_path["src"]["type"]) == ("120000", "tree")
    assert by_path["README.md"]["sha"] == git(remote, "rev-parse", "main:README.md")
    assert {e["path"] for e in top["entries"]} == {p for p in all_paths if "/" not in p}
    assert {e["path"] for e in src["entries"]} == tree_paths(remote, facts.handbook["feature/search-ranking"], "src")
    assert (src["path"], src["resolved_sha"]) == ("src", facts.handbook["feature/search-ranking"])


# -- search_code ------------------------------------------------------------------------------------------------


def _grep(deployment: Deployment, pattern: str, commit: str = "main") -> set[tuple[str, int]]:
    out = git(deployment.remotes["acme/handbook"], "grep", "-n", "-i", "-I", "-F", "-e", pattern, commit, "--")
    found: set[tuple[str, int]] = set()
    for line in out.splitlines():
        _, path, number, _ = line.split(":", 3)
        found.add((path, int(number)))
    return found


async def test_search_across_repositories_never_shows_denied_paths(deployment: Deployment, era: str) -> None:
    main = deployment.facts.handbook["main"]
    expected = _grep(deployment, "handbook")
    assert ("config/.env", 2) in expected  # the credential file mentions it too
    async with mcp_client(deployment, era) as client:
        everywhere = await call(client, "search_code", query="handbook")
        secret = await call(client, "search_code", query="AKIADEMO")
    # only handbook may be searched: payments allows read only, vault nothing (neither is named)
    assert [(s["repository"], s["ref"], s["resolved_sha"], s["engine"]) for s in everywhere["searched"]] == [
        ("acme/handbook", "main", main, "ripgrep")
    ]
    assert everywhere["skipped"] == []
    assert {(h["path"], h["line_number"]) for h in everywhere["hits"]} == expected - {("config/.env", 2)}
    assert all(h["resolved_sha"] == main and h["repository"] == "acme/handbook" for h in everywhere["hits"])
    assert (secret["hits"], secret["truncated"]) == ([], False)


async def test_search_in_one_repository_with_regex(deployment: Deployment, era: str) -> None:
    async with mcp_client(deployment, era) as client:
        regex = await call(client, "search_code", query=r"def \w+\(", owner="acme", repo="handbook", regex=True)
        literal = await call(client, "search_code", query=r"def \w+\(", repo="acme/handbook")
        case = await call(client, "search_code", query="acme HANDBOOK", repo="acme/handbook", case_sensitive=True)
        payments = await denied(client, "search_code", query="Balance", **PAYMENTS)
    assert [(h["path"], h["line_number"], h["line"]) for h in regex["hits"]] == [
        ("src/handbook/search.py", 4, "def search(pages: dict[str, str], term: str) -> list[str]:")
    ]
    assert literal["hits"] == []
    assert case["hits"] == []
    assert payments == "access denied: no rule allows search on acme/payments for alice (groups: eng)"


async def test_search_at_a_non_default_ref_uses_git_grep(deployment: Deployment, era: str) -> None:
    tip = deployment.facts.handbook["feature/search-ranking"]
    async with mcp_client(deployment, era) as client:
        out = await call(
            client, "search_code", query="most mentions", repo="acme/handbook", ref="feature/search-ranking"
        )
        on_main = await call(client, "search_code", query="most mentions", repo="acme/handbook")
        env = await call(client, "search_code", query="AKIADEMO", repo="acme/handbook", ref="dev")
    assert [(s["engine"], s["ref"], s["resolved_sha"]) for s in out["searched"]] == [
        ("git-grep", "feature/search-ranking", tip)
    ]
    assert {(h["path"], h["line_number"]) for h in out["hits"]} == _grep(deployment, "most mentions", tip)
    assert len(out["hits"]) == 1
    assert on_main["hits"] == []
    assert env["hits"] == []  # the deny list applies to git grep results as well


# -- history ----------------------------------------------------------------------------------------------------


async def test_list_commits(deployment: Deployment, era: str) -> None:
    facts = deployment.facts.handbook
    now = datetime.now(UTC)
    async with mcp_client(deployment, era) as client:
        everything = await call(client, "list_commits", **HANDBOOK)
        on_path = await call(client, "list_commits", **HANDBOOK, path="docs/onboarding.md", ref="dev")
        by_author = await call(client, "list_commits", **HANDBOOK, author="Grace")
        recent = await call(client, "list_commits", **HANDBOOK, since=(now - timedelta(days=30)).date().isoformat())
        old = await call(client, "list_commits", **HANDBOOK, until=(now - timedelta(days=60)).isoformat())
        page2 = await call(client, "list_commits", **HANDBOOK, per_page=1, page=2)
        page3 = await call(client, "list_commits", **HANDBOOK, per_page=1, page=3)
        payments = await call(client, "list_commits", **PAYMENTS)

    def shas(out: dict[str, Any]) -> list[str]:
        return [c["sha"] for c in out["commits"]]

    assert shas(everything) == [facts["main"], facts["second"], facts["first"]]
    assert everything["resolved_sha"] == facts["main"]
    first = everything["commits"][2]
    assert (first["subject"], first["author_name"], first["author_email"], first["parents"]) == (
        "Start the handbook",
        "Ada Lovelace",
        "ada@acme.example",
        [],
    )
    assert shas(on_path) == [facts["dev"], facts["first"]]
    assert (on_path["path"], on_path["resolved_sha"]) == ("docs/onboarding.md", facts["dev"])
    assert shas(by_author) == [facts["second"]]
    assert shas(recent) == [facts["main"]]
    assert shas(old) == [facts["first"]]
    assert (shas(page2), page2["has_more"], shas(page3), page3["has_more"]) == (
        [facts["second"]],
        True,
        [facts["first"]],
        False,
    )
    assert shas(payments) == [deployment.facts.payments["main"], deployment.facts.payments["first"]]


async def test_get_commit_detail_levels(deployment: Deployment, era: str) -> None:
    second = deployment.facts.handbook["second"]
    async with mcp_client(deployment, era) as client:
        none = await call(client, "get_commit", **HANDBOOK, sha=second, detail="none")
        stats = await call(client, "get_commit", **HANDBOOK, sha=second)
        patch_result = await client.call_tool("get_commit", {**HANDBOOK, "sha": second, "detail": "full_patch"})
        payments_stats = await call(client, "get_commit", **PAYMENTS, sha="main")
        payments_patch = await denied(client, "get_commit", **PAYMENTS, sha="main", detail="full_patch")
    for out in (none, stats):
        assert (out["resolved_sha"], out["commit"]["sha"]) == (second, second)
        assert out["commit"]["subject"] == "Add renderer, logo, style guide and local config"
    assert (none["files"], none["stats"]) == ([], None)
    assert [(f["path"], f["status"], f["additions"], f["patch"]) for f in stats["files"]] == [
        ("assets/logo.png", "added", 0, None),
        ("docs/start-here.md", "added", 1, None),
        ("docs/style.md", "added", 4, None),
        ("web/render.ts", "added", 3, None),
    ]
    assert stats["omitted_by_policy"] == 1  # config/.env
    assert stats["stats"] == {"files": 4, "additions": 8, "deletions": 0}
    full = structured(patch_result)
    by_path = {f["path"]: f for f in full["files"]}
    assert "+export function render(markdown: string): string {" in by_path["web/render.ts"]["patch"]
    assert full["omitted_by_policy"] == 1
    assert "not-a-real-password" not in text_of(patch_result)
    assert "config/.env" not in text_of(patch_result)
    assert payments_stats["resolved_sha"] == deployment.facts.payments["main"]
    assert [f["path"] for f in payments_stats["files"]] == ["service/refund.go"]
    # the payments rule allows read only: a patch is a diff, so it is refused
    assert payments_patch == "access denied: no rule allows diff on acme/payments for alice (groups: eng)"


async def test_compare_refs(deployment: Deployment, era: str) -> None:
    facts = deployment.facts.handbook
    async with mcp_client(deployment, era) as client:
        dev = await call(client, "compare_refs", **HANDBOOK, base="main", head="dev", detail="full_patch")
        release = await call(client, "compare_refs", **HANDBOOK, base="v1.0", head="main", path="docs")
        wide_result = await client.call_tool("compare_refs", {**HANDBOOK, "base": "v1.0", "head": "main"})
        dev_text = text_of(await client.call_tool("compare_refs", {**HANDBOOK, "base": "main", "head": "dev"}))
        payments = await denied(client, "compare_refs", **PAYMENTS, base="main", head="dev")
    wide = structured(wide_result)
    # the counts cover the files listed: the text says so when policy hid one
    assert f"{wide['stats']['files']} files changed" in text_of(wide_result)
    assert "(counting the files listed below)" in text_of(wide_result).splitlines()[1]
    assert "files changed" in dev_text
    assert "counting the files listed" not in dev_text
    assert (dev["base"], dev["head"]) == (
        {"ref": "main", "sha": facts["main"]},
        {"ref": "dev", "sha": facts["dev"]},
    )
    assert (dev["resolved_sha"], dev["merge_base_sha"], dev["ahead_by"], dev["behind_by"]) == (
        facts["dev"],
        facts["main"],
        1,
        0,
    )
    assert [c["sha"] for c in dev["commits"]] == [facts["dev"]]
    assert [(f["path"], f["status"]) for f in dev["files"]] == [("docs/onboarding.md", "modified")]
    assert "+4. Pair with a buddy for a week." in dev["files"][0]["patch"]
    assert [f["path"] for f in release["files"]] == ["docs/start-here.md", "docs/style.md"]
    assert (release["ahead_by"], release["resolved_sha"]) == (2, facts["main"])
    assert wide["omitted_by_policy"] == 1
    assert "config/.env" not in {f["path"] for f in wide["files"]}
    assert payments == "access denied: no rule allows diff on acme/payments for alice (groups: eng)"


async def test_analyze_repository(deployment: Deployment, era: str) -> None:
    remote, main = deployment.remotes["acme/handbook"], deployment.facts.handbook["main"]
    files = git(remote, "ls-tree", "-r", "--name-only", "main").splitlines()
    async with mcp_client(deployment, era) as client:
        out = await call(client, "analyze_repository", **HANDBOOK)
        at_tag = await call(client, "analyze_repository", **HANDBOOK, ref="v1.0")
        payments = await denied(client, "analyze_repository", **PAYMENTS)
    assert (out["resolved_sha"], out["ref"], out["file_count"], out["commit_count"]) == (main, "main", len(files), 3)
    assert out["largest_files"][0]["path"] == "data/large-export.csv"
    assert "config/.env" not in {e["path"] for e in out["largest_files"]}  # counted, never named
    assert sorted((c["name"], c["commits"]) for c in out["contributors"]) == [
        ("Ada Lovelace", 1),
        ("Alan Turing", 1),
        ("Grace Hopper", 1),
    ]
    assert set(out["languages"]) >= {"Python", "Markdown", "TypeScript", "CSV"}
    assert (out["commits_last_30_days"], out["commits_last_90_days"]) == (1, 3)
    assert (at_tag["resolved_sha"], at_tag["commit_count"]) == (deployment.facts.handbook["v1.0"], 1)
    assert payments == "access denied: no rule allows analyze on acme/payments for alice (groups: eng)"
