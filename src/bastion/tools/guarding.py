"""The content guard at the tool layer: what each tool does with credentials in what it is about to return.

- get_file_contents: the text read is scanned whole before it is sliced (line range, byte budget), so a
  credential that straddles the cut is masked before the cut is made; a budgeted read takes `READ_SLACK` bytes
  more than it returns and drops the token the read itself cut into.
- search_code: bastion.tools.search_guard.
- patches: diff-aware (`bastion.guard.patches`), with the whole files when a hunk may show part of a key.
- commit messages and subjects: scanned like any text.

Policy's `redaction` decides what a finding does: `mask` (default) replaces it with `[REDACTED:<kind>]`; `strict`
refuses the file, drops search hits from the file, withholds the patch or message. Every finding is written to
the audit event (`metadata["redactions"]`: kind, path or commit, line; never the value).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio

from bastion.errors import AccessDenied, BastionError
from bastion.guard.content import detect_binary
from bastion.guard.patches import (
    ParsedPatch,
    PatchFinding,
    fallback_spans,
    file_spans,
    guard_patch,
    intrinsic_spans,
    needs_whole_files,
)
from bastion.guard.redact import Finding, LineView, cut_safe_end, findings_in, redact
from bastion.guard.secrets import SCAN_CACHE, find_secrets, find_secrets_cached
from bastion.guard.spans import SecretSpan
from bastion.observability.metrics import METRICS
from bastion.policy.types import Operation, RedactionMode
from bastion.repos.types import Blob, CommitSummary, FileDiff
from bastion.tools.access import AuthorizedRef
from bastion.tools.call import ToolCall

__all__ = [
    "CONTEXT_FILE_BYTES",
    "READ_SLACK",
    "REDACTIONS_LISTED",
    "GuardedContent",
    "PatchGuard",
    "describe",
    "file_view",
    "guard_commits",
    "guard_enabled",
    "guard_file_bytes",
    "guard_text",
    "note",
    "patch_guard",
    "redaction_mode",
]

READ_SLACK = 4096  # bytes read past a byte budget, so a credential straddling the budget is read whole
REDACTIONS_LISTED = 50  # findings listed in one audit event; the rest are counted
CONTEXT_FILE_BYTES = 2 * 1024 * 1024  # the largest file read to see a search hit's whole line (ripgrep's limit)
_THREAD_PATCH_CHARS = 32 * 1024  # patches above this are scanned in a worker thread (as texts: guard/secrets.py)


def guard_enabled(call: ToolCall) -> bool:
    return call.services.settings.guard.redact_secrets


def redaction_mode(call: ToolCall, repo: str, target: AuthorizedRef, operation: Operation, path: str) -> RedactionMode:
    """The `redaction` of the rule that allows `operation` on `path` (rules may differ by path)."""
    decision = call.services.access.decide(call.principal, repo, operation, ref=target.policy_ref, path=path)
    return decision.redaction if decision.allowed else target.decision.redaction


def note(call: ToolCall, records: Iterable[dict[str, Any]]) -> None:
    """Add findings to the call's audit metadata (the first REDACTIONS_LISTED listed, all of them counted; a call
    without findings gets no keys at all) and to the Redactions metric (masked and withheld alike)."""
    found = list(records)
    if not found:
        return
    METRICS.redactions(call.tool, len(found))
    listed: list[dict[str, Any]] = call.metadata.setdefault("redactions", [])
    listed.extend(found[: max(0, REDACTIONS_LISTED - len(listed))])
    call.metadata["redactions_total"] = int(call.metadata.get("redactions_total", 0)) + len(found)


def describe(findings: Sequence[tuple[str, int]]) -> str:
    """`aws-access-key at line 3, github-pat at line 7` (at most five, then a count): kinds and lines, no values."""
    shown = ", ".join(f"{kind} at line {line}" for kind, line in findings[:5])
    return shown + (f" and {len(findings) - 5} more" if len(findings) > 5 else "")


def _strict_refusal(what: str, findings: Sequence[tuple[str, int]], rule: str | None) -> str:
    by_rule = f" (rule '{rule}')" if rule else ""
    return f"{what} contains credentials ({describe(findings)}); policy requires strict handling{by_rule}"


# -- files ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardedContent:
    """A file's bytes to slice and return (masked when something was found) and what was found where."""

    data: bytes
    path: str
    findings: tuple[Finding, ...] = ()

    def record(self, call: ToolCall, first_line: int, last_line: int) -> None:
        """Note the findings on lines `first_line..last_line` (what the answer shows) in the audit event."""
        note(
            call,
            (
                {"rule": f.kind, "path": self.path, "line": f.line}
                for f in self.findings
                if f.line <= last_line and f.last_line >= first_line
            ),
        )


async def guard_file_bytes(call: ToolCall, blob: Blob) -> GuardedContent:
    """The bytes of `blob` to slice and return: unchanged when nothing was found, masked otherwise. Raises
    AccessDenied under strict redaction when the file holds a credential (or is too big to read whole)."""
    if not guard_enabled(call):
        return GuardedContent(blob.data, blob.path)
    complete = len(blob.data) >= blob.size
    decision = call.decision
    strict = decision is not None and decision.redaction == "strict"
    if strict and not complete:
        raise AccessDenied(
            f"{blob.path} is larger ({blob.size} bytes) than can be read to check it for credentials; policy requires "
            "strict handling",
            rule=decision.rule if decision else None,
        )
    key = ("blob", blob.oid, len(blob.data))
    if complete and SCAN_CACHE.get(key) == ():
        return GuardedContent(blob.data, blob.path)  # scanned before, nothing found: one dictionary lookup
    text = blob.data.decode("utf-8", errors="replace")
    if not complete:
        text = text[: cut_safe_end(text)]  # the read cut a token (maybe a credential) in two: drop what it left
    spans = await find_secrets_cached(text, key)
    if not spans:
        return GuardedContent(blob.data if complete else text.encode("utf-8"), blob.path)
    findings = tuple(findings_in(text, spans))
    if strict and decision is not None:
        note(call, ({"rule": f.kind, "path": blob.path, "line": f.line, "withheld": True} for f in findings))
        raise AccessDenied(
            _strict_refusal(blob.path, [(f.kind, f.line) for f in findings], decision.rule), rule=decision.rule
        )
    return GuardedContent(redact(text, spans).encode("utf-8"), blob.path, findings)


def guard_text(call: ToolCall, text: str, where: dict[str, Any]) -> str:
    """A short text (a symlink's target) masked, findings noted with `where` (path or commit)."""
    if not guard_enabled(call) or not text:
        return text
    spans = find_secrets(text)
    note(call, ({"rule": f.kind, **where, "line": f.line} for f in findings_in(text, spans)))
    return redact(text, spans)


async def file_view(call: ToolCall, repo: str, commit: str, path: str, cap: int) -> LineView | None:
    """The whole file at `commit`, scanned (cached by blob), or None when it cannot be (too big, binary, gone)."""
    try:
        found = await call.backend.read_blob(repo, commit, path, cap + 1)
    except BastionError:
        return None
    if isinstance(found, list) or len(found.data) < found.size or len(found.data) > cap or detect_binary(found.data):
        return None
    text = found.data.decode("utf-8", errors="replace")
    return LineView(text, await find_secrets_cached(text, ("blob", found.oid, len(found.data))))


# -- commits and patches ---------------------------------------------------------------------------------------------


async def guard_commits(call: ToolCall, commits: Sequence[CommitSummary], mode: RedactionMode) -> list[CommitSummary]:
    """Commit subjects and messages masked (strict: withheld when they hold a credential); scans cached by SHA."""
    if not guard_enabled(call):
        return list(commits)
    guarded: list[CommitSummary] = []
    for commit in commits:
        message_spans = await find_secrets_cached(commit.message, ("message", commit.sha))
        subject_spans = await find_secrets_cached(commit.subject, ("subject", commit.sha))
        if not message_spans and not subject_spans:
            guarded.append(commit)
            continue
        found = (
            findings_in(commit.message, message_spans) if message_spans else findings_in(commit.subject, subject_spans)
        )
        if mode == "strict":
            withheld = f"[message withheld: it contains credentials ({describe([(f.kind, f.line) for f in found])})]"
            note(call, ({"rule": f.kind, "commit": commit.sha, "line": f.line, "withheld": True} for f in found))
            guarded.append(replace(commit, subject=withheld, message=withheld))
            continue
        note(call, ({"rule": f.kind, "commit": commit.sha, "line": f.line} for f in found))
        guarded.append(
            replace(
                commit, subject=redact(commit.subject, subject_spans), message=redact(commit.message, message_spans)
            )
        )
    return guarded


PatchGuard = Callable[[FileDiff], Awaitable[tuple[str | None, str | None]]]


async def _intrinsic(parsed: ParsedPatch) -> tuple[SecretSpan, ...]:
    key = ("patch", hashlib.sha256(parsed.text.encode("utf-8", "surrogatepass")).digest())
    found = SCAN_CACHE.get(key)
    if found is None:
        if len(parsed.text) > _THREAD_PATCH_CHARS:
            found = await anyio.to_thread.run_sync(intrinsic_spans, parsed)
        else:
            found = intrinsic_spans(parsed)
        SCAN_CACHE.put(key, found)
    return found


def patch_guard(
    call: ToolCall,
    repo: str,
    old_commit: str | None,
    new_commit: str,
    targets: Sequence[AuthorizedRef],
) -> PatchGuard:
    """What get_commit and compare_refs run on each patch before it is budgeted: returns (patch, withheld note)."""

    async def guard(diff: FileDiff) -> tuple[str | None, str | None]:
        patch = diff.patch
        if patch is None or not guard_enabled(call):
            return patch, None
        parsed = ParsedPatch(patch)
        spans = list(await _intrinsic(parsed))
        if needs_whole_files(patch):
            spans.extend(await _whole_file_spans(call, repo, parsed, diff, old_commit, new_commit))
        guarded = guard_patch(parsed, spans)
        if not guarded.findings:
            return patch, None
        strict_rule = _strict_rule(call, repo, targets, diff.path)
        note(call, _patch_records(diff.path, guarded.findings, withheld=strict_rule is not None))
        if strict_rule is not None:
            shown = [(f.kind, f.line) for f in guarded.findings]
            return None, "patch withheld: " + _strict_refusal("it", shown, strict_rule or None)
        return guarded.text, None

    return guard


def _strict_rule(call: ToolCall, repo: str, targets: Sequence[AuthorizedRef], path: str) -> str | None:
    """The name of a rule that makes `path` strict ("" when unnamed), or None when every side masks."""
    for target in targets:
        decision = call.services.access.decide(call.principal, repo, Operation.DIFF, ref=target.policy_ref, path=path)
        if (decision.redaction if decision.allowed else target.decision.redaction) == "strict":
            return (decision.rule or target.decision.rule or "") if decision.allowed else (target.decision.rule or "")
    return None


def _patch_records(path: str, findings: Sequence[PatchFinding], *, withheld: bool) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for finding in findings:
        record: dict[str, Any] = {"rule": finding.kind, "path": path, "line": finding.line, "side": finding.side}
        if withheld:
            record["withheld"] = True
        records.append(record)
    return records


async def _whole_file_spans(
    call: ToolCall, repo: str, parsed: ParsedPatch, diff: FileDiff, old_commit: str | None, new_commit: str
) -> list[SecretSpan]:
    """The hunks may show part of a private key: take the findings of the whole old and new files onto them, or
    mask every key-material line when a file cannot be read."""
    spans: list[SecretSpan] = []
    sides: list[tuple[str, str | None, str]] = []
    if diff.status != "deleted":
        sides.append(("new", new_commit, diff.path))
    if diff.status != "added":
        sides.append(("old", old_commit, diff.old_path or diff.path))
    for side, commit, path in sides:
        view = await file_view(call, repo, commit, path, CONTEXT_FILE_BYTES) if commit else None
        mapped = file_spans(parsed, "new" if side == "new" else "old", view) if view is not None else None
        if mapped is None:
            return [*spans, *fallback_spans(parsed)]
        spans.extend(mapped)
    return spans
