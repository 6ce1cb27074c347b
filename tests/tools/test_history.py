"""parse_moment: the `since` / `until` arguments of list_commits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bastion.errors import InvalidInput
from bastion.tools.history import parse_moment


@pytest.mark.parametrize("raw", [None, ""])
def test_nothing_given_means_no_bound(raw: str | None) -> None:
    assert parse_moment(raw, "since") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
        ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("  2026-01-31T12:00:00Z  ", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31 12:30", datetime(2026, 1, 31, 12, 30, tzinfo=UTC)),
        ("2026-01-31T12:00:00.250Z", datetime(2026, 1, 31, 12, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_dates_and_times_without_an_offset_are_utc(raw: str, expected: datetime) -> None:
    moment = parse_moment(raw, "since")
    assert moment == expected
    assert moment is not None
    assert moment.utcoffset() == timedelta(0)


def test_an_explicit_offset_is_kept() -> None:
    moment = parse_moment("2026-01-31T12:00:00+02:00", "until")
    assert moment is not None
    assert moment.utcoffset() == timedelta(hours=2)
    assert moment == datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert moment.tzinfo == timezone(timedelta(hours=2))


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01", "31/01/2026", "2026-01-31T25:00", "1706745600", " "])
def test_anything_else_is_refused_naming_the_argument_and_the_format(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_moment(raw, "until")
    assert caught.value.message == (
        "until must be an ISO 8601 date or date-time like 2026-01-31 or 2026-01-31T12:00:00Z"
    )


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_moment_off_the_calendar_in_utc_is_refused_not_an_internal_error(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_moment(raw, "since")
    assert caught.value.message == "since is outside the years 1 to 9999 once converted to UTC"
