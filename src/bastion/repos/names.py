"""Validation of every caller-supplied repository name, ref and path, before anything else sees them.

These values end up as git arguments and filesystem paths, so each check refuses the specific trick it names
(option injection, traversal, encoded or look-alike characters) with a message the caller can act on.

Every call first tries one compiled regular expression that matches only plain ASCII values the full rules
accept unchanged (`acme/widgets`, `main`, `src/app.py`): about 0.3 µs instead of a few µs of per-character
checks. Everything else, including every refusal and its message, goes through the full rules.
tests/repos/test_names.py compares both with the rules as first written on generated inputs.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from bastion.errors import InvalidInput

__all__ = [
    "MAX_PATH_LENGTH",
    "MAX_REF_LENGTH",
    "MAX_REPO_NAME_LENGTH",
    "is_full_sha",
    "looks_like_sha",
    "validate_path",
    "validate_ref",
    "validate_repo_name",
]

MAX_REPO_NAME_LENGTH = 200
MAX_REF_LENGTH = 255
MAX_PATH_LENGTH = 4096

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_FULL_SHA = re.compile(r"[0-9a-f]{40}")
_SHA_PREFIX = re.compile(r"[0-9a-fA-F]{7,40}")
# Characters git's check-ref-format refuses anywhere in a ref, plus `\` which it also refuses.
_REF_FORBIDDEN_CHARS = {"~": "'~'", "^": "'^'", ":": "':'", "\\": "a backslash", "*": "'*'", "?": "'?'", "[": "'['"}

# The fast paths. Each admits a subset of what the full rules accept, returned unchanged:
# names: segments of [A-Za-z0-9._-] that neither start with '.' or '-' nor end with '.', at least two of them
_NAME_SEGMENT = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_-])?"
_PLAIN_REPO_NAME = re.compile(rf"{_NAME_SEGMENT}(?:/{_NAME_SEGMENT})+")
# refs: components of [A-Za-z0-9_.+-] starting with neither '.' nor '-' (then no '..', '.lock' or final '.')
_REF_COMPONENT = r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*"
_PLAIN_REF = re.compile(rf"{_REF_COMPONENT}(?:/{_REF_COMPONENT})*")
# paths (ASCII only): printable, no backslash or '%', no empty, '.' or '..' segment, not starting with '-'
_PATH_SEGMENT = r"(?!\.\.?(?:/|\Z))[^/\\%\x00-\x1f\x7f]+"
_PLAIN_PATH = re.compile(rf"(?!-){_PATH_SEGMENT}(?:/{_PATH_SEGMENT})*")


def is_full_sha(value: str) -> bool:
    """A complete lowercase SHA-1 object id, as git prints it."""
    return len(value) == 40 and _FULL_SHA.fullmatch(value) is not None


def looks_like_sha(value: str) -> bool:
    """7 to 40 hex digits: something that may abbreviate a commit id."""
    return _SHA_PREFIX.fullmatch(value) is not None


def _describe_char(char: str) -> str:
    name = unicodedata.name(char, "unnamed character")
    return f"{char!r} (U+{ord(char):04X} {name})"


def _first_control_char(value: str) -> str | None:
    for char in value:
        if char == "\x00" or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return char
    return None


def validate_repo_name(raw: str) -> str:
    """`owner/repo` (or `group/sub/repo`), ASCII letters, digits, `.`, `_`, `-` only. Returns it unchanged."""
    if (
        isinstance(raw, str)  # pyright: ignore[reportUnnecessaryIsInstance] - callers are untyped JSON
        and len(raw) <= MAX_REPO_NAME_LENGTH
        and _PLAIN_REPO_NAME.fullmatch(raw) is not None
        and raw[-4:].lower() != ".git"
    ):
        return raw
    return _check_repo_name(raw)


def _check_repo_name(raw: str) -> str:
    if not isinstance(raw, str) or not raw:  # pyright: ignore[reportUnnecessaryIsInstance] - callers are untyped JSON
        raise InvalidInput("repository name is empty: use 'owner/repo'")
    if len(raw) > MAX_REPO_NAME_LENGTH:
        raise InvalidInput(f"repository name is longer than {MAX_REPO_NAME_LENGTH} characters")
    control = _first_control_char(raw)
    if control is not None:
        raise InvalidInput(f"repository name contains a control character {_describe_char(control)}")
    if any(char.isspace() for char in raw):
        raise InvalidInput("repository name contains whitespace")
    if "%" in raw:
        raise InvalidInput("repository name contains '%': percent-encoding is not accepted, send the plain name")
    for char in raw:
        if not char.isascii():
            raise InvalidInput(
                f"repository name contains the non-ASCII character {_describe_char(char)}; "
                "names are ASCII letters, digits, '.', '_' and '-' (look-alike characters are refused)"
            )
    if raw.endswith("/"):
        raise InvalidInput(f"repository name {raw!r} ends with '/': use 'owner/repo'")
    if raw.lower().endswith(".git"):
        raise InvalidInput(f"repository names have no .git suffix: use {raw[:-4]!r}")
    segments = raw.split("/")
    if len(segments) < 2:
        raise InvalidInput(f"repository name {raw!r} has no owner: use 'owner/repo'")
    for segment in segments:
        _check_name_segment(raw, segment)
    return raw


def _check_name_segment(raw: str, segment: str) -> None:
    if not segment:
        raise InvalidInput(f"repository name {raw!r} has an empty segment ('//' or a leading '/')")
    if segment in (".", ".."):
        raise InvalidInput(f"repository name {raw!r} contains a {segment!r} segment")
    if segment.startswith("-"):
        raise InvalidInput(f"repository name segment {segment!r} starts with '-' (looks like an option)")
    if segment.startswith("."):
        raise InvalidInput(f"repository name segment {segment!r} starts with '.'")
    if segment.endswith("."):
        raise InvalidInput(f"repository name segment {segment!r} ends with '.'")
    if _SEGMENT.fullmatch(segment) is None:
        bad = next(char for char in segment if _SEGMENT.fullmatch(char) is None)
        raise InvalidInput(
            f"repository name segment {segment!r} contains {bad!r}; allowed are letters, digits, '.', '_' and '-'"
        )


def validate_ref(raw: str) -> str:
    """A branch or tag (short or `refs/...`) or a hex SHA prefix, by git's check-ref-format rules and stricter.
    Returns it unchanged."""
    if (
        isinstance(raw, str)  # pyright: ignore[reportUnnecessaryIsInstance]
        and len(raw) <= MAX_REF_LENGTH
        and _PLAIN_REF.fullmatch(raw) is not None
        and ".." not in raw
        and ".lock" not in raw
        and raw[-1] != "."
    ):
        return raw
    return _check_ref(raw)


def _check_ref(raw: str) -> str:
    if not isinstance(raw, str) or not raw:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidInput("ref is empty: give a branch, tag or commit SHA (or omit it for the default branch)")
    if len(raw) > MAX_REF_LENGTH:
        raise InvalidInput(f"ref is longer than {MAX_REF_LENGTH} characters")
    control = _first_control_char(raw)
    if control is not None:
        raise InvalidInput(f"ref contains a control character {_describe_char(control)}")
    if any(char.isspace() for char in raw):
        raise InvalidInput("ref contains whitespace")
    if raw.startswith("-"):
        raise InvalidInput(f"ref {raw!r} starts with '-' (looks like a command-line option)")
    if ".." in raw:
        raise InvalidInput(f"ref {raw!r} contains '..'; compare two refs with the compare tool instead")
    if "@{" in raw or raw == "@":
        raise InvalidInput(f"ref {raw!r} uses '@' reflog syntax, which is not accepted")
    for char, label in _REF_FORBIDDEN_CHARS.items():
        if char in raw:
            raise InvalidInput(f"ref {raw!r} contains {label}, which refs cannot contain")
    _check_ref_shape(raw)
    return raw


def _check_ref_shape(raw: str) -> None:
    if raw.startswith("/") or raw.endswith("/"):
        raise InvalidInput(f"ref {raw!r} starts or ends with '/'")
    if "//" in raw:
        raise InvalidInput(f"ref {raw!r} contains '//'")
    if raw.endswith("."):
        raise InvalidInput(f"ref {raw!r} ends with '.'")
    for component in raw.split("/"):
        if component.startswith("."):
            raise InvalidInput(f"ref {raw!r} has a component starting with '.'")
        if component.endswith(".lock"):
            raise InvalidInput(f"ref {raw!r} has a component ending with '.lock'")


def validate_path(raw: str) -> str:
    """A repository-relative path, normalised: no leading `./`, no `//`, no trailing `/`; "" and "/" mean the root."""
    if (
        isinstance(raw, str)  # pyright: ignore[reportUnnecessaryIsInstance]
        and len(raw) <= MAX_PATH_LENGTH
        and raw.isascii()
        and _PLAIN_PATH.fullmatch(raw) is not None
    ):
        return raw
    return _check_path(raw)


def _check_path(raw: str) -> str:
    if not isinstance(raw, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidInput("path must be a string")
    if len(raw) > MAX_PATH_LENGTH:
        raise InvalidInput(f"path is longer than {MAX_PATH_LENGTH} characters")
    control = _first_control_char(raw)
    if control is not None:
        raise InvalidInput(f"path contains a control character {_describe_char(control)}")
    if "\\" in raw:
        raise InvalidInput(f"path {raw!r} contains a backslash; use '/' between directories")
    if raw in ("", "/", ".", "./"):
        return ""
    if raw.startswith("/"):
        raise InvalidInput(f"path {raw!r} is absolute; paths are relative to the repository root (e.g. 'src/app.py')")
    segments: list[str] = []
    for segment in raw.split("/"):
        if segment in ("", "."):
            continue
        if segment == ".." or unquote(segment) in (".", ".."):
            raise InvalidInput(f"path {raw!r} contains a '..' segment (or an encoded one); paths stay inside the repo")
        segments.append(segment)
    normalised = "/".join(segments)
    if normalised.startswith("-"):
        raise InvalidInput(f"path {raw!r} starts with '-' (looks like a command-line option)")
    return normalised
