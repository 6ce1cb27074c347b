"""`path_glob` matching with ripgrep's (gitignore-style) rules, for the git-grep path where ripgrep is not used.

A glob without `/` matches the file name at any depth (`*.py`); a glob with `/` matches the whole path from the
root (`src/*.py`, a leading `/` is ignored); `*` and `?` never cross `/`; `**` crosses directories; `[...]` is a
character class. Every other character is literal, unlike the seed's matcher that replaced only the first `*` and
let regex characters through.

The glob is the caller's, so it is matched in time linear in the path (times the glob's length): a simulation of
all the positions the glob could be at, never backtracking. A backtracking regex would be exponential on globs
like `****...*Z` (one search call could hold the event loop for as long as its author liked). The same rules as
a regular expression are in tests/repos/globs_reference.py, the specification the tests compare the matcher with.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bastion.errors import InvalidInput

__all__ = ["class_regex", "glob_matcher"]


def class_regex(glob: str, start: int) -> tuple[str, int] | None:
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


# Tokens: a character to match (a literal, `?` or a class), or one of these repetitions.
_STAR = "*"  # any run of characters other than '/'
_ANY = "**"  # any run of characters
_DIRS = "**/"  # nothing, or any run of characters ending with '/' (leading directories)
_TAIL = "/**"  # nothing, or '/' and anything after it (what a glob naming a directory matches under it)


@dataclass(frozen=True, slots=True)
class _Char:
    matches: Callable[[str], bool]


_Token = _Char | str


def _tokens(glob: str) -> list[_Token]:
    anchored = "/" in glob.rstrip("/")
    glob = glob.lstrip("/")
    out: list[_Token] = [] if anchored else [_DIRS]
    index = 0
    while index < len(glob):
        char = glob[index]
        if glob.startswith("**/", index):
            out.append(_DIRS)
            index += 3
        elif glob.startswith("**", index) or (char == "*" and out and out[-1] in (_STAR, _ANY)):
            # `***...` is `**`: merged, so a run of stars costs one state however long it is
            if out and out[-1] in (_STAR, _ANY):
                out[-1] = _ANY
            else:
                out.append(_ANY)
            index += 2 if glob.startswith("**", index) else 1
        elif char == "*":
            out.append(_STAR)
            index += 1
        elif char == "?":
            out.append(_Char(lambda c: c != "/"))
            index += 1
        elif char == "[" and (found := class_regex(glob, index)) is not None:
            try:
                pattern = re.compile(found[0], re.DOTALL)
            except re.error as exc:
                shown = glob[index : found[1]]
                raise InvalidInput(f"path_glob has an invalid character class {shown!r}: {exc}") from None
            out.append(_Char(lambda c, p=pattern: p.fullmatch(c) is not None))
            index = found[1]
        else:
            out.append(_Char(lambda c, literal=char: c == literal))
            index += 1
    out.append(_TAIL)
    return out


def glob_matcher(glob: str) -> Callable[[str], bool]:
    """A predicate on repository-relative paths; InvalidInput for a glob with a malformed character class."""
    return _Automaton(_tokens(glob)).matches


class _Automaton:
    """State i: about to match tokens[i]. State -1 - i: inside tokens[i] (a _DIRS before its '/', or a _TAIL past
    its '/'), where it keeps consuming. State `end`: the whole glob matched."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.end = len(tokens)
        self.start = self._closure({0})

    def matches(self, path: str) -> bool:
        states = self.start
        for char in path:
            states = self._step(states, char)
            if not states:
                return False
        return self.end in states or any(state < 0 and self.tokens[-1 - state] == _TAIL for state in states)

    def _closure(self, states: set[int]) -> set[int]:
        """Add every state reachable without consuming a character: each repetition may match nothing."""
        todo = list(states)
        while todo:
            state = todo.pop()
            if 0 <= state < self.end and isinstance(self.tokens[state], str) and state + 1 not in states:
                states.add(state + 1)
                todo.append(state + 1)
        return states

    def _step(self, states: set[int], char: str) -> set[int]:
        after: set[int] = set()
        for state in states:
            if state < 0:  # inside a _DIRS (until a '/') or a _TAIL (to the end)
                after.add(state)
                if char == "/" and self.tokens[-1 - state] == _DIRS:
                    after.add(-state)  # the '/' that ends the directories: on to the next token
            elif state < self.end:
                self._advance(state, char, after)
        return self._closure(after)

    def _advance(self, state: int, char: str, after: set[int]) -> None:
        token = self.tokens[state]
        if isinstance(token, _Char):
            if token.matches(char):
                after.add(state + 1)
        elif token == _ANY or (token == _STAR and char != "/"):
            after.add(state)
        elif token == _DIRS:
            after.add(-1 - state)
            if char == "/":
                after.add(state + 1)
        elif token == _TAIL and char == "/":  # from its '/' on, everything matches
            after.add(-1 - state)
