"""Which of a few lines a search query matches, asked of ripgrep: how the content guard learns whether a search hit
still matches once its credentials are masked (bastion.tools.guarding), so that whether a query finds a line never
depends on a masked value. The pattern never runs in Python (its regex dialect differs and backtracks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bastion.repos.gitcmd import kill_process_tree, spawn
from bastion.repos.search import ripgrep_executable
from bastion.repos.types import SearchQuery

__all__ = ["lines_matching"]

logger = logging.getLogger(__name__)

TIME_LIMIT = 5.0  # seconds; the lines are a search's hits, at most a few hundred


def _argv(rg: str, query: SearchQuery) -> list[str]:
    # -o with an empty replacement: one short "N:" line per match, whatever the length of the line.
    argv = [rg, "--no-config", "--line-number", "--only-matching", "--replace=", "--color=never"]
    argv.append("--case-sensitive" if query.case_sensitive else "--ignore-case")
    if not query.regex:
        argv.append("--fixed-strings")
    return [*argv, f"--regexp={query.pattern}", "-"]


async def lines_matching(query: SearchQuery, lines: Sequence[str]) -> set[int]:
    """Indexes of `lines` (single lines, no line breaks) that `query` matches. Empty when ripgrep cannot say: it is
    missing, refuses the pattern (a `git grep -P` pattern beyond its dialect) or runs out of time; the caller then
    treats every line as not matching, which is the safe answer for the guard."""
    rg = ripgrep_executable()
    if rg is None or not lines:
        return set()
    process = await spawn(_argv(rg, query), stdin=True)
    try:
        async with asyncio.timeout(TIME_LIMIT):
            out, err = await process.communicate("\n".join(lines).encode("utf-8", "replace") + b"\n")
    except TimeoutError:
        await kill_process_tree(process)
        logger.warning("re-matching %d masked search hits took over %.0f s; they are left out", len(lines), TIME_LIMIT)
        return set()
    if process.returncode not in (0, 1):
        logger.info("ripgrep could not re-match masked search hits (%s); they are left out", err.decode()[:200].strip())
        return set()
    found: set[int] = set()
    for row in out.splitlines():
        number, _, _ = row.partition(b":")
        if number.isdigit() and 0 < int(number) <= len(lines):
            found.add(int(number) - 1)
    return found
