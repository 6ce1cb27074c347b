"""A real identity provider on 127.0.0.1 for tests: OpenID discovery, a JWKS that can rotate or fail, an OAuth
token endpoint for the client-credentials grant, and helpers that sign RS256/ES256/... tokens with real keys
(and forge the tokens an attacker would send).

Served by `http.server` in a thread, so the code under test fetches keys over real HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

__all__ = [
    "IdentityProvider",
    "TestKey",
    "b64url",
    "ec_key",
    "ed25519_key",
    "forge_hmac_with_public_key",
    "forge_unsigned",
    "identity_provider",
    "rsa_key",
    "sign",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_CURVES: dict[str, ec.EllipticCurve] = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TestKey:
    """A real key pair; `public_jwk()` is what the provider publishes."""

    __test__ = False  # not a pytest test class

    kid: str | None
    alg: str
    private_key: PrivateKey
    pin_alg: bool = True  # publish the JWK with its `alg` member

    def public_jwk(self) -> dict[str, Any]:
        algorithm = get_default_algorithms()[self.alg]
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private_key.public_key()))  # type: ignore[arg-type]
        jwk["use"] = "sig"
        if self.kid is not None:
            jwk["kid"] = self.kid
        if self.pin_alg:
            jwk["alg"] = self.alg
        else:
            jwk.pop("alg", None)
        return jwk

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(kid: str | None, alg: str = "RS256", bits: int = 2048, *, pin_alg: bool = True) -> TestKey:
    return TestKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=bits), pin_alg)


def ec_key(kid: str | None, alg: str = "ES256", *, pin_alg: bool = True) -> TestKey:
    return TestKey(kid, alg, ec.generate_private_key(_CURVES[alg]), pin_alg)


def ed25519_key(kid: str | None) -> TestKey:
    return TestKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def sign(key: TestKey, claims: dict[str, Any], *, headers: dict[str, Any] | None = None, alg: str | None = None) -> str:
    """A JWS signed with the key's private half; `alg` overrides the header's algorithm (must fit the key)."""
    extra = {"kid": key.kid} if key.kid is not None else {}
    return jwt.encode(claims, key.private_key, algorithm=alg or key.alg, headers={**extra, **(headers or {})})


def _unsigned_input(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def forge_unsigned(claims: dict[str, Any], *, kid: str | None = None, alg: str = "none") -> str:
    """An `alg: none` token (empty signature), as in CVE-2015-9235-style attacks."""
    header: dict[str, Any] = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    return _unsigned_input(header, claims) + "."


def forge_hmac_with_public_key(key: TestKey, claims: dict[str, Any], alg: str = "HS256") -> str:
    """The key-confusion forgery: HMAC over the token using the issuer's *public* key (PEM) as the secret.

    Written by hand because PyJWT itself refuses to sign with a PEM public key as an HMAC secret."""
    header: dict[str, Any] = {"alg": alg, "typ": "JWT", **({"kid": key.kid} if key.kid else {})}
    signing_input = _unsigned_input(header, claims)
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(key.public_pem(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


@dataclass
class IdentityProvider:
    """State of the running provider; tests change it between requests."""

    issuer: str
    published: list[TestKey] = field(default_factory=list[TestKey])
    jwks_requests: int = 0
    discovery_requests: int = 0
    fail_jwks: bool = False  # answer 503 on the JWKS URL
    jwks_delay: float = 0.0  # seconds to wait before answering the JWKS (concurrency tests)
    jwks_trickle: float = 0.0  # seconds between the JWKS body's bytes (a provider that never quite times out)
    discovery_issuer: str | None = None  # a different `issuer` in the discovery document (mix-up tests)
    discovery_jwks_uri: str | None = None  # a different `jwks_uri` in the discovery document
    clients: dict[str, str] = field(default_factory=dict[str, str])  # client id -> secret
    token_key: TestKey | None = None  # signs tokens from the token endpoint
    token_claims: dict[str, Any] = field(default_factory=dict[str, Any])  # added to tokens it issues
    token_requests: list[dict[str, str]] = field(default_factory=list[dict[str, str]])  # forms, secret removed
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/oauth2/token"

    def publish(self, *keys: TestKey) -> None:
        with self.lock:
            self.published = list(keys)

    def jwks(self) -> dict[str, Any]:
        with self.lock:
            return {"keys": [key.public_jwk() for key in self.published]}

    def claims(self, audience: str | list[str] | None, **overrides: Any) -> dict[str, Any]:
        """Ordinary valid access-token claims (1 hour), with `overrides` applied (None removes a claim)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1234",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
        }
        if audience is not None:
            claims["aud"] = audience
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}


class _Handler(BaseHTTPRequestHandler):
    provider: IdentityProvider  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read assertions, not access logs
        pass

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _trickle(self, data: bytes, pause: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up: what it was meant to do
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(pause)

    def do_GET(self) -> None:
        provider = self.provider
        if self.path == "/.well-known/openid-configuration":
            with provider.lock:
                provider.discovery_requests += 1
            self._json(
                200,
                {
                    "issuer": provider.discovery_issuer or provider.issuer,
                    "jwks_uri": provider.discovery_jwks_uri or provider.jwks_url,
                    "token_endpoint": provider.token_url,
                    "grant_types_supported": ["client_credentials"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                },
            )
        elif self.path == "/jwks":
            with provider.lock:
                provider.jwks_requests += 1
                failing, delay, trickle = provider.fail_jwks, provider.jwks_delay, provider.jwks_trickle
            if delay:
                time.sleep(delay)
            if failing:
                self._json(503, {"error": "temporarily_unavailable"})
            elif trickle:
                self._trickle(json.dumps(provider.jwks()).encode(), trickle)
            else:
                self._json(200, provider.jwks())
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        provider = self.provider
        if self.path != "/oauth2/token":
            self._json(404, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = {name: values[0] for name, values in parse_qs(self.rfile.read(length).decode()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        authorization = self.headers.get("Authorization") or ""
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        with provider.lock:
            provider.token_requests.append(
                {
                    **{k: v for k, v in form.items() if k != "client_secret"},
                    "auth": "basic" if authorization else "post",
                }
            )
        if form.get("grant_type") != "client_credentials":
            self._json(400, {"error": "unsupported_grant_type", "error_description": "only client_credentials"})
            return
        if client_id is None or provider.clients.get(client_id) != secret:
            self._json(
                401,
                {"error": "invalid_client", "error_description": "client authentication failed"},
                {"WWW-Authenticate": 'Basic realm="token"'},
            )
            return
        assert provider.token_key is not None, "set provider.token_key before asking for tokens"
        # Cognito style without a resource indicator (client_id, no aud); RFC 8707 audience when one is asked.
        resource = form.get("resource")
        claims = provider.claims(resource, sub=client_id, client_id=client_id, **provider.token_claims)
        if "scope" in form:
            claims["scope"] = form["scope"]
        token = sign(provider.token_key, claims)
        self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})


@contextlib.contextmanager
def identity_provider(*keys: TestKey) -> Generator[IdentityProvider]:
    """Serve a provider publishing `keys` until the block ends; its issuer is `http://127.0.0.1:PORT`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    provider = IdentityProvider(issuer=f"http://127.0.0.1:{server.server_address[1]}", published=list(keys))
    server.RequestHandlerClass = type("Handler", (_Handler,), {"provider": provider})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-idp", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
