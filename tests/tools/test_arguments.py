"""The refusals for tool arguments: pydantic's errors said per argument, and arguments a tool does not take."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from bastion.tools.arguments import invalid_arguments, unknown_arguments


class _Arguments(BaseModel):
    owner: str
    page: Annotated[int, Field(ge=1)] = 1
    tags: list[int] = []


def _error(**arguments: object) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        _Arguments.model_validate(arguments)
    return raised.value


def test_each_failing_argument_is_named_with_what_it_must_be_and_what_was_sent() -> None:
    refusal = invalid_arguments(_error(owner="acme", page=0))
    assert refusal.message == "page: input should be greater than or equal to 1 (got 0)"
    assert refusal.to_dict() == {"error": "invalid_input", "message": refusal.message, "arguments": ["page"]}
    assert "pydantic" not in refusal.message
    assert "_Arguments" not in refusal.message


def test_a_missing_argument_is_required_and_several_failures_are_all_listed() -> None:
    refusal = invalid_arguments(_error(page="many", tags=[1, "two"]))
    assert refusal.message == (
        "owner is required; page: input should be a valid integer, unable to parse string as an integer "
        "(got 'many'); tags.1: input should be a valid integer, unable to parse string as an integer (got 'two')"
    )


def test_a_long_value_is_shortened_and_many_failures_are_counted() -> None:
    refusal = invalid_arguments(_error(owner="acme", page="9" * 500 + "x"))
    assert "9" * 100 not in refusal.message
    assert refusal.message.endswith("...)")
    many = invalid_arguments(_error(owner="acme", tags=["x"] * 8))
    assert many.message.count("tags.") == 5
    assert many.message.endswith("; and 3 more")


def test_unknown_arguments_are_named_with_what_the_tool_takes() -> None:
    assert unknown_arguments("t", {"owner": "a", "page": 2}, ("owner", "page")) is None
    refusal = unknown_arguments("t", {"owner": "a", "sha": "x", "branch": "y"}, ("owner", "page"))
    assert refusal is not None
    assert refusal.message == "t has no arguments 'branch', 'sha' (it takes: owner, page)"
    assert refusal.details == {"unknown": ["branch", "sha"]}
    long = unknown_arguments("t", {"k" * 1000: 1}, ())
    assert long is not None
    assert len(long.message) < 120
