"""Whether a search query matches lines outside their credentials, asked of ripgrep: how the content guard keeps a
search from confirming a guess at a masked value (bastion.tools.search_guard).

Each credential in a line is replaced by filler of the same length whose first and last characters are of the same
class (word character or not) as the credential's, and a line counts only when ripgrep finds a match lying wholly
outside the filler. Such a match is a match in the real line too (the same text, and every context assertion it
makes, `\\b`, `^`, `$`, sees the same classes around it), and whether there is one depends only on the masked line:
not on the credential, and not on whether the query also matched inside it (`guess|REDACTED` finds nothing more).
The pattern never runs in Python (its regex dialect differs and backtracks).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.guard.spans import SecretSpan, is_word_char
from bastion.repos.gitcmd import kill_process_tree, spawn
from bastion.repos.search import ripgrep_executable
from bastion.repos.types import SearchQuery

__all__ = ["MAX_LINE_CHARS", "MaskedLine", "lines_matching", "masked_line"]

logger = logging.getLogger(__name__)

TIME_LIMIT = 5.0  # seconds; the lines are a search's hits, at most a few hundred
MAX_LINE_CHARS = 4096  # a longer line holding a credential is not re-matched: its hit is left out


@dataclass(frozen=True, slots=True)
class MaskedLine:
    text: str  # the line, each credential replaced by filler
    filler: tuple[tuple[int, int], ...]  # where the filler is, in UTF-8 byte offsets (what ripgrep reports)


def masked_line(line: str, spans: Sequence[SecretSpan]) -> MaskedLine:
    """`line` (no line break) with each span replaced by same-length filler: `a` or `-` at each end as the span's
    own first and last characters are word characters or not, `-` in between."""
    parts: list[str] = []
    filler: list[tuple[int, int]] = []
    position = offset = 0
    for span in sorted(spans):
        start, end = max(span.start, position), min(span.end, len(line))
        if end <= start:
            continue
        before = line[position:start]
        parts.append(before)
        offset += len(before.encode("utf-8", "replace"))
        secret = line[start:end]
        fill = ["-"] * len(secret)
        fill[0] = "a" if is_word_char(secret[0]) else "-"
        fill[-1] = "a" if is_word_char(secret[-1]) else "-"
        parts.append("".join(fill))
        filler.append((offset, offset + len(secret)))
        offset += len(secret)  # the filler is ASCII: one byte a character
        position = end
    parts.append(line[position:])
    return MaskedLine("".join(parts), tuple(filler))


def _argv(rg: str, query: SearchQuery) -> list[str]:
    # --text: a NUL in one line must not turn the whole input into "binary file matches"; --encoding=none: a BOM
    # at the start is three bytes of the line, as the search saw them, not something to strip (offsets move).
    argv = [rg, "--no-config", "--json", "--text", "--encoding=none", "--color=never"]
    argv.append("--case-sensitive" if query.case_sensitive else "--ignore-case")
    if not query.regex:
        argv.append("--fixed-strings")
    return [*argv, f"--regexp={query.pattern}", "-"]


def _outside(start: int, end: int, filler: tuple[tuple[int, int], ...]) -> bool:
    return all(end <= begin or start >= stop for begin, stop in filler)


async def lines_matching(query: SearchQuery, lines: Sequence[MaskedLine]) -> set[int]:
    """Indexes of `lines` with a match of `query` wholly outside their filler. Empty when ripgrep cannot say: it is
    missing, refuses the pattern (a `git grep -P` pattern beyond its dialect) or runs out of time; the caller then
    treats every line as not matching, which is the safe answer for the guard."""
    rg = ripgrep_executable()
    if rg is None or not lines:
        return set()
    process = await spawn(_argv(rg, query), stdin=True)
    try:
        async with asyncio.timeout(TIME_LIMIT):
            out, err = await process.communicate("\n".join(m.text for m in lines).encode("utf-8", "replace") + b"\n")
    except TimeoutError:
        logger.warning("re-matching %d masked search hits took over %.0f s; they are left out", len(lines), TIME_LIMIT)
        return set()
    finally:
        if process.returncode is None:  # timed out, or the call was cancelled (the client went away)
            await kill_process_tree(process)
    if process.returncode not in (0, 1):
        logger.info("ripgrep could not re-match masked search hits (%s); they are left out", err.decode()[:200].strip())
        return set()
    found: set[int] = set()
    for row in out.splitlines():
        message = json.loads(row)
        if message.get("type") != "match":
            continue
        index = int(message["data"]["line_number"]) - 1
        if not 0 <= index < len(lines):
            continue
        if any(_outside(int(m["start"]), int(m["end"]), lines[index].filler) for m in message["data"]["submatches"]):
            found.add(index)
    return found
