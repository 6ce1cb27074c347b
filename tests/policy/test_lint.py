"""Each lint finding, with its level, message and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bastion.policy.lint import Finding, lint_policy

REPO_ROOT = Path(__file__).resolve().parents[2]


def lint(rules: str, defaults: str = "", known_repos: list[str] | None = None) -> list[Finding]:
    text = "version: 1\n"
    if defaults:
        text += "defaults:\n" + textwrap.indent(textwrap.dedent(defaults), "  ")
    text += "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")
    return lint_policy(text, known_repos=known_repos)


ALLOW_API = """\
- name: api-read
  repositories: [acme/api]
  subjects: {users: [alice], groups: [eng]}
  operations: [read]
"""


def test_the_example_policy_is_clean() -> None:
    assert lint_policy(REPO_ROOT / "examples" / "policy.yaml") == []


def test_the_reference_example_in_the_docs_is_clean() -> None:
    docs = (REPO_ROOT / "docs" / "policy.md").read_text()
    example = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "name: platform-read" in example
    assert lint_policy(example) == []


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    findings = lint_policy(tmp_path / "policy.yaml")
    assert len(findings) == 1
    assert findings[0].level == "error"
    assert "does not exist" in findings[0].message


def test_reads_a_file_when_given_a_path(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nrules:\n" + textwrap.indent(ALLOW_API, "  "))
    assert lint_policy(path) == []


def test_every_unknown_key_is_an_error_with_its_line() -> None:
    findings = lint(
        """\
        - name: r1
          repos: [acme/api]
          repositories: [acme/api]
          subject: {users: [a]}
          subjects: {users: [a], group: [b]}
          operations: [read]
        """
    )
    assert [(f.level, f.line) for f in findings] == [("error", 4), ("error", 6), ("error", 7)]
    assert findings[0].message.startswith("rule 'r1': unknown key 'repos'")
    assert findings[1].message.startswith("rule 'r1': unknown key 'subject' (did you mean 'subjects'?)")
    assert findings[2].message.startswith("rule 'r1' subjects: unknown key 'group' (did you mean 'groups'?)")


def test_invalid_glob_unknown_operation_and_duplicate_name_are_errors() -> None:
    findings = lint(
        """\
        - {name: a, repositories: ["acme/x**"], subjects: {users: [u]}, operations: [read]}
        - {name: b, repositories: [acme/y], subjects: {users: [u]}, operations: [clone]}
        - {name: a, repositories: [acme/z], subjects: {users: [u]}, operations: [read]}
        """
    )
    assert [(f.level, f.line) for f in findings] == [("error", 3), ("error", 4), ("error", 5)]
    assert "'**' must be a whole segment" in findings[0].message
    assert findings[1].message == "rule 'b': unknown operation 'clone'; use read, diff, analyze, search or '*'"
    assert findings[2].message == "duplicate rule name 'a' (first defined on line 3)"


def test_allow_rule_shadowed_by_a_later_catch_all_deny() -> None:
    findings = lint(
        ALLOW_API
        + """\
- name: lockdown
  effect: deny
  repositories: ["**"]
  subjects: {users: ["*"]}
"""
    )
    assert findings == [
        Finding(
            "warning",
            "rule 'api-read' can never allow anything: deny rule 'lockdown' (line 7) covers all of its "
            "repositories, subjects and operations, and a deny always wins",
            3,
        )
    ]


def test_allow_rule_shadowed_by_an_earlier_identical_deny() -> None:
    deny = ALLOW_API.replace("name: api-read", "name: no-api").replace(
        "  repositories", "  effect: deny\n  repositories"
    )
    findings = lint(deny + ALLOW_API)
    assert [(f.level, f.line) for f in findings] == [("warning", 8)]
    assert "deny rule 'no-api' (line 3)" in findings[0].message


def test_owner_star_deny_covers_a_literal_repository() -> None:
    findings = lint(
        ALLOW_API
        + """\
- name: no-acme
  effect: deny
  repositories: ["ACME/*", "other/**"]
  subjects: {users: [alice, bob], groups: [eng, ops]}
  operations: [read, diff]
"""
    )
    assert [f.message.split(":")[0] for f in findings] == ["rule 'api-read' can never allow anything"]


def test_narrower_deny_rules_do_not_shadow() -> None:
    variants = [
        '  refs: ["main"]\n',  # restricted to refs: other refs stay reachable
        '  paths: ["infra/**"]\n',  # restricted to paths
    ]
    for extra in variants:
        deny = "- name: d\n  effect: deny\n  repositories: [acme/api]\n  subjects: {users: ['*']}\n" + extra
        assert lint(ALLOW_API + deny) == [], extra
    narrower = [
        "- {name: d, effect: deny, repositories: [acme/api], subjects: {users: [alice]}}",  # eng members remain
        "- {name: d, effect: deny, repositories: [acme/api], subjects: {users: ['*']}, operations: [diff]}",
        "- {name: d, effect: deny, repositories: [acme/web, 'acme/ap?x'], subjects: {users: ['*']}}",
        "- {name: d, effect: deny, repositories: ['acme/*/api'], subjects: {users: ['*']}}",
    ]
    for deny in narrower:
        assert lint(ALLOW_API + deny + "\n") == [], deny


def test_identical_allow_rule_never_decides() -> None:
    findings = lint(ALLOW_API + ALLOW_API.replace("api-read", "api-read-again"))
    assert findings == [
        Finding(
            "warning",
            "rule 'api-read-again' matches exactly what the earlier rule 'api-read' (line 3) matches, so it never "
            "decides anything (the first allow rule that passes decides)",
            7,
        )
    ]


def test_a_later_rule_with_a_larger_size_limit_is_reachable() -> None:
    later = ALLOW_API.replace("api-read", "big-files") + "  max_file_size: 10MiB\n"
    assert lint(ALLOW_API + later) == []
    smaller = ALLOW_API.replace("api-read", "small-files") + "  max_file_size: 1KiB\n"
    assert [f.line for f in lint(ALLOW_API + smaller)] == [7]


def test_rule_with_no_subjects_matches_nobody() -> None:
    findings = lint("- {name: ghost, repositories: [acme/api], subjects: {users: [], groups: []}, operations: [read]}")
    assert findings == [Finding("warning", "rule 'ghost' has no users and no groups: it matches nobody", 3)]


def test_repository_globs_that_match_no_known_repository() -> None:
    rules = "- {name: r, repositories: [acme/api, acme/old-*], subjects: {users: [a]}, operations: [read]}"
    findings = lint(rules, known_repos=["acme/api", "acme/web"])
    assert findings == [
        Finding("warning", "rule 'r': repository glob 'acme/old-*' matches none of the 2 known repositories", 3)
    ]
    assert lint(rules, known_repos=["acme/api", "ACME/old-billing"]) == []
    assert lint(rules) == []  # without a list of repositories there is nothing to compare with


def test_single_segment_catch_all_ref_pattern() -> None:
    findings = lint(ALLOW_API + '  refs: ["*", "release/*"]\n')
    assert [(f.level, f.line) for f in findings] == [("warning", 7)]
    assert findings[0].message.startswith("rule 'api-read': ref pattern '*' only matches names without a '/'")


def test_empty_default_deny_list_is_a_warning() -> None:
    findings = lint(ALLOW_API, defaults="deny_paths: []\n")
    assert [(f.level, f.line) for f in findings] == [("warning", 3)]
    assert findings[0].message.startswith("defaults.deny_paths is empty: secret files such as .env")
    assert lint(ALLOW_API, defaults='deny_paths: []\nextra_deny_paths: ["*.key"]\n') == []


def test_no_rules_is_a_warning() -> None:
    assert lint_policy("version: 1\nrules: []\n") == [
        Finding("warning", "the policy has no rules: every request is denied", 2)
    ]


def test_patterns_that_can_match_no_name_the_server_accepts() -> None:
    """A deny on `acme/secrets.git` protected nothing: the server refuses that name before policy is asked, and
    `acme/secrets` is another name (found by a probe). Such patterns are warned about; wildcards are not."""
    findings = lint(
        """\
        - name: deny-secrets
          effect: deny
          repositories: [acme/secrets.git, "acme/has space", acme/*, "**"]
          subjects: {users: ["*"]}
          operations: ["*"]
        - name: refs
          repositories: [acme/api]
          subjects: {users: [alice]}
          operations: [read]
          refs: [main~1, "refs/heads/HEAD^", x.lock, main, "release/**", "v*", "v?.?"]
        """
    )
    flagged = [f.message.split("'")[3] for f in findings if "can match no" in f.message]
    assert flagged == ["acme/secrets.git", "acme/has space", "main~1", "refs/heads/HEAD^", "x.lock"]
    assert all(f.level == "warning" for f in findings if "can match no" in f.message)
