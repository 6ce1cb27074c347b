"""Policy at the tool layer, with a real policy file and a real mirror of the sample repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.gitrepo import git
from tests.tools.conftest import REPO, Widgets, write_policy

from bastion.config import Settings
from bastion.errors import AccessDenied, InvalidInput, NotFound
from bastion.policy.engine import Policy
from bastion.policy.loader import PolicyFile
from bastion.policy.types import AccessRequest, Decision, Operation
from bastion.principal import Principal
from bastion.repos.mirror import MirrorBackend
from bastion.repos.registry import Registry, mirror_path
from bastion.repos.sync import add_repository
from bastion.tools.access import Access, AuthorizedRef

POLICY = """\
version: 1
rules:
  - name: alice-main
    repositories: ["acme/widgets"]
    subjects: {users: [alice]}
    operations: [read, search]
    refs: [main]
  - name: bob-tags
    repositories: ["acme/widgets"]
    subjects: {users: [bob]}
    operations: [read]
    refs: ["refs/tags/v*"]
  - name: carol-everything
    repositories: ["acme/**"]
    subjects: {users: [carol]}
    operations: ["*"]
  - name: dave-releases
    repositories: ["acme/widgets"]
    subjects: {users: [dave]}
    operations: [read]
    refs: ["release/*"]
  - name: eve-docs
    repositories: ["acme/widgets"]
    subjects: {users: [eve]}
    operations: [read]
    refs: [main]
    allow_paths: ["/docs/**", "/README.md"]
  - name: frank-any-tag
    repositories: ["acme/widgets"]
    subjects: {users: [frank]}
    operations: [read]
    refs: ["refs/tags/*"]
"""

ALICE = Principal("alice")
BOB = Principal("bob")
CAROL = Principal("carol")
DAVE = Principal("dave")
EVE = Principal("eve")
FRANK = Principal("frank")
MALLORY = Principal("mallory", groups=frozenset({"eng"}))


class RecordingPolicy:
    """The real policy, with a note of every question asked (to see *what* the tool layer asks)."""

    def __init__(self, source: PolicyFile) -> None:
        self.source = source
        self.questions: list[AccessRequest] = []

    def current(self) -> RecordingPolicy:
        return self

    def decide(self, req: AccessRequest) -> Decision:
        self.questions.append(req)
        policy: Policy = self.source.current()
        return policy.decide(req)


@pytest.fixture
def policy(tmp_path: Path) -> RecordingPolicy:
    return RecordingPolicy(PolicyFile(write_policy(tmp_path, POLICY), check_interval=0))


@pytest.fixture
def access(policy: RecordingPolicy, backend: MirrorBackend) -> Access:
    return Access(policy, backend)


# -- repository() --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_allowed_repository_gives_its_canonical_name_and_the_rule(access: Access) -> None:
    name, decision = await access.repository(ALICE, "acme", "widgets", Operation.READ)
    assert name == REPO
    assert (decision.allowed, decision.rule, decision.reason) == (True, "alice-main", "allowed by rule 'alice-main'")


@pytest.mark.anyio
async def test_a_denied_caller_cannot_tell_an_unknown_repository_from_a_forbidden_one(access: Access) -> None:
    with pytest.raises(AccessDenied) as unknown:
        await access.repository(MALLORY, "acme", "no-such-repo", Operation.READ)
    with pytest.raises(AccessDenied) as existing:
        await access.repository(MALLORY, "acme", "widgets", Operation.READ)
    assert unknown.value.reason == "no rule allows read on acme/no-such-repo for mallory (groups: eng)"
    assert existing.value.reason == "no rule allows read on acme/widgets for mallory (groups: eng)"


@pytest.mark.anyio
async def test_an_allowed_caller_learns_that_an_unknown_repository_is_not_registered(access: Access) -> None:
    with pytest.raises(NotFound) as caught:
        await access.repository(CAROL, "acme", "no-such-repo", Operation.READ)
    assert caught.value.message == "repository 'acme/no-such-repo' is not registered (see `bastion repo list`)"


@pytest.mark.anyio
async def test_an_operation_the_rule_does_not_grant_is_denied(access: Access) -> None:
    with pytest.raises(AccessDenied) as caught:
        await access.repository(ALICE, "acme", "widgets", Operation.DIFF)
    assert caught.value.reason == "no rule allows diff on acme/widgets for alice (no groups)"


@pytest.mark.anyio
async def test_another_spelling_is_asked_about_again_under_the_canonical_name(
    access: Access, policy: RecordingPolicy
) -> None:
    name, decision = await access.repository(CAROL, "ACME", "Widgets", Operation.READ)
    assert (name, decision.rule) == (REPO, "carol-everything")
    assert [q.repo for q in policy.questions] == ["ACME/Widgets", REPO]


@pytest.mark.anyio
async def test_the_canonical_spelling_is_asked_about_once(access: Access, policy: RecordingPolicy) -> None:
    await access.repository(CAROL, "acme", "widgets", Operation.READ)
    assert [q.repo for q in policy.questions] == [REPO]


@pytest.mark.anyio
async def test_a_malformed_repository_name_is_invalid_input_before_policy_is_asked(
    access: Access, policy: RecordingPolicy
) -> None:
    with pytest.raises(InvalidInput, match="repository name"):
        await access.repository(CAROL, "acme", "widgets.git", Operation.READ)
    assert policy.questions == []


# -- ref(): names --------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("raw", [None, "", "main", "refs/heads/main", "HEAD"])
async def test_the_default_branch_by_any_of_its_names(access: Access, widgets: Widgets, raw: str | None) -> None:
    target = await access.ref(ALICE, REPO, raw, Operation.READ)
    assert (target.policy_ref, target.sha, target.label) == ("refs/heads/main", widgets.commits["c5"], "main")
    assert target.decision.rule == "alice-main"


@pytest.mark.anyio
async def test_a_branch_outside_the_rule_is_denied_with_the_allowed_refs(access: Access) -> None:
    with pytest.raises(AccessDenied) as caught:
        await access.ref(ALICE, REPO, "feature", Operation.READ)
    assert caught.value.reason == "ref 'feature' is not allowed by rule 'alice-main' (allowed: main)"
    assert caught.value.rule == "alice-main"
    with pytest.raises(AccessDenied) as full:
        await access.ref(ALICE, REPO, "refs/heads/feature", Operation.READ)
    assert full.value.reason == "ref 'refs/heads/feature' is not allowed by rule 'alice-main' (allowed: main)"


@pytest.mark.anyio
async def test_a_denied_name_is_refused_alike_whether_or_not_it_exists(access: Access) -> None:
    """A caller limited to main must not learn which other branches and tags there are: `feature` exists,
    `no-such-branch` does not, and both get the same refusal (naming the ref as spelled)."""
    answers: list[str] = []
    for name in ("feature", "no-such-branch", "v1.0", "v9.9", "refs/heads/feature", "refs/heads/no-such-branch"):
        with pytest.raises(AccessDenied) as caught:
            await access.ref(ALICE, REPO, name, Operation.READ)
        answers.append(caught.value.reason.replace(name, "NAME"))
    assert set(answers[:4]) == {"ref 'NAME' is not allowed by rule 'alice-main' (allowed: main)"}
    assert set(answers[4:]) == {"ref 'NAME' is not allowed by rule 'alice-main' (allowed: main)"}


@pytest.mark.anyio
async def test_a_name_policy_allows_in_another_meaning_is_not_found(access: Access) -> None:
    """frank may read every tag and no branch: `feature` exists only as a branch, so for frank it is a tag that
    does not exist, answered like any other missing one."""
    for name in ("feature", "no-such-tag"):
        with pytest.raises(NotFound) as caught:
            await access.ref(FRANK, REPO, name, Operation.READ)
        assert caught.value.message == f"ref '{name}' not found in acme/widgets"
    assert (await access.ref(FRANK, REPO, "v0.1", Operation.READ)).policy_ref == "refs/tags/v0.1"


@pytest.mark.anyio
async def test_an_annotated_tag_resolves_to_its_commit(access: Access, widgets: Widgets) -> None:
    target = await access.ref(BOB, REPO, "v1.0", Operation.READ)
    assert (target.policy_ref, target.sha, target.label) == ("refs/tags/v1.0", widgets.commits["c2"], "v1.0")
    lightweight = await access.ref(BOB, REPO, "refs/tags/v0.1", Operation.READ)
    assert (lightweight.policy_ref, lightweight.sha) == ("refs/tags/v0.1", widgets.commits["c1"])
    with pytest.raises(AccessDenied, match=r"^ref 'v1\.0' is not allowed by rule 'alice-main'"):
        await access.ref(ALICE, REPO, "v1.0", Operation.READ)
    with pytest.raises(AccessDenied, match=r"^ref 'refs/tags/v1\.0' is not allowed by rule 'alice-main'"):
        await access.ref(ALICE, REPO, "refs/tags/v1.0", Operation.READ)


@pytest.mark.anyio
async def test_an_unknown_ref_is_not_found(access: Access) -> None:
    with pytest.raises(NotFound) as caught:
        await access.ref(CAROL, REPO, "no-such-branch", Operation.READ)
    assert caught.value.message == "ref 'no-such-branch' not found in acme/widgets"


@pytest.mark.anyio
async def test_an_option_like_ref_is_refused(access: Access) -> None:
    with pytest.raises(InvalidInput, match="looks like a command-line option"):
        await access.ref(ALICE, REPO, "--upload-pack=evil", Operation.READ)


# -- ref(): raw SHAs -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_sha_on_an_allowed_branch_is_allowed_through_that_branch(access: Access, widgets: Widgets) -> None:
    c3 = widgets.commits["c3"]
    target = await access.ref(ALICE, REPO, c3, Operation.READ)
    assert isinstance(target, AuthorizedRef)
    assert (target.policy_ref, target.sha, target.label) == ("refs/heads/main", c3, c3)
    assert target.resolved.kind == "commit"
    assert target.decision.rule == "alice-main"


@pytest.mark.anyio
async def test_a_short_sha_resolves_to_the_full_one(access: Access, widgets: Widgets) -> None:
    c3 = widgets.commits["c3"]
    target = await access.ref(ALICE, REPO, c3[:10], Operation.READ)
    assert (target.sha, target.policy_ref) == (c3, "refs/heads/main")


@pytest.mark.anyio
async def test_the_sha_of_a_branch_tip_is_allowed_through_that_branch(access: Access, widgets: Widgets) -> None:
    target = await access.ref(ALICE, REPO, widgets.commits["c5"], Operation.READ)
    assert target.policy_ref == "refs/heads/main"


@pytest.mark.anyio
async def test_a_sha_only_on_a_denied_branch_is_denied_naming_the_allowed_refs(
    access: Access, widgets: Widgets
) -> None:
    f1 = widgets.commits["f1"]
    with pytest.raises(AccessDenied) as caught:
        await access.ref(ALICE, REPO, f1, Operation.READ)
    assert caught.value.reason == (
        f"commit {f1[:12]} is not reachable from any branch or tag you may read in acme/widgets (allowed: main), "
        "or no commit has that id"
    )
    assert caught.value.audit_only == {"commit": f1}


@pytest.mark.anyio
async def test_a_sha_is_allowed_through_an_allowed_tag(access: Access, widgets: Widgets) -> None:
    assert (await access.ref(BOB, REPO, widgets.commits["c1"], Operation.READ)).policy_ref == "refs/tags/v0.1"
    assert (await access.ref(BOB, REPO, widgets.commits["c2"], Operation.READ)).policy_ref == "refs/tags/v1.0"


@pytest.mark.anyio
async def test_a_sha_after_every_allowed_tag_is_denied_listing_the_tags(access: Access, widgets: Widgets) -> None:
    c3 = widgets.commits["c3"]
    with pytest.raises(AccessDenied) as caught:
        await access.ref(BOB, REPO, c3, Operation.READ)
    assert caught.value.reason == (
        f"commit {c3[:12]} is not reachable from any branch or tag you may read in acme/widgets (allowed: v0.1, v1.0), "
        "or no commit has that id"
    )


@pytest.mark.anyio
async def test_a_sha_where_no_ref_is_open_says_so_with_the_policy_reason(access: Access, widgets: Widgets) -> None:
    c1 = widgets.commits["c1"]
    with pytest.raises(AccessDenied) as caught:
        await access.ref(DAVE, REPO, c1, Operation.READ)
    assert caught.value.reason == (
        f"commit {c1[:12]} cannot be used: no branch or tag of acme/widgets is open to you for read "
        "(ref 'refs/heads/main' is not allowed by rule 'dave-releases' (allowed: release/*))"
    )


@pytest.mark.anyio
async def test_a_sha_that_names_no_commit_is_refused_like_one_on_a_denied_branch(
    access: Access, widgets: Widgets
) -> None:
    """Otherwise the difference between the two answers tells a caller which commit ids exist on branches they may
    not read. Only the audit record knows which it was."""
    unknown = "0123456789abcdef0123456789abcdef01234567"
    denied = widgets.commits["f1"]
    answers: list[str] = []
    for sha in (unknown, denied, unknown[:7], denied[:7]):
        with pytest.raises(AccessDenied) as caught:
            await access.ref(ALICE, REPO, sha, Operation.READ)
        answers.append(caught.value.reason.replace(sha[:12], "<sha>"))
        assert caught.value.audit_only == {"commit": denied if denied.startswith(sha) else "no commit has that id"}
    assert (
        answers
        == [
            "commit <sha> is not reachable from any branch or tag you may read in acme/widgets (allowed: main), "
            "or no commit has that id"
        ]
        * 4
    )
    # Where no ref is open at all, the answer does not depend on the commit either.
    dave: list[str] = []
    for sha in (unknown, widgets.commits["c1"]):
        with pytest.raises(AccessDenied) as caught:
            await access.ref(DAVE, REPO, sha, Operation.READ)
        dave.append(caught.value.reason.replace(sha[:12], "<sha>"))
    assert dave[0] == dave[1]


async def _crowded_mirror(widgets: Widgets, data_dir: Path) -> tuple[Settings, str]:
    """Another mirror of the widgets remote, with 15,000 more commits in its object store on no ref (as a
    force-push leaves them): enough that two of them share a 7-digit prefix (the shortest SHA a ref may be).
    Returns its settings and that prefix."""
    settings = Settings(data_dir=data_dir)
    await add_repository(settings, widgets.sample.remote.resolve().as_uri(), name=REPO)
    mirror = mirror_path(data_dir, REPO)
    stream = "".join(
        f"commit refs/bastion-test/crowd\nmark :{n}\ncommitter Crowd <crowd@example.com> {1_700_000_000 + n} +0000\n"
        f"data {len(f'crowd {n}')}\ncrowd {n}\n\n"
        for n in range(1, 15_001)
    )
    marks = data_dir / "crowd.marks"
    git(mirror, "fast-import", "--quiet", f"--export-marks={marks}", stdin=stream.encode())
    git(mirror, "update-ref", "-d", "refs/bastion-test/crowd")
    seen: set[str] = set()
    for line in marks.read_text().splitlines():
        prefix = line.split()[1][:7]
        if prefix in seen:
            return settings, prefix
        seen.add(prefix)
    raise AssertionError("no two of the commits share a 7-digit prefix")


@pytest.mark.anyio
async def test_an_ambiguous_prefix_is_refused_like_any_other_unusable_commit_id(
    policy: RecordingPolicy, widgets: Widgets, tmp_path: Path
) -> None:
    """ "Give more digits" would tell a caller that at least two commits start with those digits."""
    settings, prefix = await _crowded_mirror(widgets, tmp_path / "crowded")
    async with MirrorBackend(settings, registry=Registry(settings.data_dir, check_interval=0)) as backend:
        access = Access(policy, backend)
        with pytest.raises(AccessDenied) as caught:
            await access.ref(ALICE, REPO, prefix, Operation.READ)
        assert caught.value.reason == (
            f"commit {prefix} is not reachable from any branch or tag you may read in acme/widgets (allowed: main), "
            "or no commit has that id"
        )
        # git 2.39 answers an ambiguous `<prefix>^{commit}` with "missing" (a bare prefix: "ambiguous"), so which
        # of the two the audit records depends on the git version; the caller's answer does not.
        assert caught.value.audit_only["commit"] in ("no commit has that id", "more than one commit has that prefix")


@pytest.mark.anyio
async def test_a_name_that_is_not_a_sha_is_still_not_found(access: Access) -> None:
    with pytest.raises(NotFound, match="ref 'no-such-branch' not found in acme/widgets"):
        await access.ref(CAROL, REPO, "no-such-branch", Operation.READ)


# -- path() and path_filter() --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_path_normalises_and_asks_about_the_ref(access: Access, policy: RecordingPolicy) -> None:
    target = await access.ref(CAROL, REPO, "main", Operation.READ)
    policy.questions.clear()
    path, decision = access.path(CAROL, REPO, target, "./src//app.py", Operation.READ)
    assert (path, decision.rule) == ("src/app.py", "carol-everything")
    [question] = policy.questions
    assert (question.ref, question.path, question.operation) == ("refs/heads/main", "src/app.py", Operation.READ)


@pytest.mark.anyio
async def test_path_of_a_sha_is_asked_about_the_branch_that_granted_it(
    access: Access, policy: RecordingPolicy, widgets: Widgets
) -> None:
    target = await access.ref(EVE, REPO, widgets.commits["c3"], Operation.READ)
    policy.questions.clear()
    assert access.path(EVE, REPO, target, "docs/manual.md", Operation.READ)[0] == "docs/manual.md"
    assert [q.ref for q in policy.questions] == ["refs/heads/main"]


@pytest.mark.anyio
async def test_a_secret_file_is_denied_by_the_default_list(access: Access) -> None:
    target = await access.ref(CAROL, REPO, "main", Operation.READ)
    with pytest.raises(AccessDenied) as caught:
        access.path(CAROL, REPO, target, ".env", Operation.READ)
    assert caught.value.reason == "path '.env' is denied by the default deny list (pattern '.env')"


@pytest.mark.anyio
async def test_a_path_outside_allow_paths_is_denied(access: Access) -> None:
    target = await access.ref(EVE, REPO, "main", Operation.READ)
    with pytest.raises(AccessDenied) as caught:
        access.path(EVE, REPO, target, "src/app.py", Operation.READ)
    assert caught.value.reason.startswith("path 'src/app.py' is not allowed by rule 'eve-docs' (allowed: ")


@pytest.mark.anyio
async def test_the_root_path_needs_no_new_question(access: Access, policy: RecordingPolicy) -> None:
    target = await access.ref(EVE, REPO, "main", Operation.READ)
    policy.questions.clear()
    assert access.path(EVE, REPO, target, "/", Operation.READ) == ("", target.decision)
    assert policy.questions == []


@pytest.mark.anyio
async def test_a_path_leaving_the_repository_is_invalid(access: Access) -> None:
    target = await access.ref(CAROL, REPO, "main", Operation.READ)
    with pytest.raises(InvalidInput, match=r"contains a '\.\.' segment"):
        access.path(CAROL, REPO, target, "docs/../../etc/passwd", Operation.READ)


@pytest.mark.anyio
async def test_path_filter_answers_per_path(access: Access) -> None:
    carol = access.path_filter(CAROL, REPO, await access.ref(CAROL, REPO, "main", Operation.READ), Operation.READ)
    assert [carol(p) for p in ("src/app.py", ".env", "config/.ENV", "assets/logo.png")] == [True, False, False, True]
    eve = access.path_filter(EVE, REPO, await access.ref(EVE, REPO, "main", Operation.READ), Operation.READ)
    assert [eve(p) for p in ("README.md", "docs/manual.md", "docs", "src/app.py")] == [True, True, True, False]


@pytest.mark.anyio
async def test_require_raises_with_the_rule_and_decide_does_not(access: Access) -> None:
    decision = access.decide(CAROL, REPO, Operation.READ, ref="refs/heads/main", path="key.pem")
    assert decision.allowed is False
    with pytest.raises(AccessDenied) as caught:
        access.require(CAROL, REPO, Operation.READ, ref="refs/heads/main", path="key.pem")
    assert (
        caught.value.reason == decision.reason == "path 'key.pem' is denied by the default deny list (pattern '*.pem')"
    )
