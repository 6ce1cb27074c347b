"""From policy YAML text to compiled Defaults and Rules, collecting every problem with its line.

The loader raises on any problem; lint shows them all and still checks the rules that did parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bastion.policy.defaults import DEFAULT_DENY_PATHS, DEFAULT_MAX_FILE_SIZE, DEFAULT_REDACTION
from bastion.policy.globs import (
    GlobError,
    PathGlob,
    PathGlobSet,
    RefGlob,
    RepoGlob,
    RepoGlobSet,
    compile_path_glob,
    compile_ref_glob,
    compile_repo_glob,
)
from bastion.policy.model import ALL_OPERATIONS, Defaults, Effect, Rule, Subjects
from bastion.policy.sizes import parse_size
from bastion.policy.types import Operation, RedactionMode
from bastion.policy.yamldoc import Entry, NodeReader, Problem, line_of

__all__ = ["SUPPORTED_VERSION", "ParsedPolicy", "parse_document"]

SUPPORTED_VERSION = 1

_TOP_KEYS = ("version", "defaults", "rules")
_DEFAULTS_KEYS = ("max_file_size", "deny_paths", "extra_deny_paths", "redaction")
_RULE_KEYS = (
    "name",
    "description",
    "effect",
    "repositories",
    "subjects",
    "operations",
    "refs",
    "deny_paths",
    "allow_paths",
    "paths",
    "max_file_size",
    "redaction",
)
_SUBJECT_KEYS = ("users", "groups")
_ALLOW_ONLY_KEYS = ("deny_paths", "allow_paths", "max_file_size", "redaction")
_REDACTION_MODES: tuple[RedactionMode, ...] = ("mask", "strict")
_OPERATION_NAMES = ", ".join(op.value for op in Operation)

_Glob = TypeVar("_Glob", RepoGlob, RefGlob, PathGlob)


@dataclass
class ParsedPolicy:
    """Everything that could be read. `rules` holds only the rules without problems; `problems` is empty for a
    usable policy."""

    source: str
    defaults: Defaults
    rules: list[Rule] = field(default_factory=list[Rule])
    problems: list[Problem] = field(default_factory=list[Problem])
    defaults_lines: dict[str, int] = field(default_factory=dict[str, int])
    rules_line: int | None = None


def parse_document(text: str, source: str = "<string>") -> ParsedPolicy:
    reader = NodeReader(text)
    parsed = ParsedPolicy(source, _builtin_defaults())
    root = reader.root()
    if root is not None:
        top = reader.mapping(root, "the policy file", _TOP_KEYS)
        if top is not None:
            _read_version(reader, top.get("version"), line_of(root))
            if "defaults" in top:
                parsed.defaults_lines = {"defaults": top["defaults"].line}
                parsed.defaults = _read_defaults(reader, top["defaults"].value, parsed.defaults_lines)
            if "rules" in top:
                parsed.rules_line = top["rules"].line
                parsed.rules = _read_rules(reader, top["rules"].value)
    parsed.problems = sorted(reader.problems, key=lambda problem: problem.line or 0)
    return parsed


def _builtin_defaults() -> Defaults:
    globs = [compile_path_glob(pattern) for pattern in DEFAULT_DENY_PATHS]
    return Defaults(DEFAULT_MAX_FILE_SIZE, DEFAULT_REDACTION, PathGlobSet(globs, case_sensitive=False))


def _read_version(reader: NodeReader, entry: Entry | None, root_line: int) -> None:
    if entry is None:
        reader.problem(f"missing 'version: {SUPPORTED_VERSION}' at the top of the policy file", root_line)
        return
    version = reader.value(entry.value)
    if type(version) is not int or version != SUPPORTED_VERSION:  # `true == 1` in Python
        reader.problem(
            f"unsupported version {version!r}: this bastion reads policy version {SUPPORTED_VERSION}", entry.line
        )


def _read_defaults(reader: NodeReader, node: Node, lines: dict[str, int]) -> Defaults:
    builtin = _builtin_defaults()
    entries = reader.mapping(node, "defaults", _DEFAULTS_KEYS)
    if entries is None:
        return builtin
    lines.update({key: entry.line for key, entry in entries.items()})
    max_file_size = builtin.max_file_size
    if "max_file_size" in entries:
        max_file_size = _read_size(reader, entries["max_file_size"], "defaults.max_file_size") or max_file_size
    redaction = builtin.redaction
    if "redaction" in entries:
        redaction = _read_redaction(reader, entries["redaction"], "defaults.redaction") or redaction
    deny_globs = list(builtin.deny_paths.globs)
    if "deny_paths" in entries:  # replaces the built-in list
        deny_globs = _read_globs(reader, entries["deny_paths"], "defaults.deny_paths", compile_path_glob, True) or []
    if "extra_deny_paths" in entries:
        what = "defaults.extra_deny_paths"
        deny_globs += _read_globs(reader, entries["extra_deny_paths"], what, compile_path_glob, True) or []
    return Defaults(max_file_size, redaction, PathGlobSet(deny_globs, case_sensitive=False))


def _read_rules(reader: NodeReader, node: Node) -> list[Rule]:
    if isinstance(node, ScalarNode) and reader.value(node) is None:  # `rules:` with nothing under it
        return []
    if not isinstance(node, SequenceNode):
        reader.problem("rules must be a list of rules (each starting with '- name: ...')", line_of(node))
        return []
    rules: list[Rule] = []
    first_line_of: dict[str, int] = {}
    for index, rule_node in enumerate(node.value, start=1):
        rule = _read_rule(reader, rule_node, index, first_line_of)
        if rule is not None:
            rules.append(rule)
    return rules


def _read_rule(reader: NodeReader, node: Node, index: int, first_line_of: dict[str, int]) -> Rule | None:
    problems_before = len(reader.problems)
    line = line_of(node)
    label = _label(reader, node, index)
    entries = reader.mapping(node, label, _RULE_KEYS)
    if entries is None:
        return None
    name = _read_name(reader, entries, label, line, first_line_of)
    effect = _read_effect(reader, entries.get("effect"), label)
    _check_keys_for_effect(reader, entries, effect, label)

    repositories = _required(reader, entries, "repositories", label, line)
    repo_globs = None
    if repositories is not None:
        repo_globs = _read_globs(reader, repositories, f"{label} repositories", compile_repo_glob)
    subjects_entry = _required(reader, entries, "subjects", label, line)
    subjects = _read_subjects(reader, subjects_entry, label) if subjects_entry is not None else None
    if "operations" in entries:
        operations = _read_operations(reader, entries["operations"], label)
    elif effect == "deny":  # a deny rule that is narrower than meant is the dangerous mistake: default to all
        operations = ALL_OPERATIONS
    else:
        reader.problem(f"{label} needs 'operations' (a list of {_OPERATION_NAMES} or '*')", line)
        operations = None

    def optional_globs(key: str, compile_glob: Callable[[str], _Glob], allow_empty: bool = False) -> list[_Glob]:
        return (
            _read_globs(reader, entries[key], f"{label} {key}", compile_glob, allow_empty) or []
            if key in entries
            else []
        )

    refs = optional_globs("refs", compile_ref_glob)
    deny_paths = optional_globs("deny_paths", compile_path_glob, True)
    allow_paths = optional_globs("allow_paths", compile_path_glob)
    paths = optional_globs("paths", compile_path_glob)
    max_file_size = (
        _read_size(reader, entries["max_file_size"], f"{label} max_file_size") if "max_file_size" in entries else None
    )
    redaction = _read_redaction(reader, entries["redaction"], f"{label} redaction") if "redaction" in entries else None
    description = _read_description(reader, entries.get("description"), label)

    if len(reader.problems) > problems_before or name is None or not repo_globs or subjects is None:
        return None
    assert operations is not None
    return Rule(
        name=name,
        effect=effect,
        repositories=RepoGlobSet(repo_globs),
        subjects=subjects,
        operations=operations,
        refs=tuple(refs) if "refs" in entries else None,
        deny_paths=PathGlobSet(deny_paths, case_sensitive=False) if deny_paths else None,
        allow_paths=PathGlobSet(allow_paths, case_sensitive=True) if "allow_paths" in entries else None,
        paths=PathGlobSet(paths, case_sensitive=False) if "paths" in entries else None,
        max_file_size=max_file_size,
        redaction=redaction,
        description=description,
        line=line,
        key_lines={key: entry.line for key, entry in entries.items()},
    )


def _label(reader: NodeReader, node: Node, index: int) -> str:
    """`rule 'NAME'` when the rule has a usable name (so messages about its other keys can say which rule),
    else `rule #N`."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == "name" and isinstance(value_node, ScalarNode):
                name = reader.value(value_node)
                if isinstance(name, str) and name.strip() and "'" not in name and name.strip().isprintable():
                    return f"rule '{name.strip()}'"
    return f"rule #{index}"


def _required(reader: NodeReader, entries: dict[str, Entry], key: str, label: str, line: int) -> Entry | None:
    if key not in entries:
        reader.problem(f"{label} needs '{key}'", line)
        return None
    return entries[key]


def _read_name(
    reader: NodeReader, entries: dict[str, Entry], label: str, line: int, first_line_of: dict[str, int]
) -> str | None:
    entry = _required(reader, entries, "name", label, line)
    if entry is None:
        return None
    name = reader.string(entry.value, f"{label} name")
    if name is None:
        return None
    name = name.strip()
    if any(not char.isprintable() or char == "'" for char in name):
        reader.problem(
            f"{label} name '{name}' must be printable and contain no quote (it appears in reasons)", entry.line
        )
        return None
    if name in first_line_of:
        reader.problem(f"duplicate rule name '{name}' (first defined on line {first_line_of[name]})", entry.line)
        return None
    first_line_of[name] = entry.line
    return name


def _read_effect(reader: NodeReader, entry: Entry | None, label: str) -> Effect:
    if entry is None:
        return "allow"
    effect = reader.value(entry.value)
    if effect not in ("allow", "deny"):
        reader.problem(f"{label} effect must be 'allow' or 'deny', got {effect!r}", entry.line)
        return "allow"
    return effect


def _check_keys_for_effect(reader: NodeReader, entries: dict[str, Entry], effect: Effect, label: str) -> None:
    if effect == "deny":
        for key in _ALLOW_ONLY_KEYS:
            if key in entries:
                reader.problem(
                    f"{label}: '{key}' only applies to allow rules; a deny rule narrows itself with 'refs' and "
                    "'paths' (deny only those)",
                    entries[key].line,
                )
    elif "paths" in entries:
        reader.problem(
            f"{label}: 'paths' only applies to deny rules; an allow rule uses 'allow_paths' (only these paths) "
            "or 'deny_paths' (not these paths)",
            entries["paths"].line,
        )


def _read_globs(
    reader: NodeReader, entry: Entry, what: str, compile_glob: Callable[[str], _Glob], allow_empty: bool = False
) -> list[_Glob] | None:
    items = reader.strings(entry.value, what, allow_empty=allow_empty)
    if items is None:
        return None
    globs: list[_Glob] = []
    ok = True
    for pattern, line in items:
        try:
            globs.append(compile_glob(pattern))
        except GlobError as exc:
            reader.problem(f"{what}: {exc}", line)
            ok = False
    return globs if ok else None


_WILDCARD_IN_NAME = re.compile(r"[*?]")


def _read_subjects(reader: NodeReader, entry: Entry, label: str) -> Subjects | None:
    entries = reader.mapping(entry.value, f"{label} subjects", _SUBJECT_KEYS)
    if entries is None:
        return None
    found: dict[str, frozenset[str]] = {}
    ok = True
    for key in _SUBJECT_KEYS:
        if key not in entries:
            found[key] = frozenset()
            continue
        items = reader.strings(entries[key].value, f"{label} subjects.{key}", allow_empty=True)
        if items is None:
            ok = False
            continue
        for name, line in items:
            if name != "*" and _WILDCARD_IN_NAME.search(name):
                reader.problem(
                    f"{label} subjects.{key}: '{name}' is not a pattern; names match exactly and only '*' alone "
                    "means any",
                    line,
                )
                ok = False
        found[key] = frozenset(name for name, _ in items)
    return Subjects(found["users"], found["groups"]) if ok else None


def _read_operations(reader: NodeReader, entry: Entry, label: str) -> frozenset[Operation] | None:
    items = reader.strings(entry.value, f"{label} operations")
    if items is None:
        return None
    operations: set[Operation] = set()
    for name, line in items:
        if name == "*":
            operations |= ALL_OPERATIONS
        elif name in Operation._value2member_map_:
            operations.add(Operation(name))
        else:
            reader.problem(f"{label}: unknown operation '{name}'; use {_OPERATION_NAMES} or '*'", line)
            return None
    return frozenset(operations)


def _read_size(reader: NodeReader, entry: Entry, what: str) -> int | None:
    try:
        return parse_size(reader.value(entry.value))
    except ValueError as exc:
        reader.problem(f"{what}: {exc}", entry.line)
        return None


def _read_redaction(reader: NodeReader, entry: Entry, what: str) -> RedactionMode | None:
    mode = reader.value(entry.value)
    if mode not in _REDACTION_MODES:
        reader.problem(f"{what} must be 'mask' or 'strict', got {mode!r}", entry.line)
        return None
    return mode


def _read_description(reader: NodeReader, entry: Entry | None, label: str) -> str | None:
    if entry is None:
        return None
    text = reader.string(entry.value, f"{label} description")
    return " ".join(text.split()) if text else None  # block scalars: one line in reasons
