"""Subject matching: exact, case-sensitive names; `*` for any user or any group."""

from __future__ import annotations

from bastion.policy.model import Subjects

ENG = frozenset({"eng"})
NONE: frozenset[str] = frozenset()


def test_users_match_exactly_and_case_sensitively() -> None:
    subjects = Subjects(users=frozenset({"alice"}))
    assert subjects.matches("alice", NONE)
    assert not subjects.matches("Alice", NONE)
    assert not subjects.matches("alice2", NONE)


def test_groups_match_exactly() -> None:
    subjects = Subjects(groups=frozenset({"eng"}))
    assert subjects.matches("bob", frozenset({"ops", "eng"}))
    assert not subjects.matches("bob", frozenset({"Eng", "engineering"}))
    assert not subjects.matches("bob", NONE)


def test_star_user_is_any_caller() -> None:
    subjects = Subjects(users=frozenset({"*"}))
    assert subjects.matches("anyone", NONE)
    assert subjects.any_user


def test_star_group_needs_at_least_one_group() -> None:
    subjects = Subjects(groups=frozenset({"*"}))
    assert subjects.matches("bob", ENG)
    assert not subjects.matches("bob", NONE)


def test_empty_subjects_match_nobody() -> None:
    subjects = Subjects()
    assert subjects.is_empty
    assert not subjects.matches("alice", ENG)
    assert subjects.describe() == "nobody"


def test_describe() -> None:
    assert Subjects(frozenset({"b", "a"}), frozenset({"eng"})).describe() == "users: a, b; groups: eng"
