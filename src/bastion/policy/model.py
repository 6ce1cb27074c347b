"""The parsed policy: defaults and rules, with every glob already compiled (the loader builds these)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bastion.policy.globs import PathGlobSet, RefGlob, RepoGlobSet
from bastion.policy.types import Operation, RedactionMode

__all__ = ["ALL_OPERATIONS", "Defaults", "Effect", "Rule", "Subjects"]

Effect = Literal["allow", "deny"]
ALL_OPERATIONS: frozenset[Operation] = frozenset(Operation)
ANY = "*"


@dataclass(frozen=True, slots=True)
class Subjects:
    """Who a rule is about. Names match exactly (case-sensitive); `*` in users is any authenticated caller,
    `*` in groups is any caller that belongs to at least one group."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @property
    def any_user(self) -> bool:
        return ANY in self.users

    @property
    def any_group(self) -> bool:
        return ANY in self.groups

    @property
    def is_empty(self) -> bool:
        return not self.users and not self.groups

    def matches(self, subject: str, groups: frozenset[str]) -> bool:
        if subject in self.users or ANY in self.users:
            return True
        if not groups:
            return False
        return (ANY in self.groups) or not self.groups.isdisjoint(groups)

    def describe(self) -> str:
        parts: list[str] = []
        if self.users:
            parts.append("users: " + ", ".join(sorted(self.users)))
        if self.groups:
            parts.append("groups: " + ", ".join(sorted(self.groups)))
        return "; ".join(parts) or "nobody"


@dataclass(frozen=True, slots=True)
class Defaults:
    """`defaults:` of the policy file, with the built-ins filled in."""

    max_file_size: int
    redaction: RedactionMode
    deny_paths: PathGlobSet  # the built-in list (or its replacement) plus extra_deny_paths; case-insensitive


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One rule. Allow rules use refs (allowlist), deny_paths, allow_paths, max_file_size and redaction; deny
    rules use refs and paths (restrictions: the rule only denies those). `None` means "not restricted"."""

    name: str
    effect: Effect
    repositories: RepoGlobSet
    subjects: Subjects
    operations: frozenset[Operation]
    refs: tuple[RefGlob, ...] | None = None
    deny_paths: PathGlobSet | None = None  # allow rules: added to the default deny list for this rule
    allow_paths: PathGlobSet | None = None  # allow rules: only these paths (case-sensitive)
    paths: PathGlobSet | None = None  # deny rules: deny only these paths (case-insensitive)
    max_file_size: int | None = None
    redaction: RedactionMode | None = None
    description: str | None = None
    line: int | None = None
    key_lines: Mapping[str, int] = field(default_factory=dict[str, int])  # YAML line of each key, for lint

    @property
    def ref_patterns(self) -> tuple[str, ...]:
        return tuple(glob.pattern for glob in self.refs or ())

    def matches_ref(self, ref: str) -> bool:
        return any(glob.matches(ref) for glob in self.refs or ())
