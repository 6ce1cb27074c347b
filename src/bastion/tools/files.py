"""get_file_contents and get_repository_tree."""

from __future__ import annotations

import asyncio
from typing import Any

from mcp_types import CallToolResult

from bastion.errors import InvalidInput
from bastion.guard.content import describe_binary, detect_binary, slice_text
from bastion.policy.types import Operation
from bastion.repos.names import validate_path
from bastion.repos.types import Blob, TreeEntry
from bastion.tools.access import AuthorizedRef
from bastion.tools.call import ToolCall
from bastion.tools.guarding import READ_SLACK, guard_enabled, guard_file_bytes, guard_text
from bastion.tools.models import FileContentsOut, TreeEntryOut, TreeOut
from bastion.tools.results import entry_out, result

__all__ = ["MAX_TREE_ENTRIES", "get_file_contents", "get_repository_tree"]

MAX_TREE_ENTRIES = 5000


_YIELD_EVERY = 1024  # entries judged between turns of the event loop: ~10 ms of policy checks at most


async def _visible(
    call: ToolCall, repo: str, target: AuthorizedRef, entries: list[TreeEntry]
) -> tuple[list[TreeEntry], int]:
    """The entries policy lets the caller see, and how many it hides. Each entry is one policy question, so a
    listing of a huge tree gives other callers a turn every _YIELD_EVERY entries instead of stalling them."""
    allowed = call.path_filter(repo, target, Operation.READ)
    visible: list[TreeEntry] = []
    for start in range(0, len(entries), _YIELD_EVERY):
        if start:
            await asyncio.sleep(0)
        visible.extend(entry for entry in entries[start : start + _YIELD_EVERY] if allowed(entry.path))
    return visible, len(entries) - len(visible)


async def get_file_contents(
    call: ToolCall,
    owner: str,
    repo: str,
    path: str,
    ref: str | None,
    start_line: int | None,
    end_line: int | None,
    max_bytes: int | None,
) -> CallToolResult:
    settings = call.services.settings.repos
    name = await call.repository(owner, repo, Operation.READ)
    target = await call.authorize_ref(name, ref, Operation.READ)
    clean = call.authorize_path(name, target, path, Operation.READ)
    budget = min(max_bytes or settings.default_max_bytes, settings.max_read_bytes)
    size_limit = target.decision.max_file_size or settings.max_read_bytes
    # A line range may start anywhere in the file, so it needs the whole file (which policy caps in size); so does
    # strict redaction (a file with a credential anywhere is refused). A budgeted read takes READ_SLACK more bytes
    # than it may return, so the content guard sees a credential that straddles the budget whole.
    guarded = guard_enabled(call)
    strict = guarded and call.decision is not None and call.decision.redaction == "strict"
    want = size_limit if (start_line or end_line or strict) else budget + (READ_SLACK if guarded else 0)
    found = await call.backend.read_blob(name, target.sha, clean, min(want, size_limit) + 1)
    if isinstance(found, list):
        return await _directory(call, name, target, clean, found)
    call.require_size(name, target, clean, found.size, Operation.READ)
    return await _file(call, name, target, found, start_line, end_line, budget)


async def _directory(
    call: ToolCall, repo: str, target: AuthorizedRef, path: str, entries: list[TreeEntry]
) -> CallToolResult:
    visible, hidden = await _visible(call, repo, target, entries)
    out = FileContentsOut(
        repository=repo,
        path=path,
        ref=target.label,
        resolved_sha=target.sha,
        type="directory",
        size=None,
        encoding="none",
        content=None,
        truncated=False,
        entries=[entry_out(entry) for entry in visible],
        omitted_by_policy=hidden,
    )
    lines = [f"{e.path}{'/' if e.type == 'tree' else ''}" for e in visible]
    header = f"{repo}:{path or '/'} @ {target.label} ({target.sha[:12]}): {len(visible)} entries"
    return result(out, "\n".join([header, *lines, *_hidden_note(hidden)]))


def _hidden_note(hidden: int) -> list[str]:
    """The text answer's last line when policy hid entries (the structured answer has `omitted_by_policy`)."""
    return [f"({hidden} {'entry' if hidden == 1 else 'entries'} hidden by policy)"] if hidden else []


async def _file(
    call: ToolCall,
    repo: str,
    target: AuthorizedRef,
    blob: Blob,
    start_line: int | None,
    end_line: int | None,
    budget: int,
) -> CallToolResult:
    where = f"{repo}:{blob.path} @ {target.label} ({target.sha[:12]})"

    def made(**fields: Any) -> FileContentsOut:
        return FileContentsOut(
            repository=repo, path=blob.path, ref=target.label, resolved_sha=target.sha, size=blob.size, **fields
        )

    if blob.mode == "160000":
        out = made(type="submodule", encoding="none", content=None, truncated=False)
        return result(out, f"{where} is a submodule at commit {blob.oid}")
    if blob.is_symlink:
        link = guard_text(call, blob.data.decode("utf-8", errors="replace"), {"path": blob.path})
        out = made(type="symlink", encoding="none", content=None, truncated=False, symlink_target=link)
        return result(out, f"{where} is a symbolic link to '{link}' (links are not followed)")
    if detect_binary(blob.data):
        what = describe_binary(blob.data)
        out = made(type="file", encoding="none", content=None, truncated=False, binary=True, description=what)
        return result(out, f"{where} is binary ({what}, {blob.size} bytes); its content is not returned as text")
    if start_line is not None and start_line < 1:
        raise InvalidInput("start_line counts from 1")
    # The whole text read is guarded before it is sliced: a credential across the cut is masked, then cut.
    guarded = await guard_file_bytes(call, blob)
    piece = slice_text(
        guarded.data,
        complete=len(blob.data) >= blob.size,
        start_line=start_line,
        end_line=end_line,
        max_bytes=budget,
    )
    call.bytes_returned = piece.returned_bytes
    guarded.record(call, piece.start_line, piece.end_line)
    # The schema's `truncated`: content is not the whole file, by budget (piece.truncated) or by a line range.
    whole_file = (
        not piece.truncated
        and piece.start_line == 1
        and piece.total_lines is not None
        and piece.end_line >= piece.total_lines
    )
    out = made(
        type="file",
        encoding="utf-8",
        content=piece.text,
        truncated=not whole_file,
        start_line=piece.start_line,
        end_line=piece.end_line,
        total_lines=piece.total_lines,
        returned_bytes=piece.returned_bytes,
    )
    span = f"lines {piece.start_line}-{piece.end_line}"
    if piece.total_lines is not None:
        span += f" of {piece.total_lines}"
    note = ", truncated: ask for a line range or a larger max_bytes for more" if piece.truncated else ""
    return result(out, f"{where} ({span}{note})\n{piece.text}")


async def get_repository_tree(
    call: ToolCall, owner: str, repo: str, ref: str | None, path_filter: str | None, recursive: bool
) -> CallToolResult:
    name = await call.repository(owner, repo, Operation.READ)
    target = await call.authorize_ref(name, ref, Operation.READ)
    prefix = validate_path(path_filter or "")
    if prefix:
        prefix = call.authorize_path(name, target, prefix, Operation.READ)
    entries = await call.backend.list_tree(name, target.sha, prefix, recursive)
    visible, hidden = await _visible(call, name, target, entries)
    truncated = len(visible) > MAX_TREE_ENTRIES
    shown: list[TreeEntryOut] = [entry_out(entry) for entry in visible[:MAX_TREE_ENTRIES]]
    out = TreeOut(
        repository=name,
        ref=target.label,
        resolved_sha=target.sha,
        path=prefix,
        recursive=recursive,
        entries=shown,
        truncated=truncated,
        omitted_by_policy=hidden,
    )
    header = f"{name}:{prefix or '/'} @ {target.label} ({target.sha[:12]}): {len(shown)} entries"
    if truncated:
        header += f" (first {MAX_TREE_ENTRIES} of {len(visible)}; narrow with path_filter)"
    lines = [f"{e.path}{'/' if e.type == 'tree' else ''}" for e in shown]
    return result(out, "\n".join([header, *lines, *_hidden_note(hidden)]))
