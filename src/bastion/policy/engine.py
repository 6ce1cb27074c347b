"""The decision: deny by default, any matching deny rule wins, else the first allow rule whose constraints pass.

Every answer carries a reason a person can act on. When nothing allows, the reason is the failure of the allow
rule that got furthest (ref, then path, then size): "ref 'refs/heads/dev' is not allowed by rule 'r1' (allowed:
main)" helps, "denied" does not. Decisions are pure functions of the (frozen, hashable) request, so they are
memoised in a bounded LRU: a repeated question costs a dict lookup, not a pass over the rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from bastion.policy.globs import PathGlob
from bastion.policy.model import Defaults, Effect, Rule
from bastion.policy.sizes import format_size_pair
from bastion.policy.types import AccessRequest, Decision, Operation

__all__ = ["WHOLE_FILE_NOTE", "Check", "Policy", "RuleTrace", "request_problem"]

Check = Literal["repository", "subject", "operation", "ref", "path", "size"]

# How far an allow rule got before failing; the furthest one explains the denial.
_STAGE = {"ref": 1, "path": 2, "size": 3}
_BRANCHES_AND_TAGS = ("refs/heads/", "refs/tags/")
# An empty, `.` or `..` segment (this also catches a leading, trailing or doubled `/`), or a NUL or newline.
_BAD_NAME = re.compile(r"(?:^|/)\.{0,2}(?:/|$)|[\x00\n]")


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """What one rule made of a request: `matched` (an allow rule would allow, a deny rule denies) or the first
    check that failed, with a sentence about it."""

    rule: str
    effect: Effect
    line: int | None
    matched: bool
    failed_check: Check | None
    detail: str


@dataclass(frozen=True, slots=True)
class _Failure:
    check: Check
    reason: str
    rule: str | None  # the allow rule that came closest; None when the default deny list stopped it


class Policy:
    """An immutable, compiled policy. `decide` is safe to call from many threads and tasks at once."""

    def __init__(self, defaults: Defaults, rules: Sequence[Rule], *, source: str = "<string>", cache_size: int = 8192):
        self.defaults = defaults
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.source = source
        self._deny_rules = tuple(rule for rule in self.rules if rule.effect == "deny")
        self._allow_rules = tuple(rule for rule in self.rules if rule.effect == "allow")
        # Per instance, so a reloaded policy starts with an empty cache and the old one is freed with it.
        self._cached_decide = lru_cache(maxsize=cache_size)(self._decide)

    def __repr__(self) -> str:
        return f"Policy(source={self.source!r}, rules={len(self.rules)})"

    def decide(self, req: AccessRequest) -> Decision:
        return self._cached_decide(req)

    def explain(self, req: AccessRequest) -> tuple[Decision, list[RuleTrace]]:
        """The decision plus every rule's view of the request (for `bastion policy check`; not cached)."""
        decision = self._decide(req)
        problem, path = _normalize(req)
        traces: list[RuleTrace] = []
        for rule in self.rules:
            if problem is not None:
                traces.append(RuleTrace(rule.name, rule.effect, rule.line, False, None, "not evaluated: " + problem))
                continue
            traces.append(self._trace(rule, req, path))
        return decision, traces

    def cache_clear(self) -> None:
        self._cached_decide.cache_clear()

    # -- the decision -------------------------------------------------------------------------------------------

    def _decide(self, req: AccessRequest) -> Decision:
        problem, path = _normalize(req)
        if problem is not None:
            return Decision(False, problem)
        for rule in self._deny_rules:
            if _target_miss(rule, req) is None and _deny_restriction_miss(rule, req.ref, path) is None:
                return Decision(False, _denied_reason(rule), rule=rule.name)
        default_hit = self.defaults.deny_paths.first_match(path) if path is not None else None
        best: _Failure | None = None
        for rule in self._allow_rules:
            if _target_miss(rule, req) is not None:
                continue
            failure = self._allow_failure(rule, req.ref, path, req.size, default_hit)
            if failure is None:
                return Decision(
                    True,
                    f"allowed by rule '{rule.name}'",
                    rule=rule.name,
                    max_file_size=rule.max_file_size or self.defaults.max_file_size,
                    redaction=rule.redaction or self.defaults.redaction,
                )
            if best is None or _STAGE[failure.check] > _STAGE[best.check]:
                best = failure
        if best is None:
            return Decision(False, _no_rule_reason(req))
        return Decision(False, best.reason, rule=best.rule)  # the rule that came closest, as its reason says

    def _allow_failure(
        self, rule: Rule, ref: str | None, path: str | None, size: int | None, default_hit: PathGlob | None
    ) -> _Failure | None:
        if ref is not None:
            if rule.refs is None:  # no allowlist: every branch and tag, but not refs/pull/*, refs/notes/*, ...
                if not ref.startswith(_BRANCHES_AND_TAGS):
                    return _Failure(
                        "ref",
                        f"ref '{ref}' is not allowed by rule '{rule.name}' (allowed: every branch and tag)",
                        rule.name,
                    )
            elif not rule.matches_ref(ref):
                allowed = ", ".join(rule.ref_patterns)
                return _Failure(
                    "ref", f"ref '{ref}' is not allowed by rule '{rule.name}' (allowed: {allowed})", rule.name
                )
        if path is not None:
            if default_hit is not None:
                return _Failure(
                    "path",
                    f"path '{path}' is denied by the default deny list (pattern '{default_hit.pattern}')",
                    None,
                )
            rule_hit = rule.deny_paths.first_match(path) if rule.deny_paths else None
            if rule_hit is not None:
                return _Failure(
                    "path", f"path '{path}' is denied by rule '{rule.name}' (pattern '{rule_hit.pattern}')", rule.name
                )
            if rule.allow_paths is not None and rule.allow_paths.first_match(path) is None:
                allowed = ", ".join(rule.allow_paths.patterns)
                return _Failure(
                    "path", f"path '{path}' is not allowed by rule '{rule.name}' (allowed: {allowed})", rule.name
                )
        if size is not None:
            limit = rule.max_file_size or self.defaults.max_file_size
            if size > limit:
                shown_size, shown_limit = format_size_pair(size, limit)
                whose = f"of rule '{rule.name}'" if rule.max_file_size else "of the policy's defaults.max_file_size"
                return _Failure(
                    "size",
                    f"file is {shown_size}, over the {shown_limit} limit {whose}{WHOLE_FILE_NOTE}",
                    rule.name,
                )
        return None

    # -- explanations ---------------------------------------------------------------------------------------------

    def _trace(self, rule: Rule, req: AccessRequest, path: str | None) -> RuleTrace:
        miss = _target_miss(rule, req)
        if miss is not None:
            return RuleTrace(rule.name, rule.effect, rule.line, False, miss, _target_detail(miss, rule, req))
        if rule.effect == "deny":
            restriction = _deny_restriction_miss(rule, req.ref, path)
            if restriction is not None:
                check, detail = restriction
                return RuleTrace(rule.name, rule.effect, rule.line, False, check, detail)
            return RuleTrace(rule.name, rule.effect, rule.line, True, None, "matches: denies")
        default_hit = self.defaults.deny_paths.first_match(path) if path is not None else None
        failure = self._allow_failure(rule, req.ref, path, req.size, default_hit)
        if failure is not None:
            return RuleTrace(rule.name, rule.effect, rule.line, False, failure.check, failure.reason)
        return RuleTrace(rule.name, rule.effect, rule.line, True, None, "matches: allows")


def _target_miss(rule: Rule, req: AccessRequest) -> Check | None:
    """Which of operation, subject, repository does not match (cheapest test first), or None."""
    if req.operation not in rule.operations:
        return "operation"
    if not rule.subjects.matches(req.subject, req.groups):
        return "subject"
    if not rule.repositories.matches(req.repo):
        return "repository"
    return None


def _deny_restriction_miss(rule: Rule, ref: str | None, path: str | None) -> tuple[Check, str] | None:
    """A deny rule restricted to refs or paths only answers questions about those refs or paths."""
    if rule.refs is not None:
        patterns = ", ".join(rule.ref_patterns)
        if ref is None:
            return "ref", f"only denies refs ({patterns}) and the question names no ref"
        if not rule.matches_ref(ref):
            return "ref", f"ref '{ref}' is not one of the refs this rule denies ({patterns})"
    if rule.paths is not None:
        patterns = ", ".join(rule.paths.patterns)
        if path is None:
            return "path", f"only denies paths ({patterns}) and the question names no path"
        if rule.paths.first_match(path) is None:
            return "path", f"path '{path}' is not one of the paths this rule denies ({patterns})"
    return None


def _target_detail(miss: Check, rule: Rule, req: AccessRequest) -> str:
    if miss == "operation":
        allowed = ", ".join(op.value for op in Operation if op in rule.operations)
        return f"operation '{req.operation.value}' is not one of {allowed}"
    if miss == "subject":
        return f"{_who(req)} is not among {rule.subjects.describe()}"
    return f"repository '{req.repo}' is not matched by {', '.join(rule.repositories.patterns)}"


WHOLE_FILE_NOTE = " (a limit on the whole file: a line range does not lift it)"


def _denied_reason(rule: Rule) -> str:
    if rule.description:
        return f"denied by rule '{rule.name}': {rule.description}"
    return f"denied by rule '{rule.name}'"


def _who(req: AccessRequest) -> str:
    groups = ", ".join(sorted(req.groups))
    return f"{req.subject} (groups: {groups})" if groups else f"{req.subject} (no groups)"


def _no_rule_reason(req: AccessRequest) -> str:
    return f"no rule allows {req.operation.value} on {req.repo} for {_who(req)}"


def request_problem(req: AccessRequest) -> str | None:
    """Why a request is malformed (not a canonical repo, not a full ref, not a normalized path), or None.
    `decide` denies such requests with this as the reason; callers that want to reject them first can ask."""
    return _normalize(req)[0]


def _normalize(req: AccessRequest) -> tuple[str | None, str | None]:
    """(problem, normalized path). Malformed names are denied here rather than matched: `a/../secrets/x` must
    not slip past an anchored `secrets/**` deny pattern, whatever the caller later does with it."""
    if "/" not in req.repo or _BAD_NAME.search(req.repo):
        return f"repository name '{req.repo}' is not a canonical owner/repo name", None
    if req.ref is not None and (not req.ref.startswith("refs/") or req.ref.count("/") < 2 or _BAD_NAME.search(req.ref)):
        return f"ref '{req.ref}' is not a full ref name (expected refs/heads/NAME or refs/tags/NAME)", None
    if req.size is not None and req.size < 0:
        return f"size {req.size} is negative", None
    path = req.path
    if path is None or path in ("", "/"):  # the repository root: no path constraint can apply to it
        return None, None
    if path.endswith("/"):  # a directory written with its slash
        path = path[:-1]
    if _BAD_NAME.search(path):
        return (
            f"path '{req.path}' is not a normalized repository path (no leading '/', no '.', '..' or empty segments)",
            None,
        )
    return None, path
