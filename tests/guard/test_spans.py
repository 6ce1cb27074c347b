"""Merging the two scanners' findings."""

from __future__ import annotations

from bastion.guard.spans import SecretSpan, marker, merge_spans


def test_overlapping_spans_merge_and_the_specific_kind_names_them() -> None:
    spans = [
        SecretSpan(30, 40, "jwt"),
        SecretSpan(0, 10, "url-password"),
        SecretSpan(5, 20, "github-app-token"),  # a token that is also a URL's password
        SecretSpan(40, 45, "stripe-key"),  # touching, not overlapping: kept apart
        SecretSpan(50, 50, "empty"),
    ]
    assert merge_spans(spans) == (
        SecretSpan(0, 20, "github-app-token"),
        SecretSpan(30, 40, "jwt"),
        SecretSpan(40, 45, "stripe-key"),
    )


def test_of_two_specific_kinds_the_longer_names_the_merged_span() -> None:
    assert merge_spans([SecretSpan(0, 10, "aws-secret-key"), SecretSpan(2, 30, "private-key")]) == (
        SecretSpan(0, 30, "private-key"),
    )


def test_marker() -> None:
    assert marker("github-pat") == "[REDACTED:github-pat]"
