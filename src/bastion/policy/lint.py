"""`bastion policy lint`: every problem the loader would refuse (errors), plus rules that cannot do what their
author meant (warnings): rules that match nobody, allow rules that can never decide, repository globs that match
no known repository. An error means the server would not load the file; a warning never does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bastion.errors import ConfigError, InvalidInput
from bastion.policy.globs import RepoGlob, has_wildcards, segment_regex
from bastion.policy.loader import read_policy_text
from bastion.policy.model import Rule, Subjects
from bastion.policy.parser import ParsedPolicy, parse_document
from bastion.repos.names import validate_ref, validate_repo_name

__all__ = ["Finding", "lint_policy"]

# Ref patterns that look like "every branch" but only match names without a `/` (see docs/policy.md).
_SINGLE_SEGMENT_CATCH_ALLS = ("*", "refs/heads/*", "refs/tags/*")


@dataclass(frozen=True, slots=True)
class Finding:
    level: Literal["error", "warning"]
    message: str
    line: int | None = None


def lint_policy(
    path_or_text: Path | str, known_repos: list[str] | None = None, *, source: str = "<string>"
) -> list[Finding]:
    """Findings for a policy file (a Path) or policy text (a str, from `source`), ordered by line. `known_repos`
    (canonical owner/repo names, e.g. the mirror registry) enables the "glob matches no repository" warning."""
    if isinstance(path_or_text, Path):
        try:
            text = read_policy_text(path_or_text)
        except ConfigError as exc:
            return [Finding("error", exc.message)]
        parsed = parse_document(text, str(path_or_text))
    else:
        parsed = parse_document(path_or_text, source)
    findings = [Finding("error", problem.message, problem.line) for problem in parsed.problems]
    findings += _file_warnings(parsed)
    for index, rule in enumerate(parsed.rules):
        findings += _rule_warnings(rule, parsed.rules[:index], parsed.rules, parsed.defaults.max_file_size)
        findings += _impossible_name_warnings(rule)
        if known_repos is not None:
            findings += _unknown_repo_warnings(rule, known_repos)
    return sorted(findings, key=lambda finding: finding.line or 0)


def _file_warnings(parsed: ParsedPolicy) -> list[Finding]:
    findings: list[Finding] = []
    if not parsed.rules and not parsed.problems:
        findings.append(Finding("warning", "the policy has no rules: every request is denied", parsed.rules_line))
    if not parsed.defaults.deny_paths:
        findings.append(
            Finding(
                "warning",
                "defaults.deny_paths is empty: secret files such as .env and *.pem are readable wherever a rule "
                "allows reading (use extra_deny_paths to add to the built-in list instead of replacing it)",
                parsed.defaults_lines.get("deny_paths"),
            )
        )
    return findings


def _rule_warnings(
    rule: Rule, earlier: Sequence[Rule], every_rule: Sequence[Rule], default_limit: int
) -> list[Finding]:
    findings: list[Finding] = []
    if rule.subjects.is_empty:
        findings.append(
            Finding("warning", f"rule '{rule.name}' has no users and no groups: it matches nobody", rule.line)
        )
        return findings
    findings += [
        Finding(
            "warning",
            f"rule '{rule.name}': ref pattern '{pattern}' only matches names without a '/' (not feature/x); "
            "use '**' (or refs/heads/**) for every branch, or omit refs to allow every branch and tag",
            rule.key_lines.get("refs", rule.line),
        )
        for pattern in rule.ref_patterns
        if pattern in _SINGLE_SEGMENT_CATCH_ALLS
    ]
    if rule.effect != "allow":
        return findings
    shadow = next((other for other in every_rule if other.effect == "deny" and _deny_covers(other, rule)), None)
    if shadow is not None:
        findings.append(
            Finding(
                "warning",
                f"rule '{rule.name}' can never allow anything: deny rule '{shadow.name}' (line {shadow.line}) covers "
                "all of its repositories, subjects and operations, and a deny always wins",
                rule.line,
            )
        )
        return findings
    twin = next(
        (other for other in earlier if other.effect == "allow" and _same_target(other, rule, default_limit)), None
    )
    if twin is not None:
        findings.append(
            Finding(
                "warning",
                f"rule '{rule.name}' matches exactly what the earlier rule '{twin.name}' (line {twin.line}) matches, "
                "so it never decides anything (the first allow rule that passes decides)",
                rule.line,
            )
        )
    return findings


def _a_name_like(pattern: str) -> str:
    """A name `pattern` matches if any name does: its wildcards filled with plain characters."""
    return pattern.replace("**", "x/x").replace("*", "x").replace("?", "x")


def _refused(check: Callable[[str], str], name: str) -> bool:
    try:
        check(name)
    except InvalidInput:
        return True
    return False


def _impossible_name_warnings(rule: Rule) -> list[Finding]:
    """Patterns whose every match is a name the tool layer refuses before policy is asked (`acme/secrets.git`,
    `main~1`): such a rule never decides anything, which for a deny rule means it protects nothing."""
    findings = [
        Finding(
            "warning",
            f"rule '{rule.name}': repository glob '{glob.pattern}' can match no repository name the server accepts "
            "(owner/repo of ASCII letters, digits, '.', '_', '-', not ending in .git), so this rule never applies "
            "to it",
            rule.key_lines.get("repositories", rule.line),
        )
        for glob in rule.repositories.globs
        if _refused(validate_repo_name, _a_name_like(glob.pattern))
    ]
    findings += [
        Finding(
            "warning",
            f"rule '{rule.name}': ref pattern '{pattern}' can match no ref name the server accepts (git's ref name "
            "rules: no '~', '^', ':', '..', '@{', '.lock', spaces), so this rule never applies to it",
            rule.key_lines.get("refs", rule.line),
        )
        for pattern in rule.ref_patterns
        if _refused(validate_ref, _a_name_like(pattern))
    ]
    return findings


def _unknown_repo_warnings(rule: Rule, known_repos: Sequence[str]) -> list[Finding]:
    return [
        Finding(
            "warning",
            f"rule '{rule.name}': repository glob '{glob.pattern}' matches none of the {len(known_repos)} known "
            "repositories",
            rule.key_lines.get("repositories", rule.line),
        )
        for glob in rule.repositories.globs
        if not any(glob.matches(repo) for repo in known_repos)
    ]


# -- coverage: sound but incomplete (it never claims a cover that does not hold) ---------------------------------


def _deny_covers(deny: Rule, allow: Rule) -> bool:
    """True when `deny` (with no ref/path restriction) answers every question `allow` could answer."""
    if deny.refs is not None or deny.paths is not None:
        return False
    return (
        allow.operations <= deny.operations
        and _subjects_cover(deny.subjects, allow.subjects)
        and all(
            any(_repo_covers(outer, inner) for outer in deny.repositories.globs) for inner in allow.repositories.globs
        )
    )


def _subjects_cover(outer: Subjects, inner: Subjects) -> bool:
    if outer.any_user:
        return True
    if inner.any_user or not inner.users <= outer.users:
        return False
    if inner.any_group:
        return outer.any_group
    return outer.any_group or inner.groups <= outer.groups


def _repo_covers(outer: RepoGlob, inner: RepoGlob) -> bool:
    return _segments_cover(outer.segments, inner.segments)


def _segments_cover(outer: Sequence[str], inner: Sequence[str]) -> bool:
    if not outer:
        return not inner
    if outer[0] == "**":  # absorbs any number of inner segments, inner `**` included
        return any(_segments_cover(outer[1:], inner[skip:]) for skip in range(len(inner) + 1))
    if not inner or inner[0] == "**":
        return False
    return _segment_covers(outer[0], inner[0]) and _segments_cover(outer[1:], inner[1:])


def _segment_covers(outer: str, inner: str) -> bool:
    if outer == "*" or outer.casefold() == inner.casefold():
        return True
    if has_wildcards(inner):
        return False
    return re.fullmatch(segment_regex(outer), inner, re.IGNORECASE) is not None


def _same_target(earlier: Rule, later: Rule, default_limit: int) -> bool:
    """Identical questions answered, and `later` allows no larger file than `earlier` (else it decides for files
    between the two limits)."""
    return _target_key(earlier) == _target_key(later) and (later.max_file_size or default_limit) <= (
        earlier.max_file_size or default_limit
    )


def _target_key(rule: Rule) -> tuple[object, ...]:
    def patterns(values: Sequence[str] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(values)

    return (
        frozenset(pattern.casefold() for pattern in rule.repositories.patterns),
        rule.subjects,
        rule.operations,
        patterns(rule.ref_patterns if rule.refs is not None else None),
        patterns(rule.allow_paths.patterns if rule.allow_paths is not None else None),
        patterns(rule.deny_paths.patterns if rule.deny_paths is not None else None),
    )
