"""Reading a verified JWT's claims: time window, issuer, audience, subject, groups and scopes.

Pure functions over an already signature-checked claims dict, each raising `Unauthenticated` with a reason a
person can act on. Values that came from the token are shown through `shown()`, which bounds and sanitises them,
so a hostile claim can neither flood a log line nor smuggle quotes into a WWW-Authenticate header.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from bastion.errors import Unauthenticated

__all__ = [
    "audience_ok",
    "check_audience",
    "check_issuer",
    "check_times",
    "claim_at",
    "groups_from",
    "scopes_from",
    "shown",
    "subject_from",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._:/@+=~#-]")
MAX_GROUPS = 1000  # a token listing more is either broken or an attempt to make policy evaluation expensive
MAX_NAME_LENGTH = 256


def shown(value: object, limit: int = 80) -> str:
    """A token-supplied value made safe to print: unusual characters replaced, length bounded, quoted."""
    text = _UNSAFE.sub("?", str(value))
    return f"'{text[:limit]}...'" if len(text) > limit else f"'{text}'"


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"the token's '{name}' claim is not a number of seconds (RFC 7519 NumericDate)")
    return float(value)


def check_times(claims: Mapping[str, Any], now: float, leeway: float) -> float:
    """Enforce exp (required), nbf and iat with `leeway` seconds of clock skew; returns exp."""
    expires = _number(claims, "exp")
    if expires is None:
        raise Unauthenticated("the token has no 'exp' claim; tokens without an expiry are refused")
    if now >= expires + leeway:
        raise Unauthenticated(
            f"the token expired at {_when(expires)} ({int(now - expires)} s ago); get a new access token"
        )
    not_before = _number(claims, "nbf")
    if not_before is not None and now + leeway < not_before:
        raise Unauthenticated(
            f"the token is not valid yet: its 'nbf' is {_when(not_before)}, {int(not_before - now)} s from now "
            "(check the clocks of this server and the identity provider)"
        )
    issued = _number(claims, "iat")
    if issued is not None and now + leeway < issued:
        raise Unauthenticated(
            f"the token claims to be issued in the future ('iat' {_when(issued)}, {int(issued - now)} s from now); "
            "check the clocks of this server and the identity provider"
        )
    return expires


def check_issuer(claims: Mapping[str, Any], issuer: str) -> None:
    # Exact string comparison (RFC 8414 §3.3, OpenID Connect Core §3.1.3.7): no case folding, no slash trimming.
    # A normalised comparison would let `https://idp/` stand in for `https://idp`, two issuers that may differ.
    token_issuer = claims.get("iss")
    if token_issuer != issuer:
        found = "no 'iss' claim" if token_issuer is None else f"issuer {shown(token_issuer)}"
        raise Unauthenticated(f"the token has {found}, but this server only trusts tokens from '{issuer}'")


def _as_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [entry for entry in value if isinstance(entry, str)]
    return []


def audience_ok(claims: Mapping[str, Any], resource_audiences: Collection[str], client_ids: Collection[str]) -> bool:
    """Whether the token was issued for this server.

    With an `aud` claim, one of its values must be one of `resource_audiences` (this server's resource URL and
    the configured extra audiences). Without one (Cognito access tokens carry `client_id` instead), the token's
    `client_id` must be one of `client_ids` (the configured extra audiences only: a resource URL is never a
    client id)."""
    if "aud" in claims:
        return any(audience in resource_audiences for audience in _as_strings(claims["aud"]))
    client_id = claims.get("client_id")
    return isinstance(client_id, str) and client_id in client_ids


def check_audience(
    claims: Mapping[str, Any], resource_url: str, resource_audiences: Collection[str], client_ids: Collection[str]
) -> None:
    if audience_ok(claims, resource_audiences, client_ids):
        return
    if "aud" in claims:
        found = ", ".join(shown(entry) for entry in _as_strings(claims["aud"])[:5]) or "an empty 'aud'"
        raise Unauthenticated(
            f"the token was issued for {found}, not for this server ({resource_url}); request a token for this "
            "resource (RFC 8707 'resource' parameter) or ask an administrator to add the audience"
        )
    if "client_id" in claims:
        raise Unauthenticated(
            f"the token has no 'aud' claim and its client_id {shown(claims['client_id'])} is not one this server "
            "accepts; ask an administrator to add the app client id to the accepted audiences"
        )
    raise Unauthenticated(
        f"the token has no audience ('aud' claim), so it is not bound to this server ({resource_url})"
    )


def claim_at(claims: Mapping[str, Any], name: str) -> Any:
    """The claim `name`; a dotted name reaches into nested objects (Keycloak's `realm_access.roles`) unless a
    top-level claim has that exact name (namespaced claims such as `https://example.com/groups` contain dots)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def subject_from(claims: Mapping[str, Any], claim: str) -> str:
    value = claim_at(claims, claim)
    if not isinstance(value, str) or not value.strip():
        raise Unauthenticated(
            f"the token has no usable '{claim}' claim to name the caller (the configured subject claim); ask an "
            "administrator to configure a claim this identity provider puts in access tokens"
        )
    if len(value) > MAX_NAME_LENGTH:
        raise Unauthenticated(f"the token's '{claim}' claim is over {MAX_NAME_LENGTH} characters long")
    return value


def groups_from(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """Groups for policy: a list (non-string and overlong entries ignored) or one string (a single group; never
    split, because group names such as Entra display names may contain spaces or commas)."""
    entries = _as_strings(claim_at(claims, claim))
    if len(entries) > MAX_GROUPS:
        raise Unauthenticated(f"the token lists {len(entries)} groups in '{claim}'; at most {MAX_GROUPS} are accepted")
    return frozenset(entry for entry in entries if entry and len(entry) <= MAX_NAME_LENGTH)


def scopes_from(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """Granted scopes: a space-separated string (RFC 8693 `scope`, Entra `scp`) or a list (Okta `scp`)."""
    value = claim_at(claims, claim)
    if isinstance(value, str):
        return frozenset(value.split())
    return frozenset(_as_strings(value))
