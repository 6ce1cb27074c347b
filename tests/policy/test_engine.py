"""Decisions and their reasons: deny by default, deny wins, ref/path/size constraints, repository-level questions."""

from __future__ import annotations

import textwrap

import pytest

from bastion.policy.engine import Policy, request_problem
from bastion.policy.loader import parse_policy
from bastion.policy.types import AccessRequest, Operation

MiB = 1024 * 1024

WHOLE_FILE = " (a limit on the whole file: a line range does not lift it)"


def policy(rules: str, defaults: str = "") -> Policy:
    text = "version: 1\n"
    if defaults:
        text += "defaults:\n" + textwrap.indent(textwrap.dedent(defaults), "  ")
    text += "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")
    return parse_policy(text)


def request(
    repo: str = "acme/api",
    op: Operation = Operation.READ,
    *,
    subject: str = "alice",
    groups: tuple[str, ...] = ("eng",),
    ref: str | None = None,
    path: str | None = None,
    size: int | None = None,
) -> AccessRequest:
    return AccessRequest(subject, frozenset(groups), repo, op, ref, path, size)


READ_ACME = """
- name: eng-read
  repositories: ["acme/*"]
  subjects: {groups: [eng]}
  operations: [read, search]
"""


# -- deny by default ----------------------------------------------------------------------------------------------


def test_no_rules_denies_with_who_and_what() -> None:
    decision = policy("[]").decide(request())
    assert not decision.allowed
    assert decision.reason == "no rule allows read on acme/api for alice (groups: eng)"
    assert decision.rule is None


def test_no_matching_rule_lists_groups_sorted_or_says_none() -> None:
    p = policy(READ_ACME)
    assert p.decide(request(op=Operation.DIFF, groups=("ops", "eng"))).reason == (
        "no rule allows diff on acme/api for alice (groups: eng, ops)"
    )
    assert p.decide(request(groups=())).reason == "no rule allows read on acme/api for alice (no groups)"
    assert p.decide(request("other/api")).reason == "no rule allows read on other/api for alice (groups: eng)"


def test_allow_names_the_rule_and_carries_defaults() -> None:
    decision = policy(READ_ACME).decide(request())
    assert decision.allowed
    assert decision.reason == "allowed by rule 'eng-read'"
    assert decision.rule == "eng-read"
    assert decision.max_file_size == MiB
    assert decision.redaction == "mask"


def test_allow_carries_rule_limits_over_defaults() -> None:
    p = policy(
        READ_ACME + "  max_file_size: 256KiB\n  redaction: strict\n",
        defaults="max_file_size: 4MiB\nredaction: mask\n",
    )
    decision = p.decide(request())
    assert (decision.max_file_size, decision.redaction) == (256 * 1024, "strict")


def test_defaults_limits_apply_when_the_rule_sets_none() -> None:
    decision = policy(READ_ACME, defaults="max_file_size: 4MiB\nredaction: strict\n").decide(request())
    assert (decision.max_file_size, decision.redaction) == (4 * MiB, "strict")


def test_seed_bug_dot_in_repo_name_does_not_extend_a_rule() -> None:
    p = policy(
        """
        - name: my
          repositories: [org/my]
          subjects: {users: [alice]}
          operations: [read]
        """
    )
    assert p.decide(request("org/my")).allowed
    assert p.decide(request("ORG/My")).allowed  # repository names are case-insensitive
    assert p.decide(request("org/my.secret-repo")).reason == (
        "no rule allows read on org/my.secret-repo for alice (groups: eng)"
    )
    assert not p.decide(request("org/my-x")).allowed


# -- deny rules ---------------------------------------------------------------------------------------------------

DENY_API = """
- name: no-api
  effect: deny
  repositories: [acme/api]
  subjects: {users: ["*"]}
"""


@pytest.mark.parametrize("rules", [READ_ACME + DENY_API, DENY_API + READ_ACME])
def test_deny_wins_wherever_it_is_written(rules: str) -> None:
    p = policy(rules)
    decision = p.decide(request())
    assert not decision.allowed
    assert decision.reason == "denied by rule 'no-api'"
    assert decision.rule == "no-api"
    assert p.decide(request("acme/web")).allowed


def test_deny_reason_includes_the_description_on_one_line() -> None:
    p = policy(
        READ_ACME
        + """
- name: no-api
  effect: deny
  description: >
    The API repository is
    being audited
  repositories: [acme/api]
  subjects: {groups: [eng]}
  operations: [read]
"""
    )
    assert p.decide(request()).reason == "denied by rule 'no-api': The API repository is being audited"
    assert p.decide(request(op=Operation.SEARCH)).allowed  # the deny covers read only


def test_deny_rule_defaults_to_every_operation() -> None:
    p = policy(READ_ACME + DENY_API)
    for op in Operation:
        assert p.decide(request(op=op)).reason == "denied by rule 'no-api'"


DENY_RELEASE_REFS = """
- name: no-release
  effect: deny
  repositories: ["acme/*"]
  subjects: {users: ["*"]}
  refs: ["release/*"]
"""


def test_ref_restricted_deny_rule_does_not_answer_repository_level_questions() -> None:
    p = policy(READ_ACME + DENY_RELEASE_REFS)
    assert p.decide(request()).allowed  # "may alice read acme/api at all?"
    assert p.decide(request(ref="refs/heads/main")).allowed
    assert p.decide(request(ref="refs/heads/release/1")).reason == "denied by rule 'no-release'"
    assert p.decide(request(ref="refs/tags/release/1")).reason == "denied by rule 'no-release'"


DENY_INFRA_PATHS = """
- name: no-infra
  effect: deny
  repositories: ["acme/*"]
  subjects: {groups: [eng]}
  paths: ["infra/**"]
"""


def test_path_restricted_deny_rule_only_answers_for_those_paths() -> None:
    p = policy(READ_ACME + DENY_INFRA_PATHS)
    assert p.decide(request()).allowed
    assert p.decide(request(ref="refs/heads/main")).allowed
    assert p.decide(request(path="src/a.py")).allowed
    assert p.decide(request(path="infra/main.tf")).reason == "denied by rule 'no-infra'"
    assert p.decide(request(path="Infra/x/y.tf")).reason == "denied by rule 'no-infra'"  # deny ignores case
    assert p.decide(request(path="infra")).reason == "denied by rule 'no-infra'"


# -- refs ---------------------------------------------------------------------------------------------------------

READ_MAIN = """
- name: r1
  repositories: ["acme/*"]
  subjects: {groups: [eng]}
  operations: [read]
  refs: [main, "release/*"]
"""


def test_ref_not_in_allowlist_reason() -> None:
    p = policy(READ_MAIN)
    denied = p.decide(request(ref="refs/heads/dev"))
    assert denied.reason == "ref 'refs/heads/dev' is not allowed by rule 'r1' (allowed: main, release/*)"
    assert denied.rule == "r1"  # the rule the reason names, for the audit record and `audit search`
    assert p.decide(request(ref="refs/heads/main")).allowed
    assert p.decide(request(ref="refs/tags/release/2.0")).allowed


def test_repository_level_question_skips_ref_constraints() -> None:
    assert policy(READ_MAIN).decide(request()).allowed


def test_omitted_refs_allow_branches_and_tags_but_not_pull_requests() -> None:
    p = policy(READ_ACME)
    assert p.decide(request(ref="refs/heads/feature/x")).allowed
    assert p.decide(request(ref="refs/tags/v1")).allowed
    assert p.decide(request(ref="refs/pull/7/head")).reason == (
        "ref 'refs/pull/7/head' is not allowed by rule 'eng-read' (allowed: every branch and tag)"
    )


def test_pull_request_refs_only_with_an_explicit_pattern() -> None:
    p = policy(READ_ACME + '  refs: ["**", "refs/pull/*/head"]\n')
    assert p.decide(request(ref="refs/pull/7/head")).allowed
    assert not p.decide(request(ref="refs/pull/7/merge")).allowed


# -- paths --------------------------------------------------------------------------------------------------------


def test_default_deny_list_reason_at_any_depth_and_case() -> None:
    p = policy(READ_ACME)
    default_denied = p.decide(request(path=".env"))
    assert default_denied.reason == "path '.env' is denied by the default deny list (pattern '.env')"
    assert default_denied.rule is None  # no rule of the policy file: its defaults
    assert p.decide(request(path="svc/a/.ENV")).reason == (
        "path 'svc/a/.ENV' is denied by the default deny list (pattern '.env')"
    )
    assert p.decide(request(path="certs/x.pem")).reason == (
        "path 'certs/x.pem' is denied by the default deny list (pattern '*.pem')"
    )
    assert p.decide(request(path="src/app.py")).allowed


def test_rule_deny_paths_reason_and_ancestors() -> None:
    p = policy(READ_ACME + '  deny_paths: ["a/**"]\n')
    assert p.decide(request(path="a/b")).reason == "path 'a/b' is denied by rule 'eng-read' (pattern 'a/**')"
    assert p.decide(request(path="a")).reason == "path 'a' is denied by rule 'eng-read' (pattern 'a/**')"
    assert p.decide(request(path="A/B/c")).reason == "path 'A/B/c' is denied by rule 'eng-read' (pattern 'a/**')"
    assert p.decide(request(path="x/a/b")).allowed  # anchored at the root
    assert p.decide(request(path=".env")).reason.startswith("path '.env' is denied by the default deny list")


def test_directory_pattern_denies_the_directory_and_everything_below() -> None:
    p = policy(READ_ACME + '  deny_paths: ["secrets"]\n')
    for path in ("secrets", "secrets/", "secrets/a/b", "app/secrets/key.txt"):
        assert not p.decide(request(path=path)).allowed, path
    assert p.decide(request(path="secretsauce/a")).allowed


def test_allow_paths_limit_a_rule_case_sensitively() -> None:
    p = policy(READ_ACME + '  allow_paths: ["src/**", "/README.md"]\n')
    assert p.decide(request(path="src/a/b.py")).allowed
    assert p.decide(request(path="src")).allowed  # the directory itself, so a tree listing can reach it
    assert p.decide(request(path="README.md")).allowed
    assert p.decide(request(path="docs/x.md")).reason == (
        "path 'docs/x.md' is not allowed by rule 'eng-read' (allowed: src/**, /README.md)"
    )
    assert not p.decide(request(path="Src/a.py")).allowed
    assert not p.decide(request(path="docs/README.md")).allowed
    assert p.decide(request(path="src/.env")).reason.startswith("path 'src/.env' is denied by the default deny list")


def test_defaults_deny_paths_replaces_and_extra_deny_paths_adds() -> None:
    replaced = policy(READ_ACME, defaults='deny_paths: ["*.secret"]\n')
    assert replaced.decide(request(path=".env")).allowed
    assert replaced.decide(request(path="x.SECRET")).reason == (
        "path 'x.SECRET' is denied by the default deny list (pattern '*.secret')"
    )
    extended = policy(READ_ACME, defaults='extra_deny_paths: ["*.secret"]\n')
    assert not extended.decide(request(path=".env")).allowed
    assert not extended.decide(request(path="x.secret")).allowed


def test_root_path_is_a_repository_level_question() -> None:
    p = policy(READ_ACME + '  allow_paths: ["src/**"]\n')
    assert p.decide(request(path="")).allowed
    assert p.decide(request(path="/")).allowed


# -- sizes --------------------------------------------------------------------------------------------------------


def test_size_over_limit_reason() -> None:
    p = policy(READ_ACME + "  max_file_size: 1MiB\n")
    denied = p.decide(request(size=2 * MiB))
    assert denied.reason == "file is 2.0 MiB, over the 1.0 MiB limit of rule 'eng-read'" + WHOLE_FILE
    assert denied.rule == "eng-read"  # named in the reason, so in the audit record's rule too
    assert p.decide(request(size=MiB)).allowed  # the limit itself is allowed
    assert p.decide(request(size=MiB + 1)).reason == (
        "file is 1,048,577 bytes, over the 1,048,576-byte limit of rule 'eng-read'" + WHOLE_FILE
    )


def test_default_size_limit_applies() -> None:
    p = policy(READ_ACME, defaults="max_file_size: 100\n")
    assert p.decide(request(size=100)).allowed
    # the rule sets no limit: the reason says where the one that applied comes from
    assert p.decide(request(size=101)).reason == (
        "file is 101 bytes, over the 100-byte limit of the policy's defaults.max_file_size" + WHOLE_FILE
    )


def test_size_unknown_is_not_evaluated() -> None:
    assert policy(READ_ACME, defaults="max_file_size: 1\n").decide(request(path="big.bin")).allowed


# -- choosing between candidate rules -----------------------------------------------------------------------------


def test_the_rule_that_got_furthest_explains_the_denial() -> None:
    p = policy(
        """
        - name: main-only
          repositories: ["acme/*"]
          subjects: {groups: [eng]}
          operations: [read]
          refs: [main]
        - name: small-files
          repositories: ["acme/*"]
          subjects: {groups: [eng]}
          operations: [read]
          max_file_size: 10
        - name: src-only
          repositories: ["acme/*"]
          subjects: {groups: [eng]}
          operations: [read]
          allow_paths: ["src/**"]
        """
    )
    # main-only fails on the ref, src-only on the path, small-files on the size (the furthest)
    decision = p.decide(request(ref="refs/heads/dev", path="docs/a.md", size=20))
    assert decision.reason == "file is 20 bytes, over the 10-byte limit of rule 'small-files'" + WHOLE_FILE
    assert decision.rule == "small-files"
    # a later rule that allows wins over earlier ones that fail
    assert p.decide(request(ref="refs/heads/dev", path="src/a.py", size=20)).reason == "allowed by rule 'src-only'"


def test_equal_progress_keeps_the_first_rule() -> None:
    p = policy(READ_MAIN + READ_MAIN.replace("name: r1", "name: r2").replace("[main, ", "[trunk, "))
    assert p.decide(request(ref="refs/heads/dev")).reason == (
        "ref 'refs/heads/dev' is not allowed by rule 'r1' (allowed: main, release/*)"
    )


def test_subject_wildcards() -> None:
    p = policy(
        """
        - name: anyone
          repositories: [acme/docs]
          subjects: {users: ["*"]}
          operations: [read]
        - name: any-group
          repositories: [acme/wiki]
          subjects: {groups: ["*"]}
          operations: [read]
        """
    )
    assert p.decide(request("acme/docs", subject="zed", groups=())).allowed
    assert p.decide(request("acme/wiki", subject="zed", groups=("x",))).allowed
    assert not p.decide(request("acme/wiki", subject="zed", groups=())).allowed


# -- malformed requests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"repo": "acme"}, "repository name 'acme' is not a canonical owner/repo name"),
        ({"repo": "acme/../secret"}, "repository name 'acme/../secret' is not a canonical owner/repo name"),
        ({"repo": "acme//api"}, "repository name 'acme//api' is not a canonical owner/repo name"),
        ({"ref": "main"}, "ref 'main' is not a full ref name (expected refs/heads/NAME or refs/tags/NAME)"),
        ({"ref": "refs/heads/../x"}, "ref 'refs/heads/../x' is not a full ref name"),
        ({"path": "src/../.env"}, "path 'src/../.env' is not a normalized repository path"),
        ({"path": "/etc/passwd"}, "path '/etc/passwd' is not a normalized repository path"),
        ({"path": "./src/a"}, "path './src/a' is not a normalized repository path"),
        ({"path": "src//a"}, "path 'src//a' is not a normalized repository path"),
        ({"size": -1}, "size -1 is negative"),
    ],
)
def test_malformed_requests_are_denied_with_the_problem(kwargs: dict[str, object], reason: str) -> None:
    p = policy('- {name: all, repositories: ["**"], subjects: {users: ["*"]}, operations: ["*"], deny_paths: []}')
    req = request(**kwargs)  # type: ignore[arg-type]
    decision = p.decide(req)
    assert not decision.allowed
    assert decision.reason.startswith(reason)
    assert request_problem(req) == decision.reason


def test_every_decision_has_a_reason() -> None:
    p = policy(READ_MAIN + DENY_INFRA_PATHS + DENY_RELEASE_REFS)
    for op in Operation:
        for ref in (None, "refs/heads/main", "refs/heads/dev", "refs/heads/release/1", "refs/pull/1/head"):
            for path in (None, "src/a.py", "infra/x", ".env"):
                for groups in ((), ("eng",)):
                    assert p.decide(request(op=op, ref=ref, path=path, groups=groups)).reason


# -- explain and the cache ----------------------------------------------------------------------------------------


def test_explain_traces_every_rule() -> None:
    p = policy(READ_MAIN + DENY_INFRA_PATHS + DENY_RELEASE_REFS)
    decision, traces = p.explain(request(ref="refs/heads/dev", path="src/a.py"))
    assert decision == p.decide(request(ref="refs/heads/dev", path="src/a.py"))
    assert [(t.rule, t.effect, t.matched, t.failed_check) for t in traces] == [
        ("r1", "allow", False, "ref"),
        ("no-infra", "deny", False, "path"),
        ("no-release", "deny", False, "ref"),
    ]
    assert traces[0].detail == "ref 'refs/heads/dev' is not allowed by rule 'r1' (allowed: main, release/*)"
    assert traces[1].detail == "path 'src/a.py' is not one of the paths this rule denies (infra/**)"
    assert traces[2].detail == "ref 'refs/heads/dev' is not one of the refs this rule denies (release/*)"
    assert traces[0].line == 4


def test_explain_details_for_target_mismatches() -> None:
    p = policy(READ_MAIN + DENY_API)
    _, traces = p.explain(request("acme/web", Operation.DIFF))
    assert traces[0].detail == "operation 'diff' is not one of read"
    assert traces[1].detail == "repository 'acme/web' is not matched by acme/api"
    _, traces = p.explain(request(subject="bob", groups=("ops",)))
    assert traces[0].detail == "bob (groups: ops) is not among groups: eng"
    assert traces[1].matched
    assert traces[1].detail == "matches: denies"


def test_explain_repository_level_question_against_restricted_deny() -> None:
    _, traces = policy(READ_ACME + DENY_RELEASE_REFS + DENY_INFRA_PATHS).explain(request())
    assert traces[0].detail == "matches: allows"
    assert traces[1].detail == "only denies refs (release/*) and the question names no ref"
    assert traces[2].detail == "only denies paths (infra/**) and the question names no path"


def test_explain_malformed_request() -> None:
    decision, traces = policy(READ_ACME).explain(request(path="../x"))
    assert not decision.allowed
    assert traces[0].detail.startswith("not evaluated: path '../x' is not a normalized")


def test_decisions_are_cached_per_policy() -> None:
    p = policy(READ_ACME)
    first = p.decide(request(path="src/a.py"))
    assert p.decide(request(path="src/a.py")) is first
    p.cache_clear()
    again = p.decide(request(path="src/a.py"))
    assert again == first
    assert again is not first
