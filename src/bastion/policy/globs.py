"""Glob patterns for repositories, refs and paths, compiled to anchored regular expressions.

One small grammar for all three: a pattern is split on `/` into segments; inside a segment `*` matches any run
of characters (possibly empty) and `?` exactly one, never a `/`; a segment that is exactly `**` matches zero or
more whole segments. Every other character is literal (`.`, `+`, `(`, `[`, `\\` ...): there are no character
classes and no escapes, so a pattern means what it looks like. Seed 000's matcher replaced only the first `*`
and escaped nothing; building the regex one character at a time from an allowlist of wildcards is the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "GlobError",
    "PathGlob",
    "PathGlobSet",
    "RefGlob",
    "RepoGlob",
    "RepoGlobSet",
    "compile_path_glob",
    "compile_ref_glob",
    "compile_repo_glob",
    "has_wildcards",
    "segment_regex",
]

# One path segment: what `*`, `?` and a `**` segment may consume. `[^/]+` rather than `.*` keeps `**` from
# matching empty segments and keeps the expressions free of ambiguous (slow) backtracking across `/`.
_SEGMENT = "[^/]+"
_REF_NAMESPACES = ("refs/heads/", "refs/tags/")


class GlobError(ValueError):
    """A pattern that cannot be compiled; the message says what is wrong with it."""


def has_wildcards(text: str) -> bool:
    return "*" in text or "?" in text


def segment_regex(segment: str) -> str:
    """The regex for one segment that is not `**`. Raises GlobError for `**` inside a segment (`a**b`)."""
    if "**" in segment:
        raise GlobError(f"'**' must be a whole segment between slashes (got '{segment}'); use '*' within a segment")
    out: list[str] = []
    for char in segment:
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _split_segments(pattern: str, kind: str) -> list[str]:
    if not pattern or not pattern.strip():
        raise GlobError(f"empty {kind} pattern")
    if pattern != pattern.strip() or any(c in pattern for c in "\n\r\t\x00"):
        raise GlobError(f"{kind} pattern '{pattern}' has leading or trailing whitespace or a control character")
    segments = pattern.split("/")
    if any(segment == "" for segment in segments):
        raise GlobError(f"{kind} pattern '{pattern}' has an empty segment (a leading, trailing or doubled '/')")
    if any(segment in (".", "..") for segment in segments):
        raise GlobError(f"{kind} pattern '{pattern}' contains a '.' or '..' segment")
    # collapse `**/**` (same meaning, and it would double the regex work)
    collapsed: list[str] = []
    for segment in segments:
        if not (segment == "**" and collapsed and collapsed[-1] == "**"):
            collapsed.append(segment)
    return collapsed


def _segments_regex(segments: Sequence[str]) -> str:
    """Join segment regexes; a `**` segment absorbs its neighbouring slashes so it can match zero segments."""
    last = len(segments) - 1
    if segments == ["**"]:
        return f"{_SEGMENT}(?:/{_SEGMENT})*"
    out: list[str] = []
    for index, segment in enumerate(segments):
        if segment == "**":
            if index == 0:
                out.append(f"(?:{_SEGMENT}/)*")
            elif index == last:
                out.append(f"(?:/{_SEGMENT})*")
            else:
                out.append(f"/(?:{_SEGMENT}/)*")
            continue
        if index > 0 and segments[index - 1] != "**":
            out.append("/")
        out.append(segment_regex(segment))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class RepoGlob:
    """A repository pattern (`acme/*`, `platform/**`), matched case-insensitively against `owner/repo`."""

    pattern: str
    segments: tuple[str, ...]
    regex: re.Pattern[str]

    def matches(self, repo: str) -> bool:
        return self.regex.fullmatch(repo) is not None


def compile_repo_glob(pattern: str) -> RepoGlob:
    segments = _split_segments(pattern, "repository")
    if len(segments) == 1 and segments[0] != "**":
        raise GlobError(
            f"repository pattern '{pattern}' has one segment, but repositories are named owner/repo: "
            f"did you mean '{pattern}/*'?"
        )
    regex = re.compile(_segments_regex(segments), re.IGNORECASE)
    return RepoGlob(pattern, tuple(segments), regex)


class RepoGlobSet:
    """Several repository patterns as one regex: one `fullmatch` per rule on the hot path."""

    __slots__ = ("globs", "regex")

    def __init__(self, globs: Iterable[RepoGlob]) -> None:
        self.globs = tuple(globs)
        joined = "|".join(f"(?:{glob.regex.pattern})" for glob in self.globs) or "(?!)"
        self.regex = re.compile(joined, re.IGNORECASE)

    def matches(self, repo: str) -> bool:
        return self.regex.fullmatch(repo) is not None

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(glob.pattern for glob in self.globs)


@dataclass(frozen=True, slots=True)
class RefGlob:
    """A ref pattern. Without `refs/` it matches branch and tag short names (`main`, `release/*`); with `refs/`
    it matches the full name. Refs outside refs/heads and refs/tags (pull requests, notes, stashes) only match
    a pattern that names their namespace literally (`refs/pull/*/head`), never a wildcard: `*`, `**` and
    `refs/**` grant branches and tags only."""

    pattern: str
    regex: re.Pattern[str]
    full_name: bool  # the pattern starts with `refs/`
    literal_namespace: bool  # ... and its second segment has no wildcard

    def matches(self, ref: str) -> bool:
        if self.full_name:
            if not self.literal_namespace and not ref.startswith(_REF_NAMESPACES):
                return False
            return self.regex.fullmatch(ref) is not None
        for namespace in _REF_NAMESPACES:
            if ref.startswith(namespace):
                return self.regex.fullmatch(ref, len(namespace)) is not None
        return False


def compile_ref_glob(pattern: str) -> RefGlob:
    segments = _split_segments(pattern, "ref")
    full_name = segments[0] == "refs" and len(segments) > 1
    literal_namespace = full_name and not has_wildcards(segments[1])
    # Case-sensitive on purpose: git refs are case-sensitive and `Main` is another branch.
    return RefGlob(pattern, re.compile(_segments_regex(segments)), full_name, literal_namespace)


@dataclass(frozen=True, slots=True)
class PathGlob:
    """A gitignore-like path pattern. Without a `/` (other than a trailing one) it matches a basename at any
    depth; otherwise (or with a leading `/`) it is anchored at the repository root. It matches a path when it
    matches the path itself or any ancestor directory, so `secrets/**` and `secrets` both cover
    `secrets/a/b`."""

    pattern: str
    anchored: bool
    segments: tuple[str, ...]
    core: str  # regex for the pattern itself: the whole anchored path, or one segment for a basename pattern

    @property
    def body(self) -> str:
        """Regex (for fullmatch) for "this pattern matches the path or one of its ancestors"."""
        if self.anchored:
            return f"(?:{self.core})(?:/.*)?"
        return f"(?:{_SEGMENT}/)*(?:{self.core})(?:/.*)?"

    def matches(self, path: str, *, case_sensitive: bool) -> bool:
        flags = 0 if case_sensitive else re.IGNORECASE
        return re.fullmatch(self.body, path, flags) is not None


def compile_path_glob(pattern: str) -> PathGlob:
    if pattern.startswith("!"):
        raise GlobError(f"path pattern '{pattern}': negation ('!') is not supported; use allow_paths instead")
    body = pattern
    anchored = body.startswith("/")
    if anchored:
        body = body[1:]
    if body.endswith("/"):  # gitignore's "directory only": we cannot tell, so it covers files of that name too
        body = body[:-1]
    if body.startswith("/") or body.endswith("/"):
        raise GlobError(f"path pattern '{pattern}' has an empty segment (a doubled '/')")
    segments = _split_segments(body, "path")
    if len(segments) > 1:
        anchored = True
    return PathGlob(pattern, anchored, tuple(segments), _segments_regex(segments))


class PathGlobSet:
    """Path patterns compiled into two regexes, so "is this path covered?" costs two regex calls whatever the
    number of patterns: basename patterns are searched for as whole segments (`(^|/)seg(/|$)`), anchored ones
    matched from the root. Which pattern matched is only worked out on a hit (the rare case, and the one that
    needs a reason)."""

    __slots__ = ("_anchored", "_basenames", "case_sensitive", "globs")

    def __init__(self, globs: Iterable[PathGlob], *, case_sensitive: bool) -> None:
        self.globs = tuple(globs)
        self.case_sensitive = case_sensitive
        flags = 0 if case_sensitive else re.IGNORECASE
        basenames = [glob.core for glob in self.globs if not glob.anchored]
        anchored = [glob.core for glob in self.globs if glob.anchored]
        self._basenames = re.compile(f"(?:^|/)(?:{'|'.join(basenames)})(?:/|$)", flags) if basenames else None
        self._anchored = re.compile(f"(?:{'|'.join(anchored)})(?:/.*)?", flags) if anchored else None

    def __bool__(self) -> bool:
        return bool(self.globs)

    def first_match(self, path: str) -> PathGlob | None:
        hit = (self._basenames is not None and self._basenames.search(path) is not None) or (
            self._anchored is not None and self._anchored.fullmatch(path) is not None
        )
        if not hit:
            return None
        for glob in self.globs:
            if glob.matches(path, case_sensitive=self.case_sensitive):
                return glob
        return None  # pragma: no cover - one of the two expressions matched, so one member does

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(glob.pattern for glob in self.globs)
