"""The GitHub App's own credential: a short RS256 JWT signed with the App's private key.

GitHub accepts at most 10 minutes between `iat` and `exp`, and rejects an `iat` in its future; `iat` is set 60 s
in the past against clock drift, `exp` 9 minutes ahead, and `iss` is the App id as a string.
"""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.errors import ConfigError

__all__ = ["JWT_BACKDATE_SECONDS", "JWT_LIFETIME_SECONDS", "app_jwt", "load_private_key"]

JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540


def load_private_key(pem: str, source: str) -> rsa.RSAPrivateKey:
    """The App's RSA key from PEM text (PKCS#1 as GitHub downloads it, or PKCS#8). `source` names the secret."""
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"the GitHub App private key in {source} is not a PEM private key ({exc}); put the .pem file GitHub "
            "generated into the secret as it is"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"the GitHub App private key in {source} is not an RSA key (GitHub Apps use RSA)")
    return key


def app_jwt(app_id: str, key: rsa.RSAPrivateKey, now: float | None = None) -> str:
    """A JWT that authenticates as the App (not as an installation) for the next 9 minutes."""
    issued = int(now if now is not None else time.time())
    claims = {"iat": issued - JWT_BACKDATE_SECONDS, "exp": issued + JWT_LIFETIME_SECONDS, "iss": str(app_id)}
    return jwt.encode(claims, key, algorithm="RS256")
