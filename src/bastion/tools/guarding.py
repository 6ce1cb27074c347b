"""The content guard at the tool layer: what each tool does with credentials in what it is about to return.

- get_file_contents: the text read is scanned whole before it is sliced (line range, byte budget), so a
  credential that straddles the cut is masked before the cut is made; a budgeted read takes `READ_SLACK` bytes
  more than it returns and drops the token the read itself cut into.
- search_code: a hit's line is scanned on its own; a line that was clipped around the match, or that may be part
  of a private key, is taken from the whole file instead (scanned once per blob), so nothing a clip or a line
  break hides from a scanner can leak through a window.
- patches: diff-aware (`bastion.guard.patches`), with the whole files when a hunk may show part of a key.
- commit messages and subjects: scanned like any text.

Policy's `redaction` decides what a finding does: `mask` (default) replaces it with `[REDACTED:<kind>]`; `strict`
refuses the file, drops search hits from the file, withholds the patch or message. Every finding is written to
the audit event (`metadata["redactions"]`: kind, path or commit, line; never the value).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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
from bastion.guard.patterns import is_key_material, key_material_spans
from bastion.guard.redact import Finding, LineView, cut_safe_end, findings_in, mask_cut_edges, redact
from bastion.guard.secrets import SCAN_CACHE, find_secrets, find_secrets_cached
from bastion.guard.spans import SecretSpan, merge_spans
from bastion.observability.metrics import METRICS
from bastion.policy.types import Operation, RedactionMode
from bastion.repos.search import MAX_LINE_CHARS
from bastion.repos.types import Blob, CommitSummary, FileDiff
from bastion.tools.access import AuthorizedRef
from bastion.tools.call import ToolCall
from bastion.tools.models import SearchHitOut

__all__ = [
    "READ_SLACK",
    "REDACTIONS_LISTED",
    "GuardedContent",
    "PatchGuard",
    "describe",
    "guard_commits",
    "guard_enabled",
    "guard_file_bytes",
    "guard_search_hits",
    "guard_text",
    "patch_guard",
    "redaction_mode",
]

READ_SLACK = 4096  # bytes read past a byte budget, so a credential straddling the budget is read whole
REDACTIONS_LISTED = 50  # findings listed in one audit event; the rest are counted
_CONTEXT_FILE_BYTES = 2 * 1024 * 1024  # the largest file read to see a search hit's whole line (ripgrep's limit)
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


async def _file_view(call: ToolCall, repo: str, commit: str, path: str, cap: int) -> LineView | None:
    """The whole file at `commit`, scanned (cached by blob), or None when it cannot be (too big, binary, gone)."""
    try:
        found = await call.backend.read_blob(repo, commit, path, cap + 1)
    except BastionError:
        return None
    if isinstance(found, list) or len(found.data) < found.size or len(found.data) > cap or detect_binary(found.data):
        return None
    text = found.data.decode("utf-8", errors="replace")
    return LineView(text, await find_secrets_cached(text, ("blob", found.oid, len(found.data))))


# -- search --------------------------------------------------------------------------------------------------------


def _needs_file(line: str) -> bool:
    """A hit line whose own text is not enough to scan: clipped around the match (a credential, or the name that
    makes it one, may sit outside the window), or possibly part of a multi-line private key."""
    return len(line) > MAX_LINE_CHARS or "PRIVATE KEY" in line or is_key_material(line)


def _windows(full: str, shown: str) -> list[tuple[int, str, str]]:
    """Where the hit line `shown` (clipped with `…` where it was cut, or whole) can sit in the file's line `full`:
    (start, lead, trail) for every place that fits. More than one when the line repeats itself."""
    if shown == full:
        return [(0, "", "")]
    places: list[tuple[int, str, str]] = []
    for lead in ("…", ""):
        for trail in ("…", ""):
            if not (shown.startswith(lead) and shown.endswith(trail)) or len(shown) < len(lead) + len(trail):
                continue
            body = shown[len(lead) : len(shown) - len(trail)]
            begin = full.find(body)
            while begin >= 0:
                if (begin > 0) == bool(lead) and (begin + len(body) < len(full)) == bool(trail):
                    places.append((begin, lead, trail))
                begin = full.find(body, begin + 1)
    return places


def _from_file(view: LineView, hit: SearchHitOut) -> tuple[str, list[SecretSpan]] | None:
    """The hit's window of its file line, masked with the whole line's findings. Where the window could be at
    several places (a line that repeats itself), what any of them would mask is masked."""
    if hit.line_number > view.line_count:
        return None
    full, spans = view.line(hit.line_number)
    places = _windows(full, hit.line)
    if not places:
        return None
    _, lead, trail = places[0]
    body = hit.line[len(lead) : len(hit.line) - len(trail)]
    shown: list[SecretSpan] = []
    for begin, _, _ in places:
        shown.extend(
            SecretSpan(max(span.start, begin) - begin, min(span.end, begin + len(body)) - begin, span.kind)
            for span in spans
            if span.start < begin + len(body) and span.end > begin
        )
    merged = merge_spans(shown)
    return lead + redact(body, merged) + trail, list(merged)


async def _scan_lines(lines: Sequence[str], unsure: Sequence[bool]) -> list[tuple[str, list[SecretSpan]]]:
    """Each line masked, scanning them as one text (one scanner call for all hits); `unsure` lines (their file could
    not be read) also lose key-material-looking content and tokens at clip edges."""
    joined = "\n".join(lines)
    spans = list(await find_secrets_cached(joined))
    if any(unsure):
        spans.extend(key_material_spans(joined))
    view = LineView(joined, merge_spans(spans))
    masked: list[tuple[str, list[SecretSpan]]] = []
    for row, line in enumerate(lines, start=1):
        text, on_line = view.line(row)
        text += line[len(text) :]  # a trailing \r that LineView leaves out
        out = redact(text, on_line)
        if unsure[row - 1] and len(line) > MAX_LINE_CHARS:
            out = mask_cut_edges(out, cut_before=out.startswith("…"), cut_after=out.endswith("…"))
        masked.append((out, on_line))
    return masked


async def guard_search_hits(
    call: ToolCall, hits: list[SearchHitOut], targets: Mapping[str, AuthorizedRef]
) -> tuple[list[SearchHitOut], int]:
    """Hits with credentials masked, minus hits from files that strict redaction withholds (counted)."""
    by_file: dict[tuple[str, str], list[int]] = {}
    for index, hit in enumerate(hits):
        by_file.setdefault((hit.repository, hit.path), []).append(index)
    lines: dict[int, str] = {}
    dropped: set[int] = set()
    plain: list[int] = []
    unsure: list[bool] = []
    for (repo, path), indexes in by_file.items():
        target = targets[repo]
        strict = redaction_mode(call, repo, target, Operation.SEARCH, path) == "strict"
        view = None
        if strict or any(_needs_file(hits[index].line) for index in indexes):
            cap = call.services.settings.repos.max_read_bytes if strict else _CONTEXT_FILE_BYTES
            view = await _file_view(call, repo, target.sha, path, cap)
        if strict:
            if view is None or view.spans:
                dropped.update(indexes)
                found = view.findings() if view is not None else []
                note(
                    call,
                    (
                        {"rule": f.kind, "repository": repo, "path": path, "line": f.line, "withheld": True}
                        for f in found
                    ),
                )
            continue
        for index in indexes:
            shown = _from_file(view, hits[index]) if view is not None else None
            if shown is None:
                plain.append(index)  # scanned alone: the file could not be read, or the line not found in it
                unsure.append(_needs_file(hits[index].line))
                continue
            lines[index], spans = shown
            note(
                call,
                (
                    {"rule": span.kind, "repository": repo, "path": path, "line": hits[index].line_number}
                    for span in spans
                ),
            )
    for index, (text, spans) in zip(plain, await _scan_lines([hits[i].line for i in plain], unsure), strict=True):
        lines[index] = text
        hit = hits[index]
        note(
            call,
            ({"rule": s.kind, "repository": hit.repository, "path": hit.path, "line": hit.line_number} for s in spans),
        )
    kept = [
        hit.model_copy(update={"line": lines[index]}) if lines.get(index, hit.line) != hit.line else hit
        for index, hit in enumerate(hits)
        if index not in dropped
    ]
    return kept, len(dropped)


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
        view = await _file_view(call, repo, commit, path, _CONTEXT_FILE_BYTES) if commit else None
        mapped = file_spans(parsed, "new" if side == "new" else "old", view) if view is not None else None
        if mapped is None:
            return [*spans, *fallback_spans(parsed)]
        spans.extend(mapped)
    return spans
