"""The reference for bastion.repos.globs: its matching rules written as a regular expression, which is the plain way
to state them. Only for the tests: a backtracking regex engine must not run a caller's glob (see that module)."""

from __future__ import annotations

import re

from bastion.repos.globs import class_regex

__all__ = ["glob_to_regex"]


def glob_to_regex(glob: str) -> str:
    """`glob`'s rules as a regular expression."""
    anchored = "/" in glob.rstrip("/")
    glob = glob.lstrip("/")
    out: list[str] = []
    index = 0
    while index < len(glob):
        char = glob[index]
        if glob.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif glob.startswith("**", index):
            out.append(".*")
            index += 2
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[" and (found := class_regex(glob, index)) is not None:
            out.append(found[0])
            index = found[1]
        else:
            out.append(re.escape(char))
            index += 1
    body = "".join(out)
    if anchored:
        return rf"\A{body}(?:/.*)?\Z"
    return rf"\A(?:.*/)?{body}(?:/.*)?\Z"
