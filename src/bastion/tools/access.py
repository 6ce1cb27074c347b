"""Policy at the tool layer: repository, ref and path checks, including "a raw SHA only if reachable".

The policy engine answers questions about names (`acme/api`, `refs/heads/main`, `src/app.py`); this module
turns a caller's request into those questions, in an order that never tells a caller more than policy allows:
the repository is checked before we look it up (so a denied caller cannot probe which repositories exist),
the ref is resolved only inside a repository the caller may use, and a commit id the caller may not reach is
refused in the same words as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bastion.errors import AccessDenied, AmbiguousRef, NotFound
from bastion.policy.types import AccessRequest, Decision, Operation
from bastion.principal import Principal
from bastion.repos.backend import RepositoryBackend
from bastion.repos.names import looks_like_sha, validate_path, validate_ref, validate_repo_name
from bastion.repos.types import RefSnapshot, ResolvedRef

__all__ = ["Access", "AuthorizedRef", "PolicySource"]


class _Policy(Protocol):
    def decide(self, req: AccessRequest) -> Decision: ...


class PolicySource(Protocol):
    """Hands out the current policy (reloaded when its file changes)."""

    def current(self) -> _Policy: ...


@dataclass(frozen=True, slots=True)
class AuthorizedRef:
    """A ref the caller may use. `policy_ref` is the branch or tag that granted access: for a raw SHA it is an
    allowed ref the commit is reachable from, and it is what later path and size questions are asked about."""

    resolved: ResolvedRef
    policy_ref: str
    decision: Decision

    @property
    def sha(self) -> str:
        return self.resolved.sha

    @property
    def label(self) -> str:
        return self.resolved.short_name


def _all_refs(snapshot: RefSnapshot) -> list[tuple[str, str]]:
    refs = [(f"refs/heads/{name}", sha) for name, sha in snapshot.branches.items()]
    refs.extend((f"refs/tags/{name}", sha) for name, sha in snapshot.tags.items())
    # The default branch first: most SHAs a caller asks about are on it, so the reachability walk ends early.
    default = f"refs/heads/{snapshot.default_branch}" if snapshot.default_branch else None
    refs.sort(key=lambda item: (item[0] != default, item[0]))
    return refs


class Access:
    """Asks the policy about one principal's requests; raises AccessDenied with the policy's reason."""

    def __init__(self, policy: PolicySource, backend: RepositoryBackend) -> None:
        self.policy = policy
        self.backend = backend

    def decide(
        self,
        principal: Principal,
        repo: str,
        operation: Operation,
        *,
        ref: str | None = None,
        path: str | None = None,
        size: int | None = None,
    ) -> Decision:
        request = AccessRequest(principal.subject, principal.groups, repo, operation, ref, path, size)
        return self.policy.current().decide(request)

    def require(
        self,
        principal: Principal,
        repo: str,
        operation: Operation,
        *,
        ref: str | None = None,
        path: str | None = None,
        size: int | None = None,
    ) -> Decision:
        decision = self.decide(principal, repo, operation, ref=ref, path=path, size=size)
        if not decision.allowed:
            raise AccessDenied(decision.reason, rule=decision.rule)
        return decision

    async def repository(
        self, principal: Principal, owner: str, repo: str, operation: Operation
    ) -> tuple[str, Decision]:
        """The canonical name of `owner/repo`, after policy allowed `operation` on it."""
        requested = validate_repo_name(f"{owner}/{repo}")
        decision = self.require(principal, requested, operation)
        info = await self.backend.get_repository(requested)
        if info.name != requested:  # registered with another spelling: ask again about the canonical name
            decision = self.require(principal, info.name, operation)
        return info.name, decision

    async def ref(self, principal: Principal, repo: str, raw_ref: str | None, operation: Operation) -> AuthorizedRef:
        """Resolve `raw_ref` (None = default branch) and check policy allows `operation` on it."""
        ref = validate_ref(raw_ref) if raw_ref not in (None, "") else None
        named = ref is not None and ref != "HEAD" and not looks_like_sha(ref)
        if named:
            assert ref is not None
            self._require_name(principal, repo, ref, operation)  # before looking, so existence does not show
        try:
            resolved = await self.backend.resolve(repo, ref)
        except (NotFound, AmbiguousRef) as exc:
            if ref is None or not looks_like_sha(ref):
                raise
            # Not a branch or tag, and no commit (or several) has that id: answered exactly like a commit the
            # caller may not reach, or the difference would tell anyone which commit ids exist on branches they
            # may not read.
            why = "more than one commit has that prefix" if isinstance(exc, AmbiguousRef) else "no commit has that id"
            return await self._reachable(principal, repo, ref, None, operation, why)
        if resolved.full_name is None:
            assert ref is not None  # None resolves to the default branch, which has a name
            return await self._reachable(principal, repo, ref, resolved, operation, resolved.sha)
        decision = self.decide(principal, repo, operation, ref=resolved.full_name)
        if decision.allowed:
            return AuthorizedRef(resolved, resolved.full_name, decision)
        if named:
            # Policy allows the name in another meaning (a branch `x`, where only a tag `x` exists): answered as
            # if it did not exist, which for this caller is the truth.
            raise NotFound(f"ref '{ref}' not found in {repo}")
        if ref is not None and looks_like_sha(ref):  # a branch or tag named like a commit id
            return await self._reachable(principal, repo, ref, None, operation, f"names {resolved.full_name}")
        raise AccessDenied(decision.reason, rule=decision.rule)  # the default branch, whose name is no secret

    def _require_name(self, principal: Principal, repo: str, ref: str, operation: Operation) -> None:
        """Refuse a ref name that policy denies in every meaning it can have, whether or not it exists: the answer
        to `release/x` must not tell a caller limited to `main` which other branches there are. A short name is
        a branch or a tag; the refusal names it as the caller spelled it."""
        if ref.startswith("refs/"):
            decision = self.decide(principal, repo, operation, ref=ref)
            if not decision.allowed:
                raise AccessDenied(decision.reason, rule=decision.rule)
            return
        branch_name, tag_name = f"refs/heads/{ref}", f"refs/tags/{ref}"
        branch = self.decide(principal, repo, operation, ref=branch_name)
        if branch.allowed:
            return
        tag = self.decide(principal, repo, operation, ref=tag_name)
        if tag.allowed:
            return
        as_branch = branch.reason.replace(f"'{branch_name}'", f"'{ref}'")
        as_tag = tag.reason.replace(f"'{tag_name}'", f"'{ref}'")
        reason = as_branch if as_branch == as_tag else f"as a branch, {branch.reason}; as a tag, {tag.reason}"
        raise AccessDenied(reason, rule=branch.rule or tag.rule)

    async def _reachable(
        self,
        principal: Principal,
        repo: str,
        spelled: str,
        resolved: ResolvedRef | None,
        operation: Operation,
        audited: str,
    ) -> AuthorizedRef:
        """The ref that lets the caller use commit `resolved` (None: no such commit), or the same refusal whether
        it exists or not; `audited` is what the audit record alone learns (the full id, or why there is none). The
        refusal names the commit as the caller spelled it (at most 12 digits): an abbreviated SHA expanded to more
        digits would confirm that a commit with that prefix exists."""
        shown = spelled[:12]
        snapshot = await self.backend.refs(repo)
        audit_only = {"commit": audited}
        allowed: list[tuple[str, str, Decision]] = []
        for full_name, tip in _all_refs(snapshot):
            decision = self.decide(principal, repo, operation, ref=full_name)
            if decision.allowed:
                if resolved is not None and tip == resolved.sha:
                    return AuthorizedRef(resolved, full_name, decision)
                allowed.append((full_name, tip, decision))
        if not allowed:
            denial = self.decide(principal, repo, operation, ref=f"refs/heads/{snapshot.default_branch or 'main'}")
            raise AccessDenied(
                f"commit {shown} cannot be used: no branch or tag of {repo} is open to you "
                f"for {operation} ({denial.reason})",
                audit_only=audit_only,
            )
        if resolved is not None:
            for full_name, tip, decision in allowed:
                if await self.backend.is_ancestor(repo, resolved.sha, tip):
                    return AuthorizedRef(resolved, full_name, decision)
        names = ", ".join(name.removeprefix("refs/heads/").removeprefix("refs/tags/") for name, _, _ in allowed[:8])
        more = f" and {len(allowed) - 8} more" if len(allowed) > 8 else ""
        raise AccessDenied(
            f"commit {shown} is not reachable from any branch or tag you may {operation} "
            f"in {repo} (allowed: {names}{more}), or no commit has that id",
            audit_only=audit_only,
        )

    def path(
        self, principal: Principal, repo: str, target: AuthorizedRef, raw_path: str, operation: Operation
    ) -> tuple[str, Decision]:
        """Validate `raw_path` and check policy allows `operation` on it at `target`."""
        path = validate_path(raw_path)
        if not path:
            return path, target.decision
        return path, self.require(principal, repo, operation, ref=target.policy_ref, path=path)

    def path_filter(
        self, principal: Principal, repo: str, target: AuthorizedRef, operation: Operation
    ) -> Callable[[str], bool]:
        """A predicate for listings and search results: True for paths the caller may see."""
        policy = self.policy.current()
        subject, groups, ref = principal.subject, principal.groups, target.policy_ref

        def allowed(path: str) -> bool:
            request = AccessRequest(subject, groups, repo, operation, ref, path)
            return policy.decide(request).allowed

        return allowed
