"""The content guard for search_code: each hit's line is masked with the findings of its whole line in its file
(read and scanned once per blob), so nothing a clip, a line break or a value repeated without its context hides
from a scanner leaks through a window; where the file cannot be read, the line is scanned on its own and loses
what looks like key material and the tokens its clip edges cut.

A search must not confirm a guess at a masked value either: a hit whose line holds a credential is kept only when
the query still matches the line with its credentials masked (ripgrep re-runs the query over those lines,
bastion.repos.rematch). Otherwise the hit is left out without a trace, in the count of withheld hits too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bastion.guard.patterns import is_key_material, key_material_spans
from bastion.guard.redact import LineView, mask_cut_edges, redact
from bastion.guard.secrets import find_secrets_cached
from bastion.guard.spans import SecretSpan, merge_spans
from bastion.policy.types import Operation
from bastion.repos.rematch import MAX_LINE_CHARS as REMATCH_LINE_CHARS
from bastion.repos.rematch import MaskedLine, lines_matching, masked_line
from bastion.repos.search import MAX_LINE_CHARS
from bastion.repos.types import SearchQuery
from bastion.tools.access import AuthorizedRef
from bastion.tools.call import ToolCall
from bastion.tools.guarding import CONTEXT_FILE_BYTES, file_view, note, redaction_mode
from bastion.tools.models import SearchHitOut

__all__ = ["GuardedHits", "from_file", "guard_search_hits", "needs_file", "scan_lines", "windows"]

# Whole files read per call to mask hits with their file's findings beyond those that need it (clipped lines, key
# material): a scan of 2 MiB takes about half a second, so a search over hundreds of files scans a few of them
# whole and the rest line by line, as before (the scan is cached by blob, so repeated searches find them scanned).
_EXTRA_VIEW_BYTES = 4 * 1024 * 1024


def needs_file(line: str) -> bool:
    """A hit line whose own text is not enough to scan: clipped around the match (a credential, or the name that
    makes it one, may sit outside the window), or possibly part of a multi-line private key."""
    return len(line) > MAX_LINE_CHARS or "PRIVATE KEY" in line or is_key_material(line)


def windows(full: str, shown: str) -> list[tuple[int, str, str]]:
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


def from_file(view: LineView, hit: SearchHitOut) -> tuple[str, list[SecretSpan]] | None:
    """The hit's window of its file line, masked with the whole line's findings. Where the window could be at
    several places (a line that repeats itself), what any of them would mask is masked."""
    if hit.line_number > view.line_count:
        return None
    full, spans = view.line(hit.line_number)
    places = windows(full, hit.line)
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


async def scan_lines(lines: Sequence[str], unsure: Sequence[bool]) -> list[tuple[str, list[SecretSpan]]]:
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


@dataclass(frozen=True, slots=True)
class GuardedHits:
    """What the guard made of a list of hits, by position. A hit in neither is left out without a trace: the query
    does not find its line outside a credential (bastion.repos.rematch)."""

    shown: dict[int, SearchHitOut]  # the hit as it may be shown (its line masked)
    withheld: frozenset[int]  # withheld by strict redaction, and counted for the caller

    def counts(self, index: int) -> bool:
        """Whether the hit at `index` is one of the answer's matches (shown, or withheld and counted)."""
        return index in self.shown or index in self.withheld


async def guard_search_hits(
    call: ToolCall,
    hits: list[SearchHitOut],
    targets: Mapping[str, AuthorizedRef],
    query: SearchQuery,
    engines: Mapping[str, str],
) -> GuardedHits:
    """Hits with credentials masked, minus hits from files that strict redaction withholds (counted), minus hits
    the query does not find outside a credential (not counted)."""
    by_file: dict[tuple[str, str], list[int]] = {}
    for index, hit in enumerate(hits):
        by_file.setdefault((hit.repository, hit.path), []).append(index)
    lines: dict[int, str] = {}
    masked: dict[int, MaskedLine] = {}  # hits whose line holds a credential: to re-match without it
    gone: set[int] = set()  # left out whatever the re-match says
    withheld: set[int] = set()  # dropped by strict redaction
    counted: set[int] = set()  # of those, the ones the caller is told about
    plain: list[int] = []
    unsure: list[bool] = []
    budget = _EXTRA_VIEW_BYTES
    for (repo, path), indexes in by_file.items():
        target = targets[repo]
        rematchable = not query.regex or engines.get(repo) == "ripgrep"  # the re-match runs ripgrep
        strict = redaction_mode(call, repo, target, Operation.SEARCH, path) == "strict"
        view = None
        needed = any(needs_file(hits[index].line) for index in indexes)
        if strict or needed or budget > 0:
            cap = call.services.settings.repos.max_read_bytes if strict else CONTEXT_FILE_BYTES
            view = await file_view(call, repo, target.sha, path, cap)
            if view is not None and not strict and not needed:
                budget -= len(view.text)
        if strict:
            if view is None or view.spans:
                withheld.update(indexes)
                if view is not None:
                    _withheld_lines(view, hits, indexes, rematchable, masked, counted)
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
            placed = from_file(view, hits[index]) if view is not None else None
            if placed is None:
                plain.append(index)  # scanned alone: the file was not read, or the line not found in it
                unsure.append(needs_file(hits[index].line))
                continue
            assert view is not None
            lines[index], spans = placed
            _to_rematch(index, view, hits[index].line_number, rematchable, masked, gone)
            note(
                call,
                (
                    {"rule": span.kind, "repository": repo, "path": path, "line": hits[index].line_number}
                    for span in spans
                ),
            )
    for index, (text, spans) in zip(plain, await scan_lines([hits[i].line for i in plain], unsure), strict=True):
        lines[index] = text
        if text != hits[index].line:
            gone.add(index)  # masked on its own (a clip edge, key material): where the query matched is unknown
        hit = hits[index]
        note(
            call,
            ({"rule": s.kind, "repository": hit.repository, "path": hit.path, "line": hit.line_number} for s in spans),
        )
    order = sorted(masked)
    still = {order[row] for row in await lines_matching(query, [masked[index] for index in order])}
    counted.update(index for index in withheld if index in still)
    gone |= withheld | (set(masked) - still)
    shown = {
        index: hit.model_copy(update={"line": lines[index]}) if lines.get(index, hit.line) != hit.line else hit
        for index, hit in enumerate(hits)
        if index not in gone
    }
    return GuardedHits(shown, frozenset(counted))


def _to_rematch(
    index: int, view: LineView, number: int, rematchable: bool, masked: dict[int, MaskedLine], gone: set[int]
) -> bool:
    """True when the hit's whole line holds a credential: then it is noted for the re-match, or left out (`gone`)
    when the re-match could not answer as the search engine would: a line too long, a line whose bytes were not
    UTF-8 (the engine saw bytes, the guard sees U+FFFD), or a regex that another engine found (`rematchable`
    false: git grep's PCRE, in the C locale, and ripgrep differ on `\\<`, Unicode classes, case folding)."""
    _, spans = view.line(number)
    if not spans:
        return False
    raw = view.raw_line(number)  # a trailing \r kept: `"$` must not match where the file has `"\r`
    if not rematchable or len(raw) > REMATCH_LINE_CHARS or "\ufffd" in raw:
        gone.add(index)
    else:
        masked[index] = masked_line(raw, spans)
    return True


def _withheld_lines(
    view: LineView,
    hits: Sequence[SearchHitOut],
    indexes: Sequence[int],
    rematchable: bool,
    masked: dict[int, MaskedLine],
    counted: set[int],
) -> None:
    """Hits of a file strict redaction withholds: counted when their line holds no credential; a line that does is
    re-matched without it (in `masked`) and counted only if the query still finds it. A line the file lacks: neither."""
    for index in indexes:
        number = hits[index].line_number
        if number > view.line_count:
            continue
        if not _to_rematch(index, view, number, rematchable, masked, set()):
            counted.add(index)
