"""The validation rules of `bastion.repos.names` exactly as first written (commit e09662e), before the regular
expression fast paths were put in front of them: the reference that tests/repos/test_names.py compares the
current functions with on generated inputs. Do not change it to make a test pass; a rule change belongs in
names.py and in the explicit cases of test_names.py."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from bastion.errors import InvalidInput

__all__ = ["reference_validate_path", "reference_validate_ref", "reference_validate_repo_name"]

MAX_REPO_NAME_LENGTH = 200
MAX_REF_LENGTH = 255
MAX_PATH_LENGTH = 4096

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_REF_FORBIDDEN_CHARS = {"~": "'~'", "^": "'^'", ":": "':'", "\\": "a backslash", "*": "'*'", "?": "'?'", "[": "'['"}


def _describe_char(char: str) -> str:
    name = unicodedata.name(char, "unnamed character")
    return f"{char!r} (U+{ord(char):04X} {name})"


def _first_control_char(value: str) -> str | None:
    for char in value:
        if char == "\x00" or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return char
    return None


def reference_validate_repo_name(raw: str) -> str:
    """`owner/repo` (or `group/sub/repo`), ASCII letters, digits, `.`, `_`, `-` only. Returns it unchanged."""
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


def reference_validate_ref(raw: str) -> str:
    """A branch or tag (short or `refs/...`) or a hex SHA prefix, by git's check-ref-format rules and stricter.
    Returns it unchanged."""
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


def reference_validate_path(raw: str) -> str:
    """A repository-relative path, normalised: no leading `./`, no `//`, no trailing `/`; "" and "/" mean the root."""
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
