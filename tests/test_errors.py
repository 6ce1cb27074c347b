"""The exception hierarchy: kinds, titles, HTTP statuses and the JSON shape sent to clients."""

from __future__ import annotations

import pytest

from bastion.errors import (
    AccessDenied,
    BastionError,
    ConfigError,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
)


@pytest.mark.parametrize(
    ("error", "kind", "title", "status"),
    [
        (InvalidInput("x"), "invalid_input", "invalid input", 400),
        (NotFound("x"), "not_found", "not found", 404),
        (AccessDenied("x"), "access_denied", "access denied", 403),
        (Unauthenticated("x"), "unauthenticated", "unauthenticated", 401),
        (RateLimited("x", retry_after=3), "rate_limited", "rate limited", 429),
        (Unavailable("x"), "unavailable", "unavailable", 503),
        (ConfigError("x"), "config_error", "configuration error", 500),
        (BastionError("x"), "error", "error", 500),
    ],
)
def test_each_error_has_its_kind_title_and_status(error: BastionError, kind: str, title: str, status: int) -> None:
    assert isinstance(error, BastionError)
    assert (error.kind, error.title, error.http_status) == (kind, title, status)
    assert (error.message, str(error)) == ("x", "x")
    assert error.to_dict()["error"] == kind


def test_to_dict_carries_the_message_and_details() -> None:
    error = InvalidInput("start_line counts from 1", field="start_line")
    assert error.to_dict() == {"error": "invalid_input", "message": "start_line counts from 1", "field": "start_line"}
    assert error.details == {"field": "start_line"}


def test_access_denied_carries_reason_and_rule() -> None:
    error = AccessDenied("denied by rule 'vault-locked'", rule="vault-locked")
    assert (error.reason, error.rule) == ("denied by rule 'vault-locked'", "vault-locked")
    assert error.to_dict() == {
        "error": "access_denied",
        "message": "denied by rule 'vault-locked'",
        "reason": "denied by rule 'vault-locked'",
        "rule": "vault-locked",
    }
    assert AccessDenied("no rule allows read").to_dict()["rule"] is None


def test_rate_limited_carries_retry_after() -> None:
    error = RateLimited("30 calls per minute", retry_after=12)
    assert error.retry_after == 12
    assert error.to_dict() == {"error": "rate_limited", "message": "30 calls per minute", "retry_after": 12}


def test_unauthenticated_carries_the_rfc6750_code_but_does_not_send_it_in_the_body() -> None:
    assert Unauthenticated("expired").error == "invalid_token"
    error = Unauthenticated("no header", error="")
    assert error.error == ""
    assert error.to_dict() == {"error": "unauthenticated", "message": "no header"}


def test_config_error_details_say_where() -> None:
    error = ConfigError("policy.yaml:3: unknown key 'deny_path'", file="policy.yaml", line=3)
    assert error.to_dict() == {
        "error": "config_error",
        "message": "policy.yaml:3: unknown key 'deny_path'",
        "file": "policy.yaml",
        "line": 3,
    }
