"""Adversarial: ways a caller might try to read what policy denies (issue 3, policy bypass).

Each case goes through the real server over HTTP with the MCP SDK's own client, in both protocol eras, against
`policy_target`'s repositories. Every refusal is asserted by its exact text (what was refused and why), every
response's raw bytes are searched for the target's canaries (secret lines, the vault's content and head SHA, the
closed branch's and the pull request's content, /etc/passwd), and every refusal must have left one audit record
with the same outcome, decision, reason and rule.

Which defence each group relies on is named in its docstring; docs/security.md maps them to the threats.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncGenerator, Generator
from pathlib import Path

import pytest
from tests.e2e.helpers import ERAS
from tests.security.policy_target import (
    APP,
    CONFIG_ENV_LINE,
    PASSWD_LINE,
    VAULT_REASON,
    Prober,
    Target,
    deploy_target,
    prober,
    resync,
)
from tests.support.gitrepo import git

from bastion.audit.render import render_line

pytestmark = pytest.mark.anyio

RULE = "eng-read"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Generator[Target]:
    with deploy_target(tmp_path_factory.mktemp("red-team")) as running:
        yield running


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def probe(target: Target, era: str, request: pytest.FixtureRequest) -> AsyncGenerator[Prober]:
    label = re.sub(r"[^A-Za-z0-9._:-]", "-", request.node.name)[-48:]
    async with prober(target, era, label) as prober_:
        yield prober_


# -- the repository name ---------------------------------------------------------------------------------------


async def test_the_denied_repository_under_other_spellings(probe: Prober) -> None:
    """Case changes reach the deny rule (repository globs match case-insensitively, and the registry's canonical
    name is asked about again); everything else that could name the same mirror is refused before policy:
    trailing dots and slashes, `.git`, percent-encoding, non-ASCII look-alikes, empty and dot segments."""
    for owner, repo in (("ACME", "Vault"), ("acme", "VAULT"), ("Acme", "vAuLt")):
        await probe.refused(
            "get_file_contents", "denied", VAULT_REASON, rule="vault-locked", owner=owner, repo=repo, path="README.md"
        )
    refused_names = {
        ("acme", "vault."): "repository name segment 'vault.' ends with '.'",
        ("acme", "vault/"): "repository name 'acme/vault/' ends with '/': use 'owner/repo'",
        ("acme", "vault.git"): "repository names have no .git suffix: use 'acme/vault'",
        ("ACME", "Vault.GIT"): "repository names have no .git suffix: use 'ACME/Vault'",
        ("acme", "vault.git/"): "repository name 'acme/vault.git/' ends with '/': use 'owner/repo'",
        ("acme", "v%61ult"): "repository name contains '%': percent-encoding is not accepted, send the plain name",
        ("acme", "%2e%2e/vault"): "repository name contains '%': percent-encoding is not accepted, send the plain name",
        ("acme", "%2Fvault"): "repository name contains '%': percent-encoding is not accepted, send the plain name",
        ("acme", "v\u0430ult"): (
            "repository name contains the non-ASCII character 'а' (U+0430 CYRILLIC SMALL LETTER A); names are "
            "ASCII letters, digits, '.', '_' and '-' (look-alike characters are refused)"
        ),
        ("\uff41cme", "vault"): (
            "repository name contains the non-ASCII character 'ａ' (U+FF41 FULLWIDTH LATIN SMALL LETTER A); names "
            "are ASCII letters, digits, '.', '_' and '-' (look-alike characters are refused)"
        ),
        ("acme", "vau\u200blt"): ("repository name contains a control character '\\u200b' (U+200B ZERO WIDTH SPACE)"),
        ("acme", "vault "): "repository name contains whitespace",
        ("acme", "/vault"): "repository name 'acme//vault' has an empty segment ('//' or a leading '/')",
        ("acme", "./vault"): "repository name 'acme/./vault' contains a '.' segment",
        ("acme", ".vault"): "repository name segment '.vault' starts with '.'",
    }
    for (owner, repo), reason in refused_names.items():
        await probe.refused("get_file_contents", "invalid_input", reason, owner=owner, repo=repo, path="README.md")
    # The same spellings through the other tools that take a repository.
    await probe.refused("list_branches", "denied", VAULT_REASON, rule="vault-locked", owner="ACME", repo="VAULT")
    await probe.refused("list_tags", "denied", VAULT_REASON, rule="vault-locked", owner="acme", repo="Vault")
    await probe.refused("get_repository_tree", "denied", VAULT_REASON, rule="vault-locked", owner="acme", repo="VAULT")
    await probe.refused("list_commits", "denied", VAULT_REASON, rule="vault-locked", owner="Acme", repo="Vault")
    await probe.refused(
        "get_commit", "denied", VAULT_REASON, rule="vault-locked", owner="acme", repo="VAULT", sha="main"
    )
    await probe.refused(
        "compare_refs", "denied", VAULT_REASON, rule="vault-locked", owner="ACME", repo="vault", base="main",
        head="main",
    )  # fmt: skip
    await probe.refused("analyze_repository", "denied", VAULT_REASON, rule="vault-locked", owner="acme", repo="VAULT")
    await probe.refused("search_code", "denied", VAULT_REASON, rule="vault-locked", query="VAULT", repo="ACME/VAULT")
    await probe.refused(
        "search_code", "denied", VAULT_REASON, rule="vault-locked", query="VAULT", owner="acme", repo="Vault"
    )
    await probe.refused(
        "search_code", "invalid_input", "repository names have no .git suffix: use 'acme/vault'",
        query="VAULT", repo="acme/vault.git",
    )  # fmt: skip
    await probe.verify_audit()


async def test_tricks_across_the_owner_repo_split(probe: Prober) -> None:
    """owner and repo are joined into one name and validated as a whole, so `..`, `.` and empty segments are
    refused wherever they sit; a name that only looks like the vault plus a path is another (unknown) repository,
    which no rule allows."""
    cases = {
        ("acme/..", "vault"): "repository name 'acme/../vault' contains a '..' segment",
        ("acme/../acme", "vault"): "repository name 'acme/../acme/vault' contains a '..' segment",
        ("acme", "app/../vault"): "repository name 'acme/app/../vault' contains a '..' segment",
        ("acme/app/..", "vault"): "repository name 'acme/app/../vault' contains a '..' segment",
        ("acme/.", "vault"): "repository name 'acme/./vault' contains a '.' segment",
        ("acme/", "vault"): "repository name 'acme//vault' has an empty segment ('//' or a leading '/')",
        ("", "acme/vault"): "repository name '/acme/vault' has an empty segment ('//' or a leading '/')",
        ("acme/vault", ""): "repository name 'acme/vault/' ends with '/': use 'owner/repo'",
        ("..", "acme/vault"): "repository name '../acme/vault' contains a '..' segment",
    }
    for (owner, repo), reason in cases.items():
        await probe.refused("get_file_contents", "invalid_input", reason, owner=owner, repo=repo, path="README.md")
    await probe.refused(
        "get_file_contents",
        "denied",
        "no rule allows read on acme/vault/README.md for mallory (groups: eng)",
        owner="acme/vault",
        repo="README.md",
    )
    await probe.verify_audit()


async def test_the_vault_is_never_named_in_listings_or_searches(probe: Prober) -> None:
    """Repository-level policy filters what list_repositories shows and what a search across repositories
    covers: the vault is not listed, not searched, and not mentioned among skipped repositories."""
    listed = await probe.allowed("list_repositories")
    assert [r["name"] for r in listed["repositories"]] == ["acme/app", "tools/my"]
    for owner in (None, "acme", "ACME"):
        arguments = {"query": "VAULT-CANARY"} | ({"owner": owner} if owner else {})
        found = await probe.allowed("search_code", **arguments)
        assert found["hits"] == []
        assert [s["repository"] for s in found["searched"]] == (
            ["acme/app", "tools/my"] if owner is None else ["acme/app"]
        )
        assert found["skipped"] == []
    await probe.verify_audit()


async def test_an_exact_repository_pattern_does_not_reach_a_longer_name(probe: Prober, target: Target) -> None:
    """Seed 000's bug: its name extraction stopped at the first '.', so a rule for `org/my` also allowed
    `org/my.secret-repo`. Globs here are anchored regexes with every other character literal."""
    readme = await probe.allowed("get_file_contents", owner="tools", repo="my", path="README.md")
    assert readme["content"] == "my tool\n"
    for repo in ("my.secret-repo", "MY.SECRET-REPO", "my.secret"):
        await probe.refused(
            "get_file_contents",
            "denied",
            f"no rule allows read on tools/{repo} for mallory (groups: eng)",
            owner="tools",
            repo=repo,
            path="README.md",
        )
    await probe.refused(
        "search_code", "denied", "no rule allows search on tools/my.secret-repo for mallory (groups: eng)",
        query="MYSECRET", repo="tools/my.secret-repo",
    )  # fmt: skip
    found = await probe.allowed("search_code", query="MYSECRET", owner="tools")
    assert (found["hits"], [s["repository"] for s in found["searched"]]) == ([], ["tools/my"])
    await probe.verify_audit()


# -- paths -------------------------------------------------------------------------------------------------------


def _denied_path(path: str, pattern: str) -> str:
    if pattern == "secrets/**":
        return f"path '{path}' is denied by rule '{RULE}' (pattern 'secrets/**')"
    return f"path '{path}' is denied by the default deny list (pattern '{pattern}')"


async def test_paths_that_spell_a_denied_file_differently(probe: Prober) -> None:
    """Paths are normalised (`./`, `//`, a trailing `/`) before policy sees them, and deny patterns match
    case-insensitively at any depth and on every ancestor directory: each spelling reaches the same denial."""
    cases = {
        ".env": (".env", ".env"),
        "./.env": (".env", ".env"),
        ".//.env": (".env", ".env"),
        ".ENV": (".ENV", ".env"),
        ".env.": (".env.", ".env.*"),
        "config/.env": ("config/.env", ".env"),
        "config/.env/": ("config/.env", ".env"),
        "config//.env": ("config/.env", ".env"),
        "./config/./.ENV": ("config/.ENV", ".env"),
        "secrets": ("secrets", "secrets/**"),
        "secrets/": ("secrets", "secrets/**"),
        "./secrets": ("secrets", "secrets/**"),
        "secrets/prod.env": ("secrets/prod.env", "secrets/**"),
        "SECRETS/prod.env": ("SECRETS/prod.env", "secrets/**"),
        "Secrets/Prod.ENV": ("Secrets/Prod.ENV", "secrets/**"),
        "secrets/does-not-exist": ("secrets/does-not-exist", "secrets/**"),
    }
    for path, (shown, pattern) in cases.items():
        # The rule's own deny pattern is named as the audit record's rule; the default deny list is no rule.
        rule = RULE if pattern == "secrets/**" else None
        await probe.refused("get_file_contents", "denied", _denied_path(shown, pattern), rule=rule, **APP, path=path)
    # Every tool that takes a path asks the same question.
    await probe.refused(
        "get_repository_tree", "denied", _denied_path("secrets", "secrets/**"), rule=RULE, **APP, path_filter="secrets/"
    )
    await probe.refused(
        "list_commits", "denied", _denied_path("secrets/prod.env", "secrets/**"), rule=RULE, **APP,
        path="./secrets/prod.env",
    )  # fmt: skip
    await probe.refused(
        "compare_refs", "denied", _denied_path("config/.env", ".env"), **APP, base="main", head="release/1.0",
        path="config/.env/",
    )  # fmt: skip
    await probe.verify_audit()


async def test_malformed_paths_are_refused_before_policy(probe: Prober, target: Target) -> None:
    """Traversal (plain or percent-encoded), absolute paths, backslashes and control characters are refused
    with what is wrong: `src/../.env` must never be matched against an anchored pattern as if it were `src/..`."""

    def traversal(path: str) -> str:
        return f"path '{path}' contains a '..' segment (or an encoded one); paths stay inside the repo"

    allowed_repo = {"decision": "allow", "rule": RULE}
    main = target.sha["main"][:12]
    for path in ("src/../.env", "public/../secrets/prod.env", "..", "%2e%2e/secrets", "src/%2E%2e/.env", "a/.%2e"):
        await probe.refused("get_file_contents", "invalid_input", traversal(path), **allowed_repo, **APP, path=path)
    for path in ("/.env", "/secrets/prod.env", "/etc/passwd"):
        await probe.refused(
            "get_file_contents", "invalid_input",
            f"path '{path}' is absolute; paths are relative to the repository root (e.g. 'src/app.py')",
            **allowed_repo, **APP, path=path,
        )  # fmt: skip
    for path in ("secrets\\prod.env", "..\\secrets", "public\\..\\.env"):
        await probe.refused(
            "get_file_contents", "invalid_input",
            f"path {path!r} contains a backslash; use '/' between directories",
            **allowed_repo, **APP, path=path,
        )  # fmt: skip
    for path, char in (("secrets/prod.env\x00.txt", "'\\x00' (U+0000 unnamed character)"),
                       (".env\n", "'\\n' (U+000A unnamed character)")):  # fmt: skip
        await probe.refused(
            "get_file_contents", "invalid_input", f"path contains a control character {char}",
            **allowed_repo, **APP, path=path,
        )  # fmt: skip
    await probe.refused(
        "get_file_contents", "invalid_input",
        "path '--output=x' starts with '-' (looks like a command-line option)",
        **allowed_repo, **APP, path="--output=x",
    )  # fmt: skip
    # Look-alikes and a trailing dot name other files, which do not exist: policy allows the question, git
    # answers not found, and nothing of the real file comes back.
    for path in ("\u0455ecrets/prod.env", "\uff53ecrets/prod.env", "secrets./prod.env", ".env%00", "%2e%2e%2fsecrets"):
        await probe.refused(
            "get_file_contents", "not_found", f"path '{path}' not found at {main} in acme/app",
            **allowed_repo, **APP, path=path,
        )  # fmt: skip
    await probe.verify_audit()


# -- symlinks -----------------------------------------------------------------------------------------------------


async def test_symlinks_are_named_never_followed(probe: Prober, target: Target) -> None:
    """A symlink is read as what git stores, its target path; nothing at the target is opened, whether it is
    outside the tree (relative or absolute) or a denied file inside it."""
    links = {
        "docs/link": "../../etc/passwd",
        "docs/passwd": "/etc/passwd",
        "docs/outside": str(target.outside_file),
        "public/creds": "../secrets/prod.env",
        "public/conf": "../secrets",
    }
    for path, points_to in links.items():
        out = await probe.allowed("get_file_contents", **APP, path=path)
        assert (out["type"], out["symlink_target"], out["content"]) == ("symlink", points_to, None)
    # Within a line range or a byte budget, too (a different read path in the tool).
    out = await probe.allowed("get_file_contents", **APP, path="docs/passwd", start_line=1, end_line=5)
    assert (out["type"], out["content"]) == ("symlink", None)
    assert PASSWD_LINE.encode() not in (await probe.call("get_file_contents", **APP, path="docs/passwd")).raw


async def test_a_symlinked_directory_does_not_open_the_denied_directory(probe: Prober, target: Target) -> None:
    """`public/conf -> ../secrets`: git stores no path `public/conf/prod.env`, so it is not found (and the policy
    check on that name passed: only the tree walk stands between the caller and the denied file)."""
    main = target.sha["main"][:12]
    allowed_repo = {"decision": "allow", "rule": RULE}
    for path in ("public/conf/prod.env", "public/conf/prod.env/", "./public/conf//prod.env"):
        await probe.refused(
            "get_file_contents", "not_found",
            f"path 'public/conf/prod.env' not found at {main} in acme/app: 'public/conf' is not a directory",
            **allowed_repo, **APP, path=path,
        )  # fmt: skip
    await probe.refused(
        "list_commits", "invalid_input",
        "path 'public/conf/../conf/prod.env' contains a '..' segment (or an encoded one); paths stay inside the repo",
        **allowed_repo, **APP, path="public/conf/../conf/prod.env",
    )  # fmt: skip
    await probe.refused(
        "get_repository_tree", "invalid_input", f"'public/conf' is a file, not a directory, at {main} in acme/app",
        **allowed_repo, **APP, path_filter="public/conf",
    )  # fmt: skip
    await probe.refused(
        "get_file_contents", "not_found",
        f"path 'docs/link/x' not found at {main} in acme/app: 'docs/link' is not a directory",
        **allowed_repo, **APP, path="docs/link/x",
    )  # fmt: skip
    # A listing of `public` shows the links as files, and nothing from behind them.
    tree = await probe.allowed("get_repository_tree", **APP, path_filter="public")
    assert sorted((e["path"], e["type"], e["mode"]) for e in tree["entries"]) == [
        ("public/conf", "blob", "120000"),
        ("public/creds", "blob", "120000"),
        ("public/readme.txt", "blob", "100644"),
    ]
    await probe.verify_audit()


async def test_search_never_finds_text_reachable_only_through_a_symlink(probe: Prober) -> None:
    """The default branch is searched by ripgrep on a checkout made with `core.symlinks=false` (links become
    files holding their target path) and `--no-follow`; other refs by `git grep`, which reads blobs. Neither
    finds the secret through `public/creds`, /etc/passwd through `docs/passwd`, or the planted file."""
    for ref in (None, "release/1.0"):
        engine = "ripgrep" if ref is None else "git-grep"
        for query in ("4f1c9a2b", "root:x:0:0", "OUTSIDE-CANARY", "CONFIG-ENV-CANARY", "ENV-CANARY-91c2"):
            arguments = {"query": query, "repo": "acme/app"} | ({"ref": ref} if ref else {})
            found = await probe.allowed("search_code", **arguments)
            assert found["hits"] == [], (ref, query)
            assert [s["engine"] for s in found["searched"]] == [engine]
        # ripgrep sees each link as a file holding its target path (that text is searchable where policy allows);
        # git grep skips symlink blobs altogether. Neither sees what is behind a link.
        found = await probe.allowed("search_code", query="../secrets", repo="acme/app", **({"ref": ref} if ref else {}))
        link_files = [("public/conf", "../secrets"), ("public/creds", "../secrets/prod.env")]
        assert sorted((h["path"], h["line"]) for h in found["hits"]) == (link_files if ref is None else [])
    # Across every repository, aimed at the denied directory with a path glob, or with a regular expression.
    for arguments in (
        {"query": "4f1c9a2b"},
        {"query": "4f1c9a2b", "repo": "acme/app", "path_glob": "secrets/**"},
        {"query": "4f1c9a2b", "repo": "acme/app", "path_glob": "**/prod.env"},
        {"query": "4f1c9a2b", "repo": "acme/app", "path_glob": "public/**"},
        {"query": "SECRET_TOKEN=.*", "repo": "acme/app", "regex": True},
        {"query": "SECRET_TOKEN=.*", "repo": "acme/app", "regex": True, "ref": "release/1.0"},
    ):
        found = await probe.allowed("search_code", **arguments)
        assert found["hits"] == [], arguments


# -- refs and SHAs -------------------------------------------------------------------------------------------------


def unreachable(spelling: str, operation: str = "read") -> str:
    """The one refusal for a commit id the caller may not use, whether or not the commit exists."""
    return (
        f"commit {spelling[:12]} is not reachable from any branch or tag you may {operation} in acme/app "
        "(allowed: main, release/1.0), or no commit has that id"
    )


async def test_a_commit_only_on_a_denied_branch(probe: Prober, target: Target) -> None:
    """A raw SHA is allowed only if reachable from a branch or tag the caller may use; full, abbreviated,
    upper-case, or the id of an annotated tag that points at it, through every tool that takes a ref."""
    wip = target.sha["wip"]
    denied = unreachable(wip)
    for spelling in (wip, wip[:12], wip[:7], wip.upper(), target.sha["wip_tag_object"]):
        await probe.refused(
            "get_file_contents", "denied", unreachable(spelling), **APP, path="wip/plan.txt", ref=spelling
        )
        probe.audited({"commit": wip})
    await probe.refused("get_repository_tree", "denied", unreachable(wip[:10]), **APP, ref=wip[:10])
    await probe.refused("list_commits", "denied", denied, **APP, ref=wip)
    await probe.refused("get_commit", "denied", denied, **APP, sha=wip, detail="none")
    diff_denied = denied.replace("you may read", "you may diff")
    await probe.refused("get_commit", "denied", diff_denied, **APP, sha=wip, detail="full_patch")
    await probe.refused("compare_refs", "denied", diff_denied, **APP, base="main", head=wip)
    await probe.refused("compare_refs", "denied", unreachable(wip[:8], "diff"), **APP, base=wip[:8], head="main")
    await probe.refused("search_code", "denied", denied.replace("you may read", "you may search"),
                        query="WIP", repo="acme/app", ref=wip)  # fmt: skip
    await probe.refused(
        "analyze_repository", "denied", denied.replace("you may read", "you may analyze"), **APP, ref=wip
    )
    # By name: the branch and the tag are refused by the rule's ref allowlist.
    # By name: the branch and the tag are refused by the rule's ref allowlist, named as spelled, in the same words
    # as names that exist nowhere (which branches and tags there are is not the caller's to learn).
    for ref in ("wip", "refs/heads/wip", "wip-tag", "refs/tags/wip-tag", "no-such-branch", "refs/heads/nothing"):
        await probe.refused(
            "get_file_contents", "denied",
            f"ref '{ref}' is not allowed by rule '{RULE}' (allowed: main, release/*)",
            rule=RULE, **APP, path="README.md", ref=ref,
        )  # fmt: skip
    # ... and through the tools that ask no path question (so the ref check alone stands in the way).
    wip_denied = f"ref 'wip' is not allowed by rule '{RULE}' (allowed: main, release/*)"
    await probe.refused("get_repository_tree", "denied", wip_denied, rule=RULE, **APP, ref="wip")
    await probe.refused("list_commits", "denied", wip_denied.replace("'wip'", "'refs/heads/wip'"), rule=RULE, **APP,
                        ref="refs/heads/wip")  # fmt: skip
    await probe.refused("get_commit", "denied", wip_denied, rule=RULE, **APP, sha="wip", detail="none")
    await probe.refused("compare_refs", "denied", wip_denied, rule=RULE, **APP, base="main", head="wip")
    await probe.refused("search_code", "denied", wip_denied, rule=RULE, query="WIP", repo="acme/app", ref="wip")
    await probe.refused("analyze_repository", "denied", wip_denied, rule=RULE, **APP, ref="wip")
    branches = await probe.allowed("list_branches", **APP)
    assert [b["name"] for b in branches["refs"]] == ["main", "release/1.0"]
    tags = await probe.allowed("list_tags", **APP)  # the one tag is denied: an empty list, no count, no name
    assert (tags["refs"], tags["total"]) == ([], 0)
    await probe.verify_audit()


async def test_trees_and_blobs_are_not_commits(probe: Prober, target: Target) -> None:
    """A SHA must name a commit (`<sha>^{commit}`): the root tree's or the denied file's blob id reads nothing
    and is refused like an unknown commit, and `rev:path` syntax is refused outright."""
    allowed_repo = {"decision": "allow", "rule": RULE}
    unknown = {"commit": "no commit has that id"}
    for label in ("main_tree", "secret_blob"):
        oid = target.sha[label]
        for ref in (oid, oid[:12]):
            await probe.refused("get_file_contents", "denied", unreachable(ref), **APP, path="README.md", ref=ref)
            probe.audited(unknown)
        await probe.refused("get_commit", "denied", unreachable(oid), **APP, sha=oid)
        probe.audited(unknown)
    for ref in ("main:secrets/prod.env", f"{target.sha['main']}:secrets/prod.env", ":secrets/prod.env"):
        await probe.refused(
            "get_file_contents", "invalid_input", f"ref '{ref}' contains ':', which refs cannot contain",
            **allowed_repo, **APP, path="README.md", ref=ref,
        )  # fmt: skip
    await probe.verify_audit()


async def test_revision_syntax_in_refs_is_refused(probe: Prober, target: Target) -> None:
    """Refs are resolved in Python against the mirror's branch and tag table, never handed to git: `..`, `@{`,
    `~`, `^` and friends are refused by name, and a case change names another ref, which policy refuses."""
    allowed_repo = {"decision": "allow", "rule": RULE}
    refused = {
        "main..wip": "ref 'main..wip' contains '..'; compare two refs with the compare tool instead",
        "main...wip": "ref 'main...wip' contains '..'; compare two refs with the compare tool instead",
        "refs/heads/../heads/wip": (
            "ref 'refs/heads/../heads/wip' contains '..'; compare two refs with the compare tool instead"
        ),
        "wip@{0}": "ref 'wip@{0}' uses '@' reflog syntax, which is not accepted",
        "@{-1}": "ref '@{-1}' uses '@' reflog syntax, which is not accepted",
        "@": "ref '@' uses '@' reflog syntax, which is not accepted",
        "wip~1": "ref 'wip~1' contains '~', which refs cannot contain",
        "wip~0": "ref 'wip~0' contains '~', which refs cannot contain",
        "wip^": "ref 'wip^' contains '^', which refs cannot contain",
        "wip^{commit}": "ref 'wip^{commit}' contains '^', which refs cannot contain",
        "main^{/Unannounced}": "ref 'main^{/Unannounced}' contains '^', which refs cannot contain",
        "w?p": "ref 'w?p' contains '?', which refs cannot contain",
        "wi*": "ref 'wi*' contains '*', which refs cannot contain",
        "refs/heads//wip": "ref 'refs/heads//wip' contains '//'",
        "wip.": "ref 'wip.' ends with '.'",
        "wip.lock": "ref 'wip.lock' has a component ending with '.lock'",
        "refs/heads/.wip": "ref 'refs/heads/.wip' has a component starting with '.'",
        "/wip": "ref '/wip' starts or ends with '/'",
    }
    for ref, reason in refused.items():
        await probe.refused(
            "get_file_contents", "invalid_input", reason, **allowed_repo, **APP, path="README.md", ref=ref
        )
    # Other spellings name other refs, which the rule's allowlist refuses by name (whether or not they exist).
    for ref in ("WIP", "Main", "refs/remotes/origin/wip", "FETCH_HEAD", "ORIG_HEAD", "heads/wip", "origin/wip"):
        await probe.refused(
            "get_file_contents", "denied", f"ref '{ref}' is not allowed by rule '{RULE}' (allowed: main, release/*)",
            rule=RULE, **APP, path="README.md", ref=ref,
        )  # fmt: skip
    await probe.verify_audit()


def _files_in(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


async def test_option_like_refs_create_nothing(probe: Prober, target: Target, tmp_path: Path) -> None:
    """A ref that git would parse as an option is refused by its first character or its whitespace; refs never
    reach a git command line anyway (they are resolved to SHAs in Python first)."""
    allowed_repo = {"decision": "allow", "rule": RULE}
    planted = [tmp_path / name for name in ("upload-pack", "pager", "output", "exec")]
    whitespace = {
        f"--upload-pack=touch {planted[0]}",
        f"-c core.pager=touch {planted[1]}",
    }
    for ref in sorted(whitespace):
        await probe.refused(
            "get_file_contents", "invalid_input", "ref contains whitespace",
            **allowed_repo, **APP, path="README.md", ref=ref,
        )  # fmt: skip
    for ref in (f"--output={planted[2]}", f"--exec={planted[3]}", "-ccore.pager=id", "-", "--all"):
        reason = f"ref '{ref}' starts with '-' (looks like a command-line option)"
        await probe.refused(
            "get_file_contents", "invalid_input", reason, **allowed_repo, **APP, path="README.md", ref=ref
        )
        await probe.refused("get_commit", "invalid_input", reason, **allowed_repo, **APP, sha=ref)
        await probe.refused(
            "compare_refs", "invalid_input", reason, **allowed_repo, **APP, base="main", head=ref, detail="full_patch"
        )
        await probe.refused("list_commits", "invalid_input", reason, **allowed_repo, **APP, ref=ref)
    output = f"--output={planted[2]}"
    await probe.refused(
        "search_code", "invalid_input", f"ref '{output}' starts with '-' (looks like a command-line option)",
        **allowed_repo, query="x", repo="acme/app", ref=output,
    )  # fmt: skip
    assert _files_in(tmp_path) == [], "an option-like ref wrote a file"
    await probe.verify_audit()


async def test_mirrors_never_fetch_pull_request_refs(target: Target) -> None:
    """The remote serves refs/pull/1/head and refs/pull/1/merge (as GitHub does for every pull request); mirrors
    fetch branches and tags only, so neither the refs nor the commit behind them exists on this side, even after
    another pull request appears and the mirror is synced again."""
    remote, mirror = target.remotes["acme/app"], target.mirror("acme/app")
    pull = target.sha["pull"]
    assert git(remote, "for-each-ref", "--format=%(refname)", "refs/pull/").splitlines() == [
        "refs/pull/1/head",
        "refs/pull/1/merge",
    ]
    git(remote, "update-ref", "refs/pull/2/head", pull)
    await resync(target, "acme/app")

    mirrored = git(mirror, "for-each-ref", "--format=%(refname)").splitlines()
    assert sorted(mirrored) == ["refs/heads/main", "refs/heads/release/1.0", "refs/heads/wip", "refs/tags/wip-tag"]
    objects = git(mirror, "cat-file", "--batch-check", stdin=f"{pull}\n".encode())
    assert objects == f"{pull} missing"


async def test_pull_request_refs_and_their_commits_cannot_be_named(probe: Prober, target: Target) -> None:
    """What a pull request holds cannot be named: not by its ref (refused by name, `refs/pull/*` being allowed only
    explicitly), not by its commit's SHA (never fetched, so refused like any commit the caller cannot reach)."""
    pull = target.sha["pull"]
    for ref in ("refs/pull/1/head", "refs/pull/1/merge", "refs/pull/2/head", "pull/1/head"):
        await probe.refused(
            "get_file_contents", "denied", f"ref '{ref}' is not allowed by rule '{RULE}' (allowed: main, release/*)",
            rule=RULE, **APP, path="pr.txt", ref=ref,
        )  # fmt: skip
    unknown = {"commit": "no commit has that id"}
    for ref in (pull, pull[:12]):
        await probe.refused("get_file_contents", "denied", unreachable(ref), **APP, path="pr.txt", ref=ref)
        probe.audited(unknown)
    await probe.refused("get_commit", "denied", unreachable(pull), **APP, sha=pull)
    probe.audited(unknown)
    await probe.verify_audit()


# -- listings -----------------------------------------------------------------------------------------------------


async def test_listings_and_diffs_hide_denied_paths(probe: Prober, target: Target) -> None:
    """Listings, commit file lists and patches, and analysis ask the same path question per entry: denied files
    and directories are left out (and counted as omitted), never shown."""
    tree = await probe.allowed("get_repository_tree", **APP)
    paths = {entry["path"] for entry in tree["entries"]}
    assert paths == {
        "README.md", "src", "src/app.py", "docs", "docs/link", "docs/passwd", "docs/outside",
        "public", "public/readme.txt", "public/creds", "public/conf", "config",
    }  # fmt: skip
    assert tree["omitted_by_policy"] == 4  # .env, config/.env, secrets, secrets/prod.env
    root = await probe.allowed("get_file_contents", **APP, path="")
    assert {e["path"] for e in root["entries"]} == {"README.md", "src", "docs", "public", "config"}
    config = await probe.allowed("get_file_contents", **APP, path="config")
    assert (config["entries"], config["omitted_by_policy"]) == ([], 1)
    commit = await probe.allowed("get_commit", **APP, sha="main", detail="full_patch")
    assert {f["path"] for f in commit["files"]} == paths - {"src", "docs", "public", "config"}
    assert commit["omitted_by_policy"] == 3
    analysis = await probe.allowed("analyze_repository", **APP)
    assert not {f["path"] for f in analysis["largest_files"]} & {".env", "config/.env", "secrets/prod.env"}
    await probe.verify_audit()


def _git_object_id(kind: str, body: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(body)}\0".encode() + body, usedforsecurity=False).hexdigest()


async def test_a_directory_tree_id_does_not_confirm_a_guess_at_a_denied_file(probe: Prober) -> None:
    """`config/` holds only `.env`, which is denied. The listing omits `.env` but names `config` by its tree id:
    hashing a guessed `.env` into a tree and comparing ids tells whether the guess is right. A low-entropy secret
    (a short password, a token with a known prefix) can be brute-forced this way without any further call."""
    tree = await probe.allowed("get_repository_tree", **APP, recursive=False)
    config_id = next(entry["sha"] for entry in tree["entries"] if entry["path"] == "config")
    assert config_id is None, "directories are listed without their tree id"
    guess = CONFIG_ENV_LINE.encode() + b"\n"
    guessed_tree = _git_object_id("tree", b"100644 .env\0" + bytes.fromhex(_git_object_id("blob", guess)))
    assert config_id != guessed_tree, "the listing confirmed the guessed content of the denied config/.env"


async def test_a_refused_call_cannot_forge_lines_in_audit_tail(probe: Prober, target: Target) -> None:
    """The refusal is recorded with what the caller sent (evidence), but the one-line rendering an operator
    watches (`bastion audit tail -f`) must show it as one line without control characters."""
    forged = "x\n2026-01-01 00:00:00Z  alice  -  get_file_contents  acme/app@main  allow/ok  1.0ms\x1b[2K"
    refusal = await probe.call("get_file_contents", owner="acme", repo=forged, path="README.md")
    assert refusal.result.is_error
    event = next(e for e in await target.audit() if e.request_id == refusal.request_id)
    assert event.outcome == "invalid_input"
    line = render_line(event)
    assert not {"\n", "\r", "\x1b"} & set(line), f"audit tail would print: {line!r}"
