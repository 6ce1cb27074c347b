"""Source-address allowlist: only callers from the configured networks reach anything but the health probes.

The address checked is the one EdgeMiddleware resolved (the socket peer, the X-Forwarded-For entry written by
the nearest trusted proxy, or the address a serverless adapter took from the platform's request context), so a
client cannot talk its way in by writing its own X-Forwarded-For entries.

It runs right after the edge and before authentication: a refused address learns nothing about credentials, and
costs no key-store lookup. `/health` and `/ready` stay open, because the load balancer probes them from its own
subnet, which need not be in the allowlist; they reveal no data. Every refusal is audited.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Collection, Iterable
from time import perf_counter

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.audit.event import AuditEvent
from bastion.errors import ConfigError
from bastion.observability.metrics import METRICS
from bastion.principal import RequestInfo
from bastion.transport.edge import REQUEST_INFO_KEY, layer_refusal, send_json_error

__all__ = ["OPEN_PATHS", "IpAllowlist", "IpAllowlistMiddleware", "parse_address"]

OPEN_PATHS = frozenset({"/health", "/ready"})

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    """An IP address from what a proxy wrote ('203.0.113.7', '2001:db8::1', '[2001:db8::1]:443', '1.2.3.4:80'),
    with IPv4-mapped IPv6 ('::ffff:10.0.0.1') turned back into IPv4; None when it is not an address."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, _ = text[1:].partition("]")
        if not bracket:
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port; IPv6 has at least two colons
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class IpAllowlist:
    """A set of IPv4 and IPv6 networks. Empty means every address is allowed (the check is not installed)."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)

    @classmethod
    def parse(cls, cidrs: Collection[str], setting: str = "server.ip_allowlist") -> IpAllowlist:
        """From CIDR strings ('10.0.0.0/8', '2001:db8::/32', a bare address for one host). ConfigError names the
        first entry that is not a network, or whose host bits are set (a typo more often than an intent)."""
        networks: list[Network] = []
        for cidr in cidrs:
            text = cidr.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                hint = ""
                if "has host bits set" in str(exc):
                    hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
                raise ConfigError(
                    f"{setting}: {cidr!r} is not a network in CIDR notation (like 10.0.0.0/8 or 2001:db8::/32){hint}",
                    setting=setting,
                ) from None
        return cls(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def allows(self, address: str | None) -> bool:
        parsed = parse_address(address) if address else None
        if parsed is None:
            return False  # an unknown or unreadable address is never inside an allowed network
        return any(parsed.version == network.version and parsed in network for network in self.networks)


class IpAllowlistMiddleware:
    """Answers 403 to every request from outside the allowlist, except the health probes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowlist: IpAllowlist,
        record: Callable[[AuditEvent], Awaitable[None] | None],
        open_paths: Collection[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.allowlist = allowlist
        self.record = record
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        info = scope.get(REQUEST_INFO_KEY)
        info = info if isinstance(info, RequestInfo) else None
        address = info.source_ip if info else None
        if self.allowlist.allows(address):
            await self.app(scope, receive, send)
            return
        description = f"address {(address or 'unknown')[:64]} is not in the allowed networks"
        METRICS.network_denied()
        receipt = self.record(layer_refusal(scope, info, "network", "deny", description, "denied", started))
        if receipt is not None:
            await receipt  # in the durable audit spool before the 403 leaves
        await send_json_error(send, 403, "forbidden", description)
