"""search_code's argument checks (`_query`), before any repository is touched."""

from __future__ import annotations

import pytest

from bastion.errors import InvalidInput
from bastion.repos.types import SearchQuery
from bastion.tools.search import MAX_QUERY_LENGTH, _query


def test_a_valid_query_becomes_a_search_query() -> None:
    assert _query("needle", True, False, "src/**/*.py", 25) == SearchQuery(
        pattern="needle", regex=True, case_sensitive=False, path_glob="src/**/*.py", max_results=25
    )


def test_an_empty_glob_means_no_glob() -> None:
    assert _query("needle", False, True, "", 5).path_glob is None
    assert _query("needle", False, True, None, 5).path_glob is None


def test_surrounding_spaces_are_part_of_the_query() -> None:
    assert _query("  def main ", False, True, None, 5).pattern == "  def main "


@pytest.mark.parametrize("query", ["", "   ", "\t"])
def test_an_empty_query_is_refused(query: str) -> None:
    with pytest.raises(InvalidInput, match=r"^query must not be empty$"):
        _query(query, False, True, None, 5)


def test_the_length_limit_is_inclusive() -> None:
    assert _query("q" * MAX_QUERY_LENGTH, False, True, None, 5).pattern == "q" * MAX_QUERY_LENGTH
    with pytest.raises(InvalidInput) as caught:
        _query("q" * (MAX_QUERY_LENGTH + 1), False, True, None, 5)
    assert caught.value.message == f"query is {MAX_QUERY_LENGTH + 1} characters; the limit is {MAX_QUERY_LENGTH}"


@pytest.mark.parametrize("query", ["two\nlines", "carriage\rreturn", "nul\x00byte"])
def test_a_query_must_be_one_line_without_nul(query: str) -> None:
    with pytest.raises(InvalidInput, match=r"^query must be a single line without NUL characters$"):
        _query(query, False, True, None, 5)


@pytest.mark.parametrize("glob", ["!secrets/**", "--pre=cat", "-g", "a\nb", "a\x00b", "x" * 201])
def test_a_glob_that_could_negate_or_inject_an_option_is_refused(glob: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _query("needle", False, True, glob, 5)
    assert caught.value.message == "path_glob must be one glob like 'src/**/*.py' (no '!' negation, no options)"


def test_a_glob_of_200_characters_is_accepted() -> None:
    assert _query("needle", False, True, "x" * 200, 5).path_glob == "x" * 200
