"""Re-matching a search query over masked lines with the real ripgrep (bastion.repos.rematch)."""

from __future__ import annotations

import pytest

from bastion.repos.rematch import lines_matching
from bastion.repos.types import SearchQuery

pytestmark = pytest.mark.anyio

LINES = ['TOKEN = "[REDACTED:github-pat]"', "plain text", "token: [REDACTED:stripe-key] # Token", "x"]


async def test_fixed_strings_ignore_case_unless_asked() -> None:
    assert await lines_matching(SearchQuery("token"), LINES) == {0, 2}
    assert await lines_matching(SearchQuery("Token", case_sensitive=True), LINES) == {2}
    assert await lines_matching(SearchQuery("ghp_"), LINES) == set()
    assert await lines_matching(SearchQuery("[REDACTED"), LINES) == {0, 2}  # a fixed string, not a class


async def test_regexes_run_in_ripgrep() -> None:
    assert await lines_matching(SearchQuery(r"^[a-z]+ text$", regex=True), LINES) == {1}
    assert await lines_matching(SearchQuery(r"= .\[RED", regex=True), LINES) == {0}


async def test_a_pattern_ripgrep_refuses_matches_nothing() -> None:
    """A `git grep -P` pattern beyond ripgrep's dialect: no line is taken as matching, the guard's safe answer."""
    assert await lines_matching(SearchQuery(r"(?<=TOKEN) =", regex=True), LINES) == set()


async def test_options_in_the_pattern_are_a_pattern() -> None:
    assert await lines_matching(SearchQuery("--files"), ["run --files now", "no"]) == {0}
    assert await lines_matching(SearchQuery("x"), []) == set()
