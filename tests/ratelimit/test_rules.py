"""Which buckets a request spends, and the start-up errors for limits that cannot be applied."""

from __future__ import annotations

import pytest

from bastion.config import RateLimitSettings
from bastion.errors import ConfigError
from bastion.ratelimit.rules import RateLimitRules, parse_limit
from bastion.server import TOOL_NAMES


def _rules(**settings: object) -> RateLimitRules:
    return RateLimitRules(RateLimitSettings.model_validate(settings), TOOL_NAMES)


def test_limits_are_read_in_limits_notation_and_described_for_people() -> None:
    assert parse_limit("x", "30/minute").describe() == "30 per minute"
    assert parse_limit("x", "10/second;100 per 5 minutes").describe() == "10 per second and 100 per 5 minutes"
    assert parse_limit("x", " 30/minute ").text == "30/minute"


@pytest.mark.parametrize("text", ["30/minuet", "thirty/minute", "", "30"])
def test_an_unreadable_limit_is_a_config_error_naming_the_setting_and_the_notation(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _rules(tools={"search_code": text})
    assert caught.value.message.startswith("rate_limit.tools.search_code: cannot read the rate limit")
    assert "'30/minute'" in caught.value.message


def test_a_zero_limit_is_refused_with_a_pointer_to_the_policy() -> None:
    with pytest.raises(ConfigError, match=r"rate_limit.groups.contractors: '0/minute' would refuse every call"):
        _rules(groups={"contractors": "0/minute"})


def test_a_misspelt_tool_name_is_refused_rather_than_leaving_the_real_tool_unlimited() -> None:
    with pytest.raises(ConfigError) as caught:
        _rules(tools={"serch_code": "5/minute"})
    assert "names tools this server does not have: serch_code" in caught.value.message
    assert "search_code" in caught.value.message.split("known tools:")[1]


def test_a_tool_call_spends_its_tool_bucket_first_then_the_callers() -> None:
    rules = _rules(default="100/minute", tools={"search_code": "5/minute"})
    tool, caller = rules.buckets("alice", frozenset(), "tools/call", "search_code")
    assert (tool.scope, tool.limit.text, tool.key) == ("tool:search_code", "5/minute", ("tool", "alice", "search_code"))
    assert (caller.scope, caller.limit.text, caller.key) == ("caller", "100/minute", ("calls", "alice"))
    assert (tool.spent_on, caller.spent_on) == ("calls to search_code", "tool calls")


def test_a_tool_without_its_own_limit_spends_only_the_callers_bucket() -> None:
    rules = _rules(tools={"search_code": "5/minute"})
    (only,) = rules.buckets("alice", frozenset(), "tools/call", "list_repositories")
    assert only.scope == "caller"
    # An unknown tool (the SDK will refuse it) is still a tool call, and still never a key of its own.
    (unknown,) = rules.buckets("alice", frozenset(), "tools/call", "x" * 10_000)
    assert unknown.key == ("calls", "alice")


@pytest.mark.parametrize("method", ["tools/list", "server/discover", "initialize", "notifications/initialized", None])
def test_every_other_request_spends_the_protocol_bucket_only(method: str | None) -> None:
    rules = _rules(protocol="50/minute")
    (only,) = rules.buckets("alice", frozenset({"eng"}), method, None)
    assert (only.scope, only.limit.text, only.key) == ("protocol", "50/minute", ("protocol", "alice"))


def test_the_most_generous_matching_group_replaces_the_default() -> None:
    rules = _rules(default="60/minute", groups={"eng": "120/minute", "ci": "5000/hour", "bots": "2/second"})
    assert rules.tier(frozenset()) == ("caller", rules.caller)
    assert rules.tier(frozenset({"sales"}))[0] == "caller"
    assert rules.tier(frozenset({"eng"}))[0] == "group:eng"
    # 2/second (120/min sustained) ties with eng's 120/minute: the name decides, whatever the set's order.
    assert rules.tier(frozenset({"eng", "bots"}))[0] == "group:bots"
    # 5000/hour is 83/minute: eng's 120/minute is more generous.
    assert rules.tier(frozenset({"ci", "eng"}))[0] == "group:eng"
    (bucket,) = rules.buckets("alice", frozenset({"ci"}), "tools/call", None)
    assert (bucket.scope, bucket.limit.text, bucket.spent_on) == ("group:ci", "5000/hour", "tool calls (group ci)")


def test_a_lower_group_tier_also_replaces_the_default() -> None:
    rules = _rules(default="60/minute", groups={"contractors": "10/minute"})
    assert rules.tier(frozenset({"contractors"})) == ("group:contractors", rules.groups["contractors"])


def test_a_multi_window_tier_is_as_generous_as_its_tightest_window() -> None:
    rules = _rules(groups={"burst": "100/second;60/minute", "steady": "90/minute"})
    assert rules.tier(frozenset({"burst", "steady"}))[0] == "group:steady"


def test_subjects_are_escaped_in_store_keys_so_the_separator_cannot_shift_key_parts() -> None:
    rules = _rules(tools={"search_code": "5/minute"})
    tool, caller = rules.buckets("a/b c", frozenset(), "tools/call", "search_code")
    assert tool.key == ("tool", "a%2Fb%20c", "search_code")
    assert caller.key == ("calls", "a%2Fb%20c")
