"""Tool arguments the SDK would refuse in pydantic's words, or silently drop, refused in ours.

The SDK validates a call's arguments against the tool's signature before the body runs, and answers a failure
with pydantic's text: the internal model's name, the type code and a link to pydantic's documentation. An
argument the tool does not take is dropped without a word, so a model that writes `branch` for `ref` (or sends
github-mcp-server's `sha` to `get_file_contents`) reads the default branch believing it read another. Both are
`invalid input` here, naming each argument and what is wrong with it, in the shape every other refusal has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from bastion.errors import InvalidInput

__all__ = ["invalid_arguments", "unknown_arguments"]

_MAX_SHOWN = 60  # characters of a rejected value quoted back: enough to recognise it, not an echo of a blob
_MAX_ERRORS = 5


def unknown_arguments(tool: str, arguments: Mapping[str, Any], accepted: Sequence[str]) -> InvalidInput | None:
    """The refusal for arguments `tool` does not take, or None when it takes them all."""
    known = set(accepted)
    unknown = sorted(name for name in arguments if name not in known)
    if not unknown:
        return None
    names = ", ".join(repr(name[:_MAX_SHOWN]) for name in unknown[:_MAX_ERRORS])
    noun = "argument" if len(unknown) == 1 else "arguments"
    takes = ", ".join(accepted) or "no arguments"
    return InvalidInput(f"{tool} has no {noun} {names} (it takes: {takes})", unknown=unknown[:_MAX_ERRORS])


def invalid_arguments(error: ValidationError) -> InvalidInput:
    """The refusal for arguments that fail the tool's schema: each failing argument, what it must be, and what
    was sent (shortened)."""
    problems: list[str] = []
    fields: list[str] = []
    for item in error.errors(include_url=False)[:_MAX_ERRORS]:
        name = ".".join(str(part) for part in item["loc"]) or "arguments"
        fields.append(name)
        what = _lower_first(item["msg"])
        if item["type"] == "missing":
            problems.append(f"{name} is required")
        else:
            problems.append(f"{name}: {what} (got {_shown(item.get('input'))})")
    more = len(error.errors()) - len(problems)
    if more > 0:
        problems.append(f"and {more} more")
    return InvalidInput("; ".join(problems), arguments=fields)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
