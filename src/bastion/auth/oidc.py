"""OAuth 2.1 / OIDC bearer tokens: a JWT from the company's identity provider in, a Principal out.

Order of checks, cheapest and most dangerous first: the token's shape and size; the header's `alg` against the
allowlist (`none` and HMAC never pass, whatever is configured: an HMAC "verified" with a public key is the classic
key-confusion forgery); the key named by `kid` and whether its type fits `alg`; the signature; then the claims
(time window, exact issuer, audience = this resource per RFC 8707, token use, subject, groups, scopes).

Cost (measured, see docs/auth.md): a cold RS256 verification is tens of microseconds of CPU; a token seen before
is answered from a bounded in-memory cache keyed by its SHA-256 (the token itself is never stored as a key, logged
or echoed), and never past its own `exp` nor after its signing key left the JWKS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jwt import PyJWS
from jwt.exceptions import InvalidSignatureError, PyJWTError

from bastion.auth.claims import (
    check_audience,
    check_issuer,
    check_times,
    groups_from,
    scopes_from,
    shown,
    subject_from,
)
from bastion.auth.jwks import JwksCache, SigningKey
from bastion.config import OidcSettings
from bastion.errors import ConfigError, InsufficientScope, Unauthenticated
from bastion.principal import Principal

__all__ = ["ASYMMETRIC_ALGORITHMS", "OidcAuthenticator", "looks_like_jwt", "token_fingerprint"]

logger = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_TOKEN_BYTES = 16_384  # far above real access tokens (1-4 KB); bounds parsing work per request
MAX_CACHED_TOKENS = 10_000
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")
_MAX_HEADER_SEGMENT = 4096


def token_fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, for logs and audit when it carries no `jti`."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _header(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or len(parts[0]) > _MAX_HEADER_SEGMENT:
        return None
    if not all(_SEGMENT.match(part) for part in parts):
        return None
    try:
        header = json.loads(_b64decode(parts[0]))
    except (ValueError, binascii.Error, RecursionError):  # 3,000 nested `[` fit in the segment's 4 KB
        return None
    return header if isinstance(header, dict) and isinstance(header.get("alg"), str) else None


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments whose first decodes to a JSON object naming an `alg` (no verification)."""
    return _header(token) is not None


def validate_algorithms(algorithms: list[str]) -> frozenset[str]:
    """The configured allowlist, or ConfigError: never `none` or HMAC, only algorithms this server implements."""
    if not algorithms:
        raise ConfigError("BASTION_AUTH__OIDC__ALGORITHMS is empty: name at least one, e.g. RS256")
    refused = [alg for alg in algorithms if alg.lower() == "none" or alg.upper().startswith("HS")]
    if refused:
        raise ConfigError(
            f"BASTION_AUTH__OIDC__ALGORITHMS lists {', '.join(refused)}: 'none' and HMAC (HS*) are never accepted. "
            "With HMAC the verifying key is a shared secret, and an attacker who signs with the public key of an "
            "asymmetric issuer forges tokens; use the identity provider's asymmetric keys (RS256, ES256, ...)"
        )
    unknown = sorted(set(algorithms) - ASYMMETRIC_ALGORITHMS)
    if unknown:
        raise ConfigError(
            f"BASTION_AUTH__OIDC__ALGORITHMS lists unsupported algorithm(s) {', '.join(unknown)}; "
            f"choose from {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
        )
    return frozenset(algorithms)


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires_at: float  # the token's exp: a cached answer never outlives the token
    key: SigningKey  # the answer also ends when this key leaves the JWKS (or its key id names another key)


_ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt"})  # a JWT header's `typ`, lower case, without "application/"


class OidcAuthenticator:
    """Verifies JWT access tokens from one issuer for the resource `resource_url`.

    `clock` (wall time, for exp/nbf/iat) and `keys` (a JwksCache) are injectable for tests."""

    def __init__(
        self,
        settings: OidcSettings,
        resource_url: str,
        *,
        keys: JwksCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.issuer:
            raise ConfigError("OIDC needs BASTION_AUTH__OIDC__ISSUER (the exact 'iss' of the provider's tokens)")
        self.settings = settings
        self.issuer = settings.issuer
        self.resource_url = resource_url
        self.algorithms = validate_algorithms(settings.algorithms)
        self.required_scopes = tuple(settings.required_scopes)
        # The resource URL is compared exactly, with or without one trailing slash (clients spell it both ways).
        self._resource_audiences = frozenset(
            {resource_url, resource_url.rstrip("/"), resource_url.rstrip("/") + "/", *settings.audiences}
        )
        self._client_ids = frozenset(settings.audiences)
        self.keys = keys or JwksCache(
            settings.issuer,
            settings.jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            refetch_min_seconds=settings.jwks_refetch_min_seconds,
            timeout_seconds=settings.http_timeout_seconds,
        )
        self._clock = clock
        self._jws = PyJWS(options={"enforce_minimum_key_length": True})
        self._verified: dict[bytes, _Verified] = {}

    def accepts(self, token: str) -> bool:
        return looks_like_jwt(token)

    async def authenticate(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        now = self._clock()
        if cached is not None:
            if now < cached.expires_at and self.keys.publishes(cached.key):
                return cached.principal
            del self._verified[digest]
        try:
            principal, expires_at, key = await self._verify(token, now)
        except InsufficientScope as exc:
            logger.info("OIDC token refused (insufficient scope) for %s: %s", exc.subject, exc.message)
            raise
        except Unauthenticated as exc:
            logger.info("OIDC token refused: %s", exc.message)
            raise
        self._remember(digest, _Verified(principal, expires_at, key), now)
        return principal

    def close(self) -> None:
        """Nothing to release: JWKS fetches use short-lived HTTP clients."""

    def _remember(self, digest: bytes, entry: _Verified, now: float) -> None:
        if len(self._verified) >= MAX_CACHED_TOKENS:
            for key in [key for key, old in self._verified.items() if old.expires_at <= now]:
                del self._verified[key]
            if len(self._verified) >= MAX_CACHED_TOKENS:
                del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[digest] = entry

    async def _verify(self, token: str, now: float) -> tuple[Principal, float, SigningKey]:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated(f"the bearer token is over {MAX_TOKEN_BYTES} bytes; no access token is that large")
        header = _header(token)
        if header is None:
            raise Unauthenticated("the bearer token is not a well-formed JWT")
        alg: str = header["alg"]
        self._check_algorithm(alg)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("the token's 'kid' header is not a string")
        media_type = header.get("typ")
        if isinstance(media_type, str) and media_type.lower().removeprefix("application/") not in _ACCESS_TOKEN_TYPES:
            # RFC 9068 access tokens say `at+jwt`; most providers say `JWT`; anything else (`id+jwt`, `logout+jwt`,
            # `dpop+jwt`) is another kind of token, which grants no access to this server.
            raise Unauthenticated(f"the token is of type {shown(media_type)}, not an access token (at+jwt or JWT)")
        key = await self.keys.key_for(kid, alg)
        claims = self._signed_claims(token, key.public_key, alg, kid)
        expires_at = check_times(claims, now, self.settings.leeway_seconds)
        return self._principal(claims, token), expires_at, key

    def _check_algorithm(self, alg: str) -> None:
        if alg.lower() == "none":
            raise Unauthenticated("the token is unsigned (alg 'none'); only signed tokens are accepted")
        if alg.upper().startswith("HS"):
            raise Unauthenticated(
                f"the token is signed with HMAC ({shown(alg)}), a shared-secret algorithm this server never accepts "
                "from an identity provider (a token 'signed' with the provider's public key is a forgery)"
            )
        if alg not in self.algorithms:
            raise Unauthenticated(
                f"the token is signed with {shown(alg)}, which is not in this server's algorithm allowlist "
                f"({', '.join(sorted(self.algorithms))})"
            )

    def _signed_claims(self, token: str, public_key: Any, alg: str, kid: str | None) -> Mapping[str, Any]:
        try:
            payload = self._jws.decode(token, public_key, algorithms=[alg])
        except InvalidSignatureError:
            raise Unauthenticated(
                f"the token's signature does not verify with the issuer's key {shown(kid)}: it was altered, or "
                "signed by someone else"
            ) from None
        except PyJWTError as exc:  # malformed segments, unsupported crit headers, short keys
            raise Unauthenticated(f"the token cannot be verified: {shown(exc, 160)}") from None
        try:
            claims = json.loads(payload)
        except ValueError:
            raise Unauthenticated("the token's payload is not JSON") from None
        if not isinstance(claims, dict):
            raise Unauthenticated("the token's payload is not a JSON object")
        return claims

    def _principal(self, claims: Mapping[str, Any], token: str) -> Principal:
        settings = self.settings
        check_issuer(claims, self.issuer)
        check_audience(claims, self.resource_url, self._resource_audiences, self._client_ids)
        token_use = claims.get("token_use")
        if token_use is not None and token_use != "access":  # noqa: S105 - a claim value, not a secret
            # Cognito marks its tokens; an ID token says who logged in, it does not grant access to an API.
            raise Unauthenticated(
                f"the token is a {shown(token_use)} token, not an access token; send the access token"
            )
        if isinstance(claims.get("typ"), str) and claims["typ"].lower() == "id":
            raise Unauthenticated("the token is an ID token ('typ': 'ID'), not an access token; send the access token")
        subject = subject_from(claims, settings.subject_claim)
        missing = [scope for scope in self.required_scopes if scope not in scopes_from(claims, settings.scopes_claim)]
        if missing:
            granted = sorted(scopes_from(claims, settings.scopes_claim))
            raise InsufficientScope(
                f"the token lacks the scope(s) this server requires: {' '.join(missing)} (it grants: "
                f"{' '.join(shown(scope) for scope in granted[:20]) or 'none'}); request a token with "
                f"scope={' '.join(self.required_scopes)}",
                required=list(self.required_scopes),
                subject=subject,
            )
        jti = claims.get("jti")
        client = claims.get("client_id") or claims.get("azp")
        return Principal(
            subject=subject,
            groups=groups_from(claims, settings.groups_claim),
            auth_method="oidc",
            credential_id=f"jti:{jti[:64]}" if isinstance(jti, str) and jti else token_fingerprint(token),
            client=client[:128] if isinstance(client, str) else None,
        )
