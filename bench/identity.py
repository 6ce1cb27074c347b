"""A minimal identity provider on 127.0.0.1 for the benchmark's `--auth jwt` runs: an RSA key, its JWKS served
over HTTP from a thread, and an RS256 access token for the benchmark's caller, issued the way an OAuth 2.1
authorization server would (issuer, audience = the server's resource URL, expiry, scope).

The governed server fetches the JWKS once (then caches it) and verifies the token's signature on its first use;
later requests with the same token are answered from its bounded verified-token cache, as a real client reusing
its access token would be.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["BenchIdentityProvider"]

KID = "bench-1"


class BenchIdentityProvider:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": KID, "alg": "RS256", "use": "sig"})
        document = json.dumps({"keys": [jwk]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="bench-jwks", daemon=True)
        self._thread.start()

    def environment(self) -> dict[str, str]:
        """The governed server's OIDC settings for this provider (API keys stay enabled beside it)."""
        return {
            "BASTION_AUTH__OIDC__ISSUER": self.issuer,
            "BASTION_AUTH__OIDC__JWKS_URL": f"{self.issuer}/jwks.json",
            "BASTION_AUTH__OIDC__REQUIRED_SCOPES": '["mcp:read"]',
        }

    def token(self, subject: str, audience: str, *, lifetime_seconds: int = 4 * 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "scope": "mcp:read",
            "groups": ["eng"],
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
