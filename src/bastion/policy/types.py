"""The policy engine's inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = ["AccessRequest", "Decision", "Operation", "RedactionMode"]

RedactionMode = Literal["mask", "strict"]


class Operation(StrEnum):
    """What a tool does to a repository. Tools map onto these (see docs/policy.md)."""

    READ = "read"  # files, trees, branches, tags, commit metadata and stats
    DIFF = "diff"  # patches: get_commit(detail=full_patch), compare_refs
    ANALYZE = "analyze"  # analyze_repository
    SEARCH = "search"  # search_code


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One question to the policy. `ref` is a full ref name (`refs/heads/main`, `refs/tags/v1`) or None when the
    question is about the repository as a whole; `path` is a repository-relative path or None."""

    subject: str
    groups: frozenset[str]
    repo: str
    operation: Operation
    ref: str | None = None
    path: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer. `reason` is always set: for a denial it says which rule denied or that no rule allows;
    for an allow it names the rule that allowed."""

    allowed: bool
    reason: str
    rule: str | None = None
    max_file_size: int | None = None
    redaction: RedactionMode = "mask"
