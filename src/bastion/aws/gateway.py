"""What API Gateway tells a Lambda function about the caller: the source address and the authorizer's claims.

Both come from the event's `requestContext`, which only API Gateway / Lambda write, never the client:
- source IP: `requestContext.identity.sourceIp` (REST API, payload 1.0) or `requestContext.http.sourceIp` (HTTP API
  payload 2.0, Function URLs);
- claims: `requestContext.authorizer.claims` (REST API Cognito user pool authorizer) or
  `requestContext.authorizer.jwt.claims` plus `jwt.scopes` (HTTP API JWT authorizer). The gateway verified the
  token's signature, issuer, audience and expiry before the function ran. Both flatten claim values to strings:
  REST joins a list with commas (`"admins,dev"`), HTTP API writes `"[admins dev]"`.

`GatewayClaims` turns those claims into a Principal with the OIDC claim settings (subject, groups, scopes) and
re-checks what it can cheaply: the issuer when one is configured, access tokens only, the required scopes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.auth.claims import MAX_GROUPS, MAX_NAME_LENGTH, claim_at, scopes_from, shown, subject_from
from bastion.config import OidcSettings
from bastion.errors import InsufficientScope, Unauthenticated
from bastion.principal import Principal

__all__ = ["GatewayClaims", "GatewayIdentity", "gateway_groups", "identity_from_event", "source_ip_from_event"]


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """The authorizer's verdict carried by one event."""

    claims: Mapping[str, Any]
    scopes: tuple[str, ...] | None  # HTTP API JWT authorizer: the token's scopes as a list
    authorizer: str  # "cognito" (REST API) or "jwt" (HTTP API)


def _context(event: Mapping[str, Any]) -> Mapping[str, Any]:
    context = event.get("requestContext")
    return context if isinstance(context, Mapping) else {}


def source_ip_from_event(event: Mapping[str, Any]) -> str | None:
    context = _context(event)
    for holder in (context.get("http"), context.get("identity")):
        if isinstance(holder, Mapping) and isinstance(holder.get("sourceIp"), str) and holder["sourceIp"]:
            return str(holder["sourceIp"])
    return None


def identity_from_event(event: Mapping[str, Any]) -> GatewayIdentity | None:
    authorizer = _context(event).get("authorizer")
    if not isinstance(authorizer, Mapping):
        return None
    jwt = authorizer.get("jwt")
    if isinstance(jwt, Mapping) and isinstance(jwt.get("claims"), Mapping):
        scopes = jwt.get("scopes")
        listed = tuple(str(scope) for scope in scopes) if isinstance(scopes, list) else None
        return GatewayIdentity(jwt["claims"], listed, "jwt")
    claims = authorizer.get("claims")
    if isinstance(claims, Mapping):
        return GatewayIdentity(claims, None, "cognito")
    return None  # a Lambda or IAM authorizer: no claims this server knows how to map


def gateway_groups(value: Any) -> frozenset[str]:
    """Groups from a claim as the gateway delivers it: a list, `"[a b]"` (HTTP API), `"a,b"` (REST API)."""
    if isinstance(value, list):
        entries = [entry for entry in value if isinstance(entry, str)]
    elif isinstance(value, str):
        text = value.strip()
        entries = text[1:-1].split() if text.startswith("[") and text.endswith("]") else text.split(",")
    else:
        entries = []
    cleaned = [entry.strip() for entry in entries if entry.strip()]
    if len(cleaned) > MAX_GROUPS:
        raise Unauthenticated(f"the authorizer's claims list {len(cleaned)} groups; at most {MAX_GROUPS} are accepted")
    return frozenset(entry for entry in cleaned if len(entry) <= MAX_NAME_LENGTH)


class GatewayClaims:
    """Maps a GatewayIdentity to a Principal (the `gateway` hook of AuthenticationMiddleware)."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings

    def __call__(self, identity: object) -> Principal:
        if not isinstance(identity, GatewayIdentity):
            raise Unauthenticated("the gateway's authorizer context is not in a form this server reads")
        claims, settings = identity.claims, self.settings
        issuer = claims.get("iss")
        if settings.issuer and issuer != settings.issuer:
            raise Unauthenticated(
                f"the gateway authorizer accepted a token from {shown(issuer)}, but this server only trusts "
                f"'{settings.issuer}'; fix the authorizer's issuer or BASTION_AUTH__OIDC__ISSUER"
            )
        token_use = claims.get("token_use")
        if token_use is not None and token_use != "access":  # noqa: S105 - a claim value
            raise Unauthenticated(
                f"the token is a {shown(token_use)} token, not an access token; send the access token"
            )
        subject = subject_from(claims, settings.subject_claim)
        granted = (
            frozenset(identity.scopes) if identity.scopes is not None else scopes_from(claims, settings.scopes_claim)
        )
        missing = [scope for scope in settings.required_scopes if scope not in granted]
        if missing:
            raise InsufficientScope(
                f"the token lacks the scope(s) this server requires: {' '.join(missing)}; request a token with "
                f"scope={' '.join(settings.required_scopes)}",
                required=list(settings.required_scopes),
                subject=subject,
            )
        jti = claims.get("jti")
        client = claims.get("client_id") or claims.get("azp")
        return Principal(
            subject=subject,
            groups=gateway_groups(claim_at(claims, settings.groups_claim)),
            auth_method=f"gateway-{identity.authorizer}",
            credential_id=f"jti:{jti[:64]}" if isinstance(jti, str) and jti else None,
            client=client[:128] if isinstance(client, str) else None,
        )
