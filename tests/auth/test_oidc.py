"""OidcAuthenticator with real keys and a real JWKS server on 127.0.0.1: what is accepted, what is refused and
why, how claims become a Principal, and the verified-token cache."""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import Generator
from typing import Any

import pytest
from tests.support.oidc import (
    IdentityProvider,
    TestKey,
    ec_key,
    ed25519_key,
    forge_hmac_with_public_key,
    forge_unsigned,
    identity_provider,
    rsa_key,
    sign,
)

from bastion.auth.jwks import JwksCache
from bastion.auth.oidc import OidcAuthenticator, looks_like_jwt, token_fingerprint
from bastion.config import OidcSettings
from bastion.errors import ConfigError, InsufficientScope, Unauthenticated, Unavailable

pytestmark = pytest.mark.anyio

RESOURCE = "https://mcp.example.com/mcp"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rs256() -> TestKey:
    return rsa_key("rs-1")


@pytest.fixture(scope="module")
def es256() -> TestKey:
    return ec_key("ec-1")


@pytest.fixture
def idp(rs256: TestKey, es256: TestKey) -> Generator[IdentityProvider]:
    with identity_provider(rs256, es256) as provider:
        yield provider


def authenticator(idp: IdentityProvider, **settings: Any) -> OidcAuthenticator:
    clock = settings.pop("clock", time.time)
    keys = settings.pop("keys", None)
    return OidcAuthenticator(OidcSettings(issuer=idp.issuer, **settings), RESOURCE, keys=keys, clock=clock)


async def refused(auth: OidcAuthenticator, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(token)
    assert token not in caught.value.message
    return caught.value.message


def test_accepts_the_shape_of_a_jwt_only(rs256: TestKey) -> None:
    token = sign(rs256, {"sub": "x"})
    assert looks_like_jwt(token)
    assert looks_like_jwt(forge_unsigned({"sub": "x"})), "alg none must reach the verifier to be refused by name"
    assert not looks_like_jwt("bst_0123456789ab_" + "A" * 43)
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt(token + ".extra")
    assert not looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.e30.si!g")
    assert not looks_like_jwt("e30.e30.sig"), "a header without alg is not a JWS"
    deep = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode()  # RecursionError in json.loads: was a 500
    assert not looks_like_jwt(f"{deep}.eyJ4IjoxfQ.c2ln")
    assert not looks_like_jwt("bm90IGpzb24.e30.sig")


async def test_rs256_es256_ps256_and_eddsa_tokens_authenticate(idp: IdentityProvider, es256: TestKey) -> None:
    ps256, ed = rsa_key("ps-1", "PS256"), ed25519_key("ed-1")
    idp.publish(rsa_key("rs-unused"), es256, ps256, ed)
    auth = authenticator(idp, algorithms=["ES256", "PS256", "EdDSA"])  # EdDSA is opt-in
    for key in (es256, ps256, ed):
        claims = idp.claims(RESOURCE, sub=f"user-{key.alg}", jti=f"id-{key.alg}", azp="cli-app")
        principal = await auth.authenticate(sign(key, claims))
        assert principal.subject == f"user-{key.alg}"
        assert principal.auth_method == "oidc"
        assert principal.credential_id == f"jti:id-{key.alg}"
        assert principal.client == "cli-app"
        assert principal.groups == frozenset()


async def test_claims_become_the_principal(idp: IdentityProvider, rs256: TestKey) -> None:
    auth = authenticator(idp, subject_claim="email", groups_claim="cognito:groups")
    claims = idp.claims(
        RESOURCE, email="alice@example.com", client_id="app-1", jti=None, **{"cognito:groups": ["eng", 7, "ops"]}
    )
    token = sign(rs256, claims)
    principal = await auth.authenticate(token)
    assert principal.subject == "alice@example.com"
    assert principal.groups == frozenset({"eng", "ops"}), "non-string entries are ignored"
    assert principal.client == "app-1"
    assert principal.credential_id == token_fingerprint(token)
    assert token_fingerprint(token).startswith("sha256:")
    assert token.split(".")[2][:16] not in token_fingerprint(token)


async def test_nested_and_namespaced_group_claims(idp: IdentityProvider, rs256: TestKey) -> None:
    keycloak = authenticator(idp, groups_claim="realm_access.roles", subject_claim="preferred_username")
    claims = idp.claims(RESOURCE, preferred_username="bob", realm_access={"roles": ["reader", "offline_access"]})
    principal = await keycloak.authenticate(sign(rs256, claims))
    assert (principal.subject, principal.groups) == ("bob", frozenset({"reader", "offline_access"}))

    namespaced = authenticator(idp, groups_claim="https://example.com/groups")
    claims = idp.claims(RESOURCE, **{"https://example.com/groups": "platform"})
    assert (await namespaced.authenticate(sign(rs256, claims))).groups == frozenset({"platform"})

    entra = authenticator(idp, groups_claim="roles")
    claims = idp.claims(RESOURCE, roles={"not": "a list"})
    assert (await entra.authenticate(sign(rs256, claims))).groups == frozenset()


async def test_a_missing_subject_claim_is_refused(idp: IdentityProvider, rs256: TestKey) -> None:
    auth = authenticator(idp, subject_claim="email")
    message = await refused(auth, sign(rs256, idp.claims(RESOURCE)))
    assert "the token has no usable 'email' claim to name the caller" in message
    message = await refused(authenticator(idp), sign(rs256, idp.claims(RESOURCE, sub="")))
    assert "no usable 'sub' claim" in message


async def test_audience_must_be_this_resource_or_a_configured_one(idp: IdentityProvider, rs256: TestKey) -> None:
    auth = authenticator(idp, audiences=["api://bastion"])
    for audience in (RESOURCE, RESOURCE + "/", ["other", RESOURCE], "api://bastion"):
        assert (await auth.authenticate(sign(rs256, idp.claims(audience)))).subject == "user-1234"
    message = await refused(auth, sign(rs256, idp.claims(["https://other.example.com/mcp", "x"])))
    assert (
        "issued for 'https://other.example.com/mcp', 'x', not for this server (https://mcp.example.com/mcp)" in message
    )
    assert "RFC 8707" in message
    message = await refused(auth, sign(rs256, idp.claims(None)))
    assert "the token has no audience ('aud' claim)" in message


async def test_cognito_access_tokens_match_the_app_client_id(idp: IdentityProvider, rs256: TestKey) -> None:
    auth = authenticator(idp, audiences=["7abc-app-client"], groups_claim="cognito:groups")
    cognito = idp.claims(
        None, client_id="7abc-app-client", token_use="access", scope="bastion/read", **{"cognito:groups": ["eng"]}
    )
    principal = await auth.authenticate(sign(rs256, cognito))
    assert principal.groups == frozenset({"eng"})
    assert principal.client == "7abc-app-client"

    message = await refused(auth, sign(rs256, {**cognito, "client_id": "another-client"}))
    assert "no 'aud' claim and its client_id 'another-client' is not one this server accepts" in message
    # The resource URL is an audience, never a client id.
    message = await refused(authenticator(idp), sign(rs256, {**cognito, "client_id": RESOURCE}))
    assert "is not one this server accepts" in message
    # A Cognito ID token has aud = the client id: it must not pass as an access token.
    id_token = idp.claims("7abc-app-client", token_use="id")
    message = await refused(auth, sign(rs256, id_token))
    assert "the token is a 'id' token, not an access token" in message


async def test_issuer_is_compared_exactly(idp: IdentityProvider, rs256: TestKey) -> None:
    auth = authenticator(idp)
    message = await refused(auth, sign(rs256, idp.claims(RESOURCE, iss=idp.issuer + "/")))
    assert f"the token has issuer '{idp.issuer}/', but this server only trusts tokens from '{idp.issuer}'" in message
    message = await refused(auth, sign(rs256, idp.claims(RESOURCE, iss=None)))
    assert "the token has no 'iss' claim" in message


async def test_time_window_with_leeway(idp: IdentityProvider, rs256: TestKey) -> None:
    now = int(time.time())
    strict = authenticator(idp, leeway_seconds=0)
    lenient = authenticator(idp, leeway_seconds=60)
    expired = sign(rs256, idp.claims(RESOURCE, exp=now - 30))
    assert "the token expired at " in await refused(strict, expired)
    assert "get a new access token" in await refused(strict, expired)
    assert (await lenient.authenticate(expired)).subject == "user-1234"
    early = sign(rs256, idp.claims(RESOURCE, nbf=now + 600))
    assert "the token is not valid yet: its 'nbf' is " in await refused(lenient, early)
    future = sign(rs256, idp.claims(RESOURCE, iat=now + 600))
    assert "claims to be issued in the future" in await refused(lenient, future)
    assert "tokens without an expiry are refused" in await refused(lenient, sign(rs256, idp.claims(RESOURCE, exp=None)))
    message = await refused(lenient, sign(rs256, idp.claims(RESOURCE, exp="tomorrow")))
    assert "'exp' claim is not a number" in message


async def test_unsigned_and_hmac_tokens_are_refused_before_any_key_is_fetched(
    idp: IdentityProvider, rs256: TestKey
) -> None:
    auth = authenticator(idp)
    claims = idp.claims(RESOURCE)
    message = await refused(auth, forge_unsigned(claims, kid="rs-1"))
    assert "the token is unsigned (alg 'none')" in message
    assert "unsigned" in await refused(auth, forge_unsigned(claims, alg="None"))
    for alg in ("HS256", "HS512"):
        message = await refused(auth, forge_hmac_with_public_key(rs256, claims, alg))
        assert f"signed with HMAC ('{alg}')" in message
        assert "a token 'signed' with the provider's public key is a forgery" in message
    assert idp.jwks_requests == 0


async def test_algorithms_outside_the_allowlist_are_refused(idp: IdentityProvider, es256: TestKey) -> None:
    auth = authenticator(idp, algorithms=["RS256"])
    message = await refused(auth, sign(es256, idp.claims(RESOURCE)))
    assert "signed with 'ES256', which is not in this server's algorithm allowlist (RS256)" in message


@pytest.mark.parametrize(
    ("algorithms", "expected"),
    [
        (["RS256", "HS256"], "lists HS256: 'none' and HMAC (HS*) are never accepted"),
        (["none"], "lists none: 'none' and HMAC"),
        (["RS256", "XS999"], "unsupported algorithm(s) XS999"),
        ([], "ALGORITHMS is empty"),
    ],
)
def test_configuring_hmac_none_or_unknown_algorithms_refuses_to_start(algorithms: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OidcAuthenticator(OidcSettings(issuer="https://idp.example.com", algorithms=algorithms), RESOURCE)
    assert expected in caught.value.message


def test_oidc_without_an_issuer_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="needs BASTION_AUTH__OIDC__ISSUER"):
        OidcAuthenticator(OidcSettings(), RESOURCE)


async def test_a_token_signed_by_another_key_with_a_published_kid_is_forged(idp: IdentityProvider) -> None:
    impostor = rsa_key("rs-1")  # same kid as the real key, different private key
    message = await refused(authenticator(idp), sign(impostor, idp.claims(RESOURCE)))
    assert "the token's signature does not verify with the issuer's key 'rs-1'" in message


async def test_a_tampered_payload_fails_the_signature(idp: IdentityProvider, rs256: TestKey) -> None:
    header, _, signature = sign(rs256, idp.claims(RESOURCE, sub="alice")).split(".")
    forged_payload = sign(rs256, idp.claims(RESOURCE, sub="admin")).split(".")[1]
    message = await refused(authenticator(idp), f"{header}.{forged_payload}.{signature}")
    assert "signature does not verify" in message


@pytest.mark.parametrize("media_type", ["JWT", "jwt", "at+jwt", "application/at+JWT"])
async def test_access_token_types_are_accepted(idp: IdentityProvider, rs256: TestKey, media_type: str) -> None:
    token = sign(rs256, idp.claims(RESOURCE, sub="alice"), headers={"typ": media_type})
    assert (await authenticator(idp).authenticate(token)).subject == "alice"


async def test_id_tokens_and_other_token_types_are_refused(idp: IdentityProvider, rs256: TestKey) -> None:
    """An ID token with an accepted audience passed as an access token outside Cognito (found by a probe)."""
    auth = authenticator(idp)
    keycloak_id = sign(rs256, idp.claims(RESOURCE, sub="alice", typ="ID", nonce="n"))
    assert await refused(auth, keycloak_id) == (
        "the token is an ID token ('typ': 'ID'), not an access token; send the access token"
    )
    for media_type in ("id+jwt", "logout+jwt", "dpop+jwt"):
        message = await refused(auth, sign(rs256, idp.claims(RESOURCE, sub="alice"), headers={"typ": media_type}))
        assert message == f"the token is of type '{media_type}', not an access token (at+jwt or JWT)"


async def test_a_cached_token_without_kid_ends_when_its_key_is_replaced(idp: IdentityProvider) -> None:
    """Without a `kid`, the cache asked only whether any key was published: a token verified by a retired key
    stayed valid (found by a probe). The cache now remembers the key itself, by key id and material."""
    clock = Clock(time.time())
    old, new = rsa_key(None), rsa_key(None)
    idp.publish(old)
    keys = JwksCache(idp.issuer, idp.jwks_url, cache_seconds=60, refetch_min_seconds=0, monotonic=clock)
    auth = authenticator(idp, keys=keys, clock=clock)
    token = sign(old, idp.claims(RESOURCE, sub="alice"))
    assert (await auth.authenticate(token)).subject == "alice"
    idp.publish(new)
    clock.now += 61  # the JWKS is refreshed at the next use
    await auth.authenticate(sign(new, idp.claims(RESOURCE, sub="bob")))
    message = await refused(auth, token)
    assert "signature" in message


async def test_a_provider_that_trickles_its_keys_is_given_up_on(idp: IdentityProvider) -> None:
    """httpx's timeout bounds each read, not the fetch: a byte a second held every caller waiting for as long as
    the provider liked (found by a probe). The whole fetch now has the timeout."""
    idp.jwks_trickle = 0.05  # a JWKS of a few hundred bytes: well over the timeout
    keys = JwksCache(idp.issuer, idp.jwks_url, timeout_seconds=0.5)
    with pytest.raises(Unavailable) as caught:
        await keys.key_for("rs-1", "RS256")
    assert f"{idp.jwks_url} did not answer in full within 0.5 s" in caught.value.message


async def test_unknown_kid_is_refused_with_the_published_ids(idp: IdentityProvider) -> None:
    message = await refused(authenticator(idp), sign(rsa_key("not-published"), idp.claims(RESOURCE)))
    assert "signed with key id 'not-published', which the issuer's JWKS does not publish" in message
    assert "'ec-1', 'rs-1'" in message


async def test_required_scopes(idp: IdentityProvider, rs256: TestKey) -> None:
    auth = authenticator(idp, required_scopes=["mcp:read"])
    assert (await auth.authenticate(sign(rs256, idp.claims(RESOURCE, scope="openid mcp:read")))).subject
    with pytest.raises(InsufficientScope) as caught:
        await auth.authenticate(sign(rs256, idp.claims(RESOURCE, scope="openid profile")))
    assert caught.value.http_status == 403
    assert caught.value.error == "insufficient_scope"
    assert caught.value.required == ["mcp:read"]
    assert caught.value.subject == "user-1234"
    assert "lacks the scope(s) this server requires: mcp:read (it grants: 'openid' 'profile')" in caught.value.message
    assert "request a token with scope=mcp:read" in caught.value.message

    okta = authenticator(idp, required_scopes=["mcp:read"], scopes_claim="scp")
    assert (await okta.authenticate(sign(rs256, idp.claims(RESOURCE, scp=["mcp:read", "x"])))).subject
    with pytest.raises(InsufficientScope, match="it grants: none"):
        await okta.authenticate(sign(rs256, idp.claims(RESOURCE, scope="mcp:read")))


async def test_a_verified_token_is_answered_from_the_cache_until_its_exp(idp: IdentityProvider, rs256: TestKey) -> None:
    clock = Clock(time.time())
    auth = authenticator(idp, leeway_seconds=0, clock=clock)
    token = sign(rs256, idp.claims(RESOURCE, exp=int(clock.now) + 100))
    first = await auth.authenticate(token)
    assert await auth.authenticate(token) is first, "the warm path returns the cached principal"
    clock.now += 101
    assert "the token expired at" in await refused(auth, token)


async def test_a_cached_token_ends_when_its_key_leaves_the_jwks(
    idp: IdentityProvider, rs256: TestKey, es256: TestKey
) -> None:
    monotonic = Clock(0)
    keys = JwksCache(idp.issuer, idp.jwks_url, cache_seconds=60, refetch_min_seconds=0, monotonic=monotonic)
    auth = authenticator(idp, keys=keys)
    token = sign(rs256, idp.claims(RESOURCE))
    first = await auth.authenticate(token)
    idp.publish(es256)  # rs-1 retired (compromised, say)
    assert await auth.authenticate(token) is first, "until the JWKS is refreshed the key is still trusted"
    monotonic.now += 61
    await auth.authenticate(sign(es256, idp.claims(RESOURCE)))  # triggers the refresh
    assert "key id 'rs-1', which the issuer's JWKS does not publish" in await refused(auth, token)


async def test_oversized_and_malformed_tokens(idp: IdentityProvider, rs256: TestKey) -> None:
    auth = authenticator(idp)
    huge = sign(rs256, idp.claims(RESOURCE, padding="x" * 20_000))
    assert "over 16384 bytes" in await refused(auth, huge)
    header, payload, signature = sign(rs256, idp.claims(RESOURCE)).split(".")
    assert "cannot be verified" in await refused(auth, f"{header}.{payload}x.{signature}")


async def test_signing_keys_unreachable_is_unavailable_not_unauthenticated(
    idp: IdentityProvider, rs256: TestKey
) -> None:
    idp.fail_jwks = True
    with pytest.raises(Unavailable) as caught:
        await authenticator(idp).authenticate(sign(rs256, idp.claims(RESOURCE)))
    assert "signing keys could not be fetched" in caught.value.message


async def test_tokens_never_reach_the_logs(
    idp: IdentityProvider, rs256: TestKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = authenticator(idp, required_scopes=["mcp:read"])
    tokens = [
        sign(rs256, idp.claims(RESOURCE, scope="mcp:read")),
        sign(rs256, idp.claims(RESOURCE, scope="other")),
        sign(rs256, idp.claims("https://elsewhere")),
        sign(rsa_key("rs-1"), idp.claims(RESOURCE)),
        forge_hmac_with_public_key(rs256, idp.claims(RESOURCE)),
    ]
    for token in tokens:
        with contextlib.suppress(Unauthenticated):
            await auth.authenticate(token)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "OIDC token refused" in logged, "refusals are logged (without the token)"
    for token in tokens:
        for part in token.split("."):
            assert part not in logged
