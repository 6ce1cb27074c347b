"""Reading a YAML document node by node, so every problem can name its line and all of them are reported.

`yaml.safe_load` gives plain values without positions and silently keeps the last of two duplicate keys; a
policy file deserves better errors than that. This walks the composed node tree instead and collects problems
rather than stopping at the first one (`bastion policy lint` shows them all).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["Entry", "NodeReader", "Problem", "line_of"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with the document; `line` is 1-based, None when it concerns the whole file."""

    message: str
    line: int | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One `key: value` of a mapping."""

    key: str
    line: int
    value: Node


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{value!r} (a boolean)"
    if isinstance(value, int | float):
        return f"{value!r} (a number)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


class NodeReader:
    """Turns nodes into checked Python values, appending a Problem (and returning None) when a value is wrong."""

    def __init__(self, text: str) -> None:
        self.problems: list[Problem] = []
        self._loader = yaml.SafeLoader(text)

    def root(self) -> Node | None:
        """The document's root node; None (with a problem recorded) when the text is not one YAML document."""
        try:
            node = self._loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = " ".join(part for part in (exc.context, exc.problem) if part)
            self.problem(f"not valid YAML: {what}", mark.line + 1 if mark else None)
            return None
        except yaml.YAMLError as exc:
            self.problem(f"not valid YAML: {exc}", None)
            return None
        except RecursionError:  # the composer recurses per level: `rules:` and 3,000 nested `[` got this far
            self.problem("not a policy: the YAML is nested deeper than Python can read", None)
            return None
        if node is None:
            self.problem("the policy file is empty: start from examples/policy.yaml", None)
        return node

    def problem(self, message: str, line: int | None) -> None:
        self.problems.append(Problem(message, line))

    def value(self, node: Node) -> Any:
        return self._loader.construct_object(node, deep=True)

    def mapping(self, node: Node, what: str, known: Iterable[str]) -> dict[str, Entry] | None:
        """The entries of a mapping, in order. Unknown and duplicate keys are problems (each one, with its line);
        the known entries are still returned so the rest of the document can be checked too."""
        if not isinstance(node, MappingNode):
            self.problem(f"{what} must be a mapping (key: value), got {_describe(self.value(node))}", line_of(node))
            return None
        own_count = sum(key_node.tag != _MERGE_TAG for key_node, _ in node.value)
        self._loader.flatten_mapping(node)  # resolves `<<: *anchor`: merged pairs first, then the node's own
        merged_count = len(node.value) - own_count
        known_keys = list(known)
        entries: dict[str, Entry] = {}
        own_lines: dict[str, int] = {}
        for position, (key_node, value_node) in enumerate(node.value):
            key = self.value(key_node)
            line = line_of(key_node)
            if not isinstance(key, str):
                self.problem(f"{what}: keys must be words, got {_describe(key)}", line)
                continue
            if position >= merged_count:  # a key written here overrides a merged one, but not another written one
                if key in own_lines:
                    self.problem(f"{what}: duplicate key '{key}' (first on line {own_lines[key]})", line)
                    continue
                own_lines[key] = line
            if key not in known_keys:
                hint = difflib.get_close_matches(key, known_keys, n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.problem(
                    f"{what}: unknown key '{key}'{suggestion}; known keys: {', '.join(known_keys)}",
                    line,
                )
                continue
            entries[key] = Entry(key, line, value_node)
        return entries

    def string(self, node: Node, what: str) -> str | None:
        value = self.value(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, str) and not value.strip():
            self.problem(f"{what} must be a non-empty string, got an empty one", line_of(node))
            return None
        if not isinstance(value, str):
            shown = _describe(self.value(node))
            self.problem(
                f"{what} must be a non-empty string, got {shown}: quote it if it is meant as text", line_of(node)
            )
            return None
        return value

    def strings(self, node: Node, what: str, *, allow_empty: bool = False) -> list[tuple[str, int]] | None:
        """A list of strings with the line of each; None if the value is not a list of non-empty strings."""
        if not isinstance(node, SequenceNode):
            self.problem(f'{what} must be a list, e.g. ["..."], got {_describe(self.value(node))}', line_of(node))
            return None
        if not node.value and not allow_empty:
            self.problem(f"{what} is an empty list, which matches nothing: list at least one item", line_of(node))
            return None
        items: list[tuple[str, int]] = []
        ok = True
        for item_node in node.value:
            item = self.string(item_node, f"each item of {what}")
            if item is None:
                ok = False
            else:
                items.append((item, line_of(item_node)))
        return items if ok else None
