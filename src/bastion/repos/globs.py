"""`path_glob` matching with ripgrep's (gitignore-style) rules, for the git-grep path where ripgrep is not used.

A glob without `/` matches the file name at any depth (`*.py`); a glob with `/` matches the whole path from the
root (`src/*.py`, a leading `/` is ignored); `*` and `?` never cross `/`; `**` crosses directories; `[...]` is a
character class. Every other character is literal (escaped), unlike the seed's matcher that replaced only the
first `*` and let regex characters through.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["glob_matcher", "glob_to_regex"]


def _class(glob: str, start: int) -> tuple[str, int] | None:
    """A `[...]` class starting at `start` as a regex class, and the index after it; None if unterminated."""
    end = start + 1
    if end < len(glob) and glob[end] in "!^":
        end += 1
    if end < len(glob) and glob[end] == "]":
        end += 1
    end = glob.find("]", end)
    if end < 0:
        return None
    body = glob[start + 1 : end]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    body = body.replace("\\", "\\\\").replace("[", "\\[")
    return ("[^/" if negate else "[") + body + "]", end + 1


def glob_to_regex(glob: str) -> str:
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
        elif char == "[" and (found := _class(glob, index)) is not None:
            out.append(found[0])
            index = found[1]
        else:
            out.append(re.escape(char))
            index += 1
    body = "".join(out)
    if anchored:
        return rf"\A{body}(?:/.*)?\Z"
    return rf"\A(?:.*/)?{body}(?:/.*)?\Z"


def glob_matcher(glob: str) -> Callable[[str], bool]:
    """A predicate on repository-relative paths."""
    pattern = re.compile(glob_to_regex(glob), re.DOTALL)
    return lambda path: pattern.match(path) is not None
