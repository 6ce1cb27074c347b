"""The App JWT: RS256, iss as a string, iat 60 s back, exp 9 minutes ahead; key loading errors explained."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tests.github.conftest import pem_of

from bastion.errors import ConfigError
from bastion.github.app_jwt import app_jwt, load_private_key


def test_claims_and_signature(app_key: rsa.RSAPrivateKey) -> None:
    token = app_jwt("123", load_private_key(pem_of(app_key), "test"), now=1_800_000_000)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token, app_key.public_key(), algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims == {"iat": 1_800_000_000 - 60, "exp": 1_800_000_000 + 540, "iss": "123"}


def test_pkcs8_keys_load_too(app_key: rsa.RSAPrivateKey) -> None:
    pkcs8 = app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assert load_private_key(pkcs8, "test").public_key().public_numbers() == app_key.public_key().public_numbers()


def test_bad_keys_are_explained() -> None:
    with pytest.raises(ConfigError, match="in secret 'k' is not a PEM private key"):
        load_private_key("hello", "secret 'k'")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(ConfigError, match="is not an RSA key"):
        load_private_key(ec_pem, "secret 'k'")
