"""Every problem in a policy file is a ConfigError naming the file, the line and what to do."""

from __future__ import annotations

import textwrap

import pytest

from bastion.errors import ConfigError
from bastion.policy.loader import parse_policy
from bastion.policy.parser import parse_document
from bastion.policy.types import AccessRequest, Operation

GOOD_RULE = """\
  - name: r1
    repositories: ["acme/*"]
    subjects: {groups: [eng]}
    operations: [read]
"""


def problems_of(text: str) -> list[tuple[int | None, str]]:
    return [(problem.line, problem.message) for problem in parse_document(textwrap.dedent(text)).problems]


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_policy(textwrap.dedent(text), "policy.yaml")
    return caught.value


def test_a_valid_policy_parses() -> None:
    policy = parse_policy("version: 1\nrules:\n" + GOOD_RULE)
    assert [rule.name for rule in policy.rules] == ["r1"]
    assert policy.rules[0].line == 3
    assert policy.decide(AccessRequest("a", frozenset({"eng"}), "acme/x", Operation.READ)).allowed


def test_error_names_file_and_line() -> None:
    error = config_error(
        """\
        version: 1
        rules:
          - name: r1
            repositories: ["acme/*"]
            subjects: {groups: [eng]}
            operations: [read]
            deny_path: ["x"]
        """
    )
    assert error.message == (
        "policy.yaml:7: rule 'r1': unknown key 'deny_path' (did you mean 'deny_paths'?); known keys: name, "
        "description, effect, repositories, subjects, operations, refs, deny_paths, allow_paths, paths, "
        "max_file_size, redaction"
    )
    assert error.details["file"] == "policy.yaml"
    assert error.details["line"] == 7


def test_every_unknown_key_is_reported_with_its_line() -> None:
    error = config_error(
        """\
        version: 1
        colour: blue
        defaults:
          max_size: 1MiB
        rules:
          - name: r1
            repos: ["acme/*"]
            subjects: {groups: [eng], teams: [x]}
            operations: [read]
        """
    )
    assert error.message.startswith("policy.yaml has 5 problems:\n")
    problems = error.details["problems"]
    assert problems[0].startswith("policy.yaml:2: the policy file: unknown key 'colour'")
    assert problems[1].startswith("policy.yaml:4: defaults: unknown key 'max_size' (did you mean 'max_file_size'?)")
    assert problems[2] == "policy.yaml:6: rule 'r1' needs 'repositories'"
    assert problems[3].startswith("policy.yaml:7: rule 'r1': unknown key 'repos'")
    assert problems[4].startswith("policy.yaml:8: rule 'r1' subjects: unknown key 'teams'")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("rules: []\n", 1, "missing 'version: 1' at the top of the policy file"),
        ("version: 2\nrules: []\n", 1, "unsupported version 2: this bastion reads policy version 1"),
        ("version: true\n", 1, "unsupported version True"),
        ("", None, "the policy file is empty: start from examples/policy.yaml"),
        ("- a\n- b\n", 1, "the policy file must be a mapping (key: value), got a list"),
        ("version: 1\nrules: {a: 1}\n", 2, "rules must be a list of rules"),
        ("version: 1\nversion: 1\n", 2, "the policy file: duplicate key 'version' (first on line 1)"),
        ("version: 1\nrules: [\n", 3, "not valid YAML"),
        ("version: 1\ndefaults: {max_file_size: 1M}\n", 2, "defaults.max_file_size: '1M' is not a size"),
        ("version: 1\ndefaults: {redaction: hide}\n", 2, "defaults.redaction must be 'mask' or 'strict', got 'hide'"),
        ("version: 1\ndefaults: {deny_paths: ['a**']}\n", 2, "defaults.deny_paths: '**' must be a whole segment"),
    ],
)
def test_file_level_problems(text: str, line: int | None, message: str) -> None:
    problems = problems_of(text)
    assert problems, text
    assert problems[0][0] == line
    assert problems[0][1].startswith(message)


def rule_problems(body: str) -> list[tuple[int | None, str]]:
    return problems_of("version: 1\nrules:\n" + textwrap.indent(textwrap.dedent(body), "  "))


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ('- {name: r1, repositories: ["acme/*"], subjects: {users: [a]}}', 3, "rule 'r1' needs 'operations'"),
        ("- {repositories: [a/b], subjects: {users: [a]}, operations: [read]}", 3, "rule #1 needs 'name'"),
        (
            "- {name: r1, repositories: [acme], subjects: {users: [a]}, operations: [read]}",
            3,
            "rule 'r1' repositories: repository pattern 'acme' has one segment",
        ),
        (
            "- {name: r1, repositories: [], subjects: {users: [a]}, operations: [read]}",
            3,
            "rule 'r1' repositories is an empty list",
        ),
        (
            "- {name: r1, repositories: a/b, subjects: {users: [a]}, operations: [read]}",
            3,
            "rule 'r1' repositories must be a list",
        ),
        (
            "- {name: r1, repositories: [a/b], subjects: {users: [a]}, operations: [write]}",
            3,
            "rule 'r1': unknown operation 'write'; use read, diff, analyze, search or '*'",
        ),
        (
            "- {name: r1, repositories: [a/b], subjects: {users: [a]}, operations: [read], effect: permit}",
            3,
            "rule 'r1' effect must be 'allow' or 'deny', got 'permit'",
        ),
        (
            "- {name: r1, repositories: [a/b], subjects: {users: [a]}, operations: [read], refs: ['v**']}",
            3,
            "rule 'r1' refs: '**' must be a whole segment",
        ),
        (
            "- {name: r1, repositories: [a/b], subjects: {users: [a]}, operations: [read], refs: [1.0]}",
            3,
            "each item of rule 'r1' refs must be a non-empty string, got 1.0 (a number): quote it",
        ),
        (
            "- {name: r1, repositories: [a/b], subjects: {users: [a]}, operations: [read], max_file_size: big}",
            3,
            "rule 'r1' max_file_size: 'big' is not a size",
        ),
        (
            "- {name: r1, repositories: [a/b], subjects: {users: [a]}, operations: [read], redaction: none}",
            3,
            "rule 'r1' redaction must be 'mask' or 'strict'",
        ),
        (
            "- {name: r1, repositories: [a/b], subjects: {users: ['al*']}, operations: [read]}",
            3,
            "rule 'r1' subjects.users: 'al*' is not a pattern",
        ),
        (
            "- {name: r1, repositories: [a/b], subjects: [alice], operations: [read]}",
            3,
            "rule 'r1' subjects must be a mapping",
        ),
        ("- {name: r1, repositories: [a/b], operations: [read]}", 3, "rule 'r1' needs 'subjects'"),
        (
            "- {name: r1, repositories: [a/b], subjects: {users: [a]}, operations: [read], paths: [x]}",
            3,
            "rule 'r1': 'paths' only applies to deny rules",
        ),
        (
            "- {name: r1, effect: deny, repositories: [a/b], subjects: {users: [a]}, deny_paths: [x]}",
            3,
            "rule 'r1': 'deny_paths' only applies to allow rules",
        ),
        (
            "- {name: r1, effect: deny, repositories: [a/b], subjects: {users: [a]}, max_file_size: 1}",
            3,
            "rule 'r1': 'max_file_size' only applies to allow rules",
        ),
        (
            '- {name: "it\'s", repositories: [a/b], subjects: {users: [a]}, operations: [read]}',
            3,
            "rule #1 name 'it's' must be printable and contain no quote",
        ),
        ("- just-a-name", 3, "rule #1 must be a mapping (key: value), got 'just-a-name'"),
    ],
)
def test_rule_problems(body: str, line: int, message: str) -> None:
    problems = rule_problems(body)
    assert problems, body
    assert problems[0] == (line, problems[0][1])
    assert problems[0][1].startswith(message), problems[0][1]


def test_duplicate_rule_names_point_at_the_first() -> None:
    problems = rule_problems(GOOD_RULE.replace("  - ", "- ").replace("    ", "  ") * 2)
    assert problems == [(7, "duplicate rule name 'r1' (first defined on line 3)")]


def test_a_broken_rule_does_not_hide_problems_in_later_rules() -> None:
    problems = rule_problems(
        """\
        - {name: a, repositories: [x], subjects: {users: [u]}, operations: [read]}
        - {name: b, repositories: [x/y], subjects: {users: [u]}, operations: [fly]}
        """
    )
    assert [line for line, _ in problems] == [3, 4]


def test_deny_rules_need_no_operations_and_allow_empty_deny_paths() -> None:
    policy = parse_policy(
        "version: 1\nrules:\n"
        "  - {name: d, effect: deny, repositories: [a/b], subjects: {users: ['*']}}\n"
        "  - {name: a, repositories: [a/c], subjects: {users: ['*']}, operations: [read], deny_paths: []}\n"
    )
    assert policy.rules[0].operations == frozenset(Operation)
    assert policy.rules[1].deny_paths is None


def test_operations_star_means_all() -> None:
    policy = parse_policy("version: 1\nrules:\n" + GOOD_RULE.replace("[read]", '["*"]'))
    assert policy.rules[0].operations == frozenset(Operation)


def test_yaml_anchors_and_merge_keys_work() -> None:
    policy = parse_policy(
        textwrap.dedent(
            """\
            version: 1
            rules:
              - &base
                name: base
                repositories: ["acme/*"]
                subjects: {groups: [eng]}
                operations: [read]
              - <<: *base
                name: diff
                operations: [diff]
            """
        )
    )
    assert [(rule.name, sorted(rule.operations)) for rule in policy.rules] == [
        ("base", [Operation.READ]),
        ("diff", [Operation.DIFF]),
    ]


def test_empty_rules_key_means_no_rules() -> None:
    assert parse_policy("version: 1\nrules:\n").rules == ()
