"""The node reader: values with lines, every problem collected, merge keys resolved."""

from __future__ import annotations

from bastion.policy.yamldoc import NodeReader


def test_mapping_reports_every_unknown_and_duplicate_key_and_keeps_the_rest() -> None:
    reader = NodeReader("a: 1\nb: 2\nzz: 3\na: 4\n1: 5\n")
    root = reader.root()
    assert root is not None
    entries = reader.mapping(root, "top", ["a", "b"])
    assert entries is not None
    assert {key: (entry.line, reader.value(entry.value)) for key, entry in entries.items()} == {
        "a": (1, 1),
        "b": (2, 2),
    }
    assert [(p.line, p.message) for p in reader.problems] == [
        (3, "top: unknown key 'zz'; known keys: a, b"),
        (4, "top: duplicate key 'a' (first on line 1)"),
        (5, "top: keys must be words, got 1 (a number)"),
    ]


def test_merged_keys_are_overridden_by_written_ones() -> None:
    reader = NodeReader("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\n")
    root = reader.root()
    assert root is not None
    top = reader.mapping(root, "top", ["base", "use"])
    assert top is not None
    use = reader.mapping(top["use"].value, "use", ["x", "y"])
    assert use is not None
    assert {key: reader.value(entry.value) for key, entry in use.items()} == {"x": 1, "y": 3}
    assert reader.problems == []


def test_strings_checks_each_item() -> None:
    reader = NodeReader("[a, '', 3, b]")
    root = reader.root()
    assert root is not None
    assert reader.strings(root, "items") is None
    assert [p.message for p in reader.problems] == [
        "each item of items must be a non-empty string, got an empty one",
        "each item of items must be a non-empty string, got 3 (a number): quote it if it is meant as text",
    ]


def test_strings_empty_list() -> None:
    reader = NodeReader("[]")
    root = reader.root()
    assert root is not None
    assert reader.strings(root, "refs") is None
    assert reader.strings(root, "deny_paths", allow_empty=True) == []
    assert [p.message for p in reader.problems] == [
        "refs is an empty list, which matches nothing: list at least one item"
    ]


def test_invalid_yaml_names_the_line() -> None:
    reader = NodeReader("a: 1\nb: [1, 2\nc: 3\n")
    assert reader.root() is None
    assert reader.problems[0].line == 3
    assert reader.problems[0].message.startswith("not valid YAML:")
