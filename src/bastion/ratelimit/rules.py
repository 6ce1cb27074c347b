"""Which buckets a request spends: the configured limits, parsed once at start-up, looked up per request.

A caller is the principal's `subject`, never the credential: two API keys of one person, or a key and an OIDC
token for the same subject, share every bucket, so switching credentials does not buy more calls.

Buckets, most specific first (the order the limiter checks them in):
- `tool:<name>`: calls to one tool by one caller, for the tools listed in `rate_limit.tools`;
- `caller` (or `group:<name>` when a group tier applies): every `tools/call` by one caller;
- `protocol`: every other request by one caller (server/discover, initialize, tools/list, ping, notifications,
  GET and DELETE on /mcp, bodies that are not JSON-RPC), so listing tools never spends the quota meant for work
  while a flood of anything is still bounded.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from limits import RateLimitItem, parse_many

from bastion.config import RateLimitSettings
from bastion.errors import ConfigError

__all__ = ["Bucket", "Limit", "RateLimitRules", "describe_window", "parse_limit"]

TOOL_CALL = "tools/call"


@dataclass(frozen=True, slots=True)
class Limit:
    """One configured limit: the text as written (`30/minute`) and the windows it parses to."""

    text: str
    items: tuple[RateLimitItem, ...]

    def describe(self) -> str:
        """For people: '30 per minute', '10 per second and 100 per 5 minutes'."""
        return " and ".join(f"{item.amount} per {describe_window(item)}" for item in self.items)

    @property
    def sustained_rate(self) -> float:
        """Calls per second this limit allows over a long time (its tightest window): how generous it is."""
        return min(item.amount / item.get_expiry() for item in self.items)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One counter a request spends from. `key` identifies it in the store: scope and subject, never a secret."""

    scope: str  # tool:search_code | caller | group:ci | protocol
    limit: Limit
    key: tuple[str, ...]
    spent_on: str  # for messages: "calls to search_code", "tool calls", "requests other than tool calls"


def describe_window(item: RateLimitItem) -> str:
    """'minute', '5 minutes'."""
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def parse_limit(setting: str, text: str) -> Limit:
    """`text` in `limits` notation ('30/minute', '10/second;100/hour'), or a ConfigError naming `setting`."""
    try:
        items = tuple(parse_many(text))
    except ValueError:
        raise ConfigError(
            f"{setting}: cannot read the rate limit {text!r}; write it like '30/minute' or '10/second;500/hour'",
            setting=setting,
        ) from None
    if any(item.amount <= 0 for item in items):
        raise ConfigError(
            f"{setting}: {text!r} would refuse every call; to forbid something, deny it in the policy instead",
            setting=setting,
        )
    return Limit(text.strip(), items)


class RateLimitRules:
    """The limits from RateLimitSettings. Raises ConfigError at construction for anything it cannot apply."""

    def __init__(self, settings: RateLimitSettings, known_tools: Collection[str] | None = None) -> None:
        self.caller = parse_limit("rate_limit.default", settings.default)
        self.protocol = parse_limit("rate_limit.protocol", settings.protocol)
        self.tools = _tool_limits(settings.tools, known_tools)
        self.groups = {
            group: parse_limit(f"rate_limit.groups.{group}", text) for group, text in settings.groups.items()
        }
        # Most generous first, ties by name: the first group a caller belongs to is its tier, whatever the order of
        # the caller's groups (a set) or of the settings.
        self._tiers = sorted(self.groups.items(), key=lambda pair: (-pair[1].sustained_rate, pair[0]))

    def tier(self, groups: Collection[str]) -> tuple[str, Limit]:
        """The caller's scope and limit for tool calls: the most generous of its groups' tiers, else the default."""
        if groups:
            for group, limit in self._tiers:
                if group in groups:
                    return f"group:{group}", limit
        return "caller", self.caller

    def buckets(self, caller: str, groups: Collection[str], method: str | None, tool: str | None) -> tuple[Bucket, ...]:
        """The buckets one request spends, most specific first. `caller` is the subject (or a stand-in)."""
        who = quote(caller, safe="")  # the store joins key parts with "/": a subject "a/b" must not meet "a"
        if method != TOOL_CALL:
            return (Bucket("protocol", self.protocol, ("protocol", who), "requests other than tool calls"),)
        scope, limit = self.tier(groups)
        spent_on = "tool calls" if scope == "caller" else f"tool calls (group {scope.removeprefix('group:')})"
        tier = Bucket(scope, limit, ("calls", who), spent_on)
        tool_limit = self.tools.get(tool) if tool is not None else None
        if tool is None or tool_limit is None:
            return (tier,)
        return (Bucket(f"tool:{tool}", tool_limit, ("tool", who, tool), f"calls to {tool}"), tier)


def _tool_limits(configured: Mapping[str, str], known_tools: Collection[str] | None) -> dict[str, Limit]:
    if known_tools is not None:
        unknown = sorted(set(configured) - set(known_tools))
        if unknown:
            # A misspelt tool name would silently leave the real tool unlimited.
            raise ConfigError(
                f"rate_limit.tools names tools this server does not have: {', '.join(unknown)}; "
                f"known tools: {', '.join(sorted(known_tools))}",
                setting="rate_limit.tools",
            )
    return {tool: parse_limit(f"rate_limit.tools.{tool}", text) for tool, text in configured.items()}
