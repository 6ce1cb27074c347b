"""The identity provider's signing keys (JWKS): discovered, fetched, cached, rotated, never stormed.

- The JWKS URL is configured or discovered once from `<issuer>/.well-known/openid-configuration` (whose `issuer`
  must equal ours exactly: OpenID Connect Discovery §4.3).
- Keys are kept for `cache_seconds`. A refresh that fails keeps serving the keys already held (an identity
  provider outage must not lock everyone out) and is retried after `refetch_min_seconds`.
- A token naming an unknown `kid` (the provider rotated its keys) triggers at most one refetch per
  `refetch_min_seconds`; callers that arrive while a fetch is running share it. A flood of tokens with made-up
  key ids therefore costs the provider one request per window, not one per token.
- Fetching is async (one short-lived httpx2 client per fetch: fetches are rare, and a client kept between them
  would tie its connection pool to one event loop). Bodies are capped and redirects are not followed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from bastion import __version__
from bastion.auth.claims import shown
from bastion.errors import ConfigError, Unauthenticated, Unavailable

__all__ = ["JwksCache", "JwksError", "KeySet", "SigningKey", "discovery_url", "parse_jwks", "require_secure_url"]

logger = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1_048_576
MIN_RSA_BITS = 2048
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The key a JWS algorithm needs: key type and, for EC, the curve (RFC 7518 §3.4 ties each ES* to one curve).
_KEY_FOR_ALGORITHM: dict[str, tuple[str, str | None]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


class JwksError(Exception):
    """A discovery document or JWKS that could not be fetched or used; the message says which and why."""


def require_secure_url(url: str, what: str) -> str:
    """`url` if it is https (or http to a loopback address, for local development and tests); else ConfigError."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url
    raise ConfigError(
        f"{what} must be an https:// URL (plain http is accepted only for loopback addresses), got '{url}': keys "
        "fetched over plain http could be replaced by anyone on the network path"
    )


def discovery_url(issuer: str) -> str:
    # OpenID Connect Discovery §4: the issuer with any trailing slash removed, then the well-known suffix.
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One public key from the JWKS."""

    kid: str | None
    kty: str  # RSA | EC | OKP
    curve: str | None  # EC and OKP keys: P-256, Ed25519, ...
    alg: str | None  # the JWK's own `alg`, when it pins one
    public_key: Any  # a cryptography public key object
    material: bytes = b""  # the key's SubjectPublicKeyInfo (DER): the same key id can name new key material

    def mismatch(self, alg: str) -> str | None:
        """Why this key cannot verify an `alg` signature, or None when it can."""
        wanted_kty, wanted_curve = _KEY_FOR_ALGORITHM[alg]
        if self.alg is not None and self.alg != alg:
            return f"key {shown(self.kid)} is published for {self.alg} only, and the token says {alg}"
        if self.kty != wanted_kty or (wanted_curve is not None and self.curve != wanted_curve):
            have = f"{self.kty} ({self.curve})" if self.curve else self.kty
            want = f"{wanted_kty} ({wanted_curve})" if wanted_curve else wanted_kty
            return f"the token says {alg}, which needs an {want} key, but key {shown(self.kid)} is {have}"
        return None


@dataclass(frozen=True, slots=True)
class KeySet:
    """An immutable snapshot of usable keys, by key id."""

    keys: tuple[SigningKey, ...] = ()
    by_kid: Mapping[str, tuple[SigningKey, ...]] = field(default_factory=dict[str, tuple[SigningKey, ...]])

    @classmethod
    def of(cls, keys: list[SigningKey]) -> KeySet:
        by_kid: dict[str, tuple[SigningKey, ...]] = {}
        for key in keys:
            if key.kid is not None:
                by_kid[key.kid] = (*by_kid.get(key.kid, ()), key)
        return cls(tuple(keys), by_kid)

    def describe(self) -> str:
        kids = sorted(self.by_kid)
        listed = ", ".join(shown(kid) for kid in kids[:10]) + (" ..." if len(kids) > 10 else "")
        return f"it publishes {len(self.keys)} key(s): {listed}" if kids else f"it publishes {len(self.keys)} key(s)"


def _signing_key(jwk: Mapping[str, Any]) -> SigningKey:
    kty = jwk.get("kty")
    if kty not in ("RSA", "EC", "OKP"):
        raise JwksError(f"key type {shown(kty)} is not an asymmetric signing key")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JwksError("its 'kid' is not a string")
    alg = jwk.get("alg")
    if alg is not None and alg not in _KEY_FOR_ALGORITHM:
        raise JwksError(f"its 'alg' {shown(alg)} is not an accepted asymmetric algorithm")
    public_key = PyJWK(dict(jwk), algorithm=alg or {"RSA": "RS256", "EC": None, "OKP": "EdDSA"}[kty]).key
    curve: str | None = None
    if isinstance(public_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise JwksError("it is a private key; a JWKS must hold public keys only")
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise JwksError(f"its RSA modulus is {public_key.key_size} bits, under the {MIN_RSA_BITS} accepted")
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(public_key.curve.name, public_key.curve.name)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        curve = "Ed25519"
    elif isinstance(public_key, ed448.Ed448PublicKey):
        curve = "Ed448"
    else:
        raise JwksError("it is not a public key")
    material = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(kid=kid, kty=kty, curve=curve, alg=alg, public_key=public_key, material=material)


def parse_jwks(document: object) -> tuple[KeySet, list[str]]:
    """Usable signing keys of a JWKS document, and one note per key skipped (encryption keys, symmetric keys,
    short RSA keys, keys that do not parse). Raises JwksError when the document is not a JWKS at all."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksError("the document is not a JWKS (a JSON object with a 'keys' list)")
    keys: list[SigningKey] = []
    skipped: list[str] = []
    for index, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, Mapping):
            skipped.append(f"entry {index}: not a JSON object")
            continue
        if jwk.get("use", "sig") != "sig":
            continue  # an encryption key: not for us, and not worth a note
        try:
            keys.append(_signing_key(jwk))
        except (JwksError, ValueError, KeyError, PyJWTError) as exc:
            skipped.append(f"key {shown(jwk.get('kid'))}: {exc}")
    return KeySet.of(keys), skipped


async def _get_json(url: str, seconds: float) -> object:
    """The JSON document at `url`, fetched in at most `seconds` in all (httpx's timeout bounds each read: a
    provider trickling a byte a second would hold every waiting caller for as long as it liked)."""
    headers = {"Accept": "application/json", "User-Agent": f"mcp-bastion/{__version__}"}
    body = bytearray()
    try:
        with anyio.fail_after(seconds):
            async with (
                httpx2.AsyncClient(timeout=seconds, follow_redirects=False, headers=headers) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise JwksError(f"{url} answered HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise JwksError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    except TimeoutError:
        raise JwksError(f"{url} did not answer in full within {seconds:g} s") from None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise JwksError(f"{url} did not answer JSON") from exc


class JwksCache:
    """Signing keys of one issuer. `monotonic` is injectable so tests can move time instead of sleeping."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        *,
        cache_seconds: float = 3600,
        refetch_min_seconds: float = 30,
        timeout_seconds: float = 5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._configured_url = require_secure_url(jwks_url, "the JWKS URL") if jwks_url else None
        if self._configured_url is None:
            require_secure_url(issuer, "the OIDC issuer (used to discover the JWKS URL)")
        self._jwks_url = self._configured_url
        self._cache_seconds = cache_seconds
        self._refetch_min_seconds = refetch_min_seconds
        self._timeout = timeout_seconds
        self._monotonic = monotonic
        self._lock = anyio.Lock()
        self._keys: KeySet | None = None
        self._generation = 0  # bumped by every successful fetch, so waiters can tell a fetch happened
        self._fresh_until = float("-inf")
        self._last_attempt = float("-inf")
        self._last_error: str | None = None
        self.fetch_attempts = 0  # JWKS fetches tried (observability and tests)

    @property
    def jwks_url(self) -> str | None:
        """The configured or discovered JWKS URL (None until discovery ran)."""
        return self._jwks_url

    def publishes(self, key: SigningKey) -> bool:
        """Whether the keys currently held still include `key`, by key id and key material: a withdrawn key, or a
        key id reused for a new key, ends the cached tokens it verified (with or without a `kid` header)."""
        keys = self._keys
        return keys is not None and any(k.kid == key.kid and k.material == key.material for k in keys.keys)

    async def key_for(self, kid: str | None, alg: str) -> SigningKey:
        """The key that must have signed a token with header `kid` and `alg`.

        Raises Unauthenticated (unknown kid, key/algorithm mismatch) or Unavailable (no keys could be fetched)."""
        keys, generation = await self._current()
        key = self._pick(keys, kid, alg)
        if key is None:
            keys = await self._refetch_for_unknown(generation)
            key = self._pick(keys, kid, alg)
        if key is None:
            stale = f"; the last refresh failed: {self._last_error}" if self._last_error else ""
            raise Unauthenticated(
                f"the token was signed with key id {shown(kid)}, which the issuer's JWKS does not publish "
                f"({keys.describe()}{stale}): the token is forged, or was signed with a retired key"
            )
        return key

    def _pick(self, keys: KeySet, kid: str | None, alg: str) -> SigningKey | None:
        if kid is None:
            if len(keys.keys) != 1:
                raise Unauthenticated(
                    f"the token names no signing key ('kid' header) and the issuer publishes {len(keys.keys)} "
                    "keys; refused rather than trying each"
                )
            candidates: tuple[SigningKey, ...] = keys.keys
        else:
            candidates = keys.by_kid.get(kid, ())
            if not candidates:
                return None
        reasons: list[str] = []
        for key in candidates:
            reason = key.mismatch(alg)
            if reason is None:
                return key
            reasons.append(reason)
        raise Unauthenticated(f"refused: {'; '.join(reasons)} (algorithm/key confusion)")

    async def _current(self) -> tuple[KeySet, int]:
        keys = self._keys
        if keys is not None and self._monotonic() < self._fresh_until:
            return keys, self._generation
        generation = self._generation
        async with self._lock:
            if self._generation == generation and self._monotonic() >= self._fresh_until:
                if self._keys is None and self._monotonic() - self._last_attempt < self._refetch_min_seconds:
                    raise self._unavailable()  # the last attempt failed moments ago: do not hammer the provider
                await self._refresh()
            if self._keys is None:
                raise self._unavailable()
            return self._keys, self._generation

    async def _refetch_for_unknown(self, seen_generation: int) -> KeySet:
        async with self._lock:
            assert self._keys is not None
            if self._generation != seen_generation:
                return self._keys  # someone fetched while we waited: use their result
            if self._monotonic() - self._last_attempt < self._refetch_min_seconds:
                return self._keys  # bounded: one refetch per window, however many unknown kids arrive
            await self._refresh()
            return self._keys

    def _unavailable(self) -> Unavailable:
        retry = max(1, int(self._refetch_min_seconds))
        return Unavailable(
            f"cannot verify the token now: the identity provider's signing keys could not be fetched "
            f"({self._last_error}); try again in a moment",
            retry_after=retry,
        )

    async def _refresh(self) -> None:
        """One fetch (under the lock). Success replaces the keys; failure keeps them and records why."""
        self.fetch_attempts += 1
        self._last_attempt = self._monotonic()
        try:
            url = self._jwks_url or await self._discover()
            keys = await self._fetch_keys(url)
        except (httpx2.HTTPError, JwksError, ConfigError) as exc:
            self._fetch_failed(str(exc) or type(exc).__name__)
            return
        self._keys = keys
        self._generation += 1
        self._fresh_until = self._last_attempt + self._cache_seconds
        self._last_error = None
        logger.info("JWKS %s loaded: %s", url, keys.describe())

    async def _fetch_keys(self, url: str) -> KeySet:
        keys, skipped = parse_jwks(await _get_json(url, self._timeout))
        for note in skipped:
            logger.warning("JWKS %s: skipped %s", url, note)
        if not keys.keys:
            # Treated as a failed fetch (the keys held keep serving): an empty set is far likelier a provider
            # glitch than a deliberate withdrawal of every key.
            raise JwksError(f"{url} holds no usable signing key")
        return keys

    def _fetch_failed(self, error: str) -> None:
        self._last_error = error
        if self._configured_url is None:
            self._jwks_url = None  # discover again next time: the provider may have moved its keys
        if self._keys is not None:
            self._fresh_until = self._last_attempt + self._refetch_min_seconds  # serve stale, retry later
            logger.warning("JWKS refresh failed, still using the keys fetched earlier: %s", error)
        else:
            logger.error("cannot fetch the identity provider's signing keys: %s", error)

    async def _discover(self) -> str:
        url = discovery_url(self.issuer)
        document = await _get_json(url, self._timeout)
        if not isinstance(document, Mapping):
            raise JwksError(f"{url} is not a JSON object")
        if document.get("issuer") != self.issuer:
            raise JwksError(
                f"{url} names the issuer {shown(document.get('issuer'))}, not '{self.issuer}' (they must be equal)"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise JwksError(f"{url} has no 'jwks_uri'")
        self._jwks_url = require_secure_url(jwks_uri, "the discovered jwks_uri")
        return self._jwks_url
