"""JwksCache against a real JWKS/discovery server on 127.0.0.1: discovery, caching, rotation, bounded refetch,
shared fetches, serve-stale, and keys refused before any signature is checked."""

from __future__ import annotations

import json
from collections.abc import Generator

import anyio
import pytest
from jwt.algorithms import RSAAlgorithm
from tests.support.oidc import IdentityProvider, TestKey, ec_key, ed25519_key, identity_provider, rsa_key

from bastion.auth.jwks import JwksCache, JwksError, parse_jwks, require_secure_url
from bastion.errors import ConfigError, Unauthenticated, Unavailable

pytestmark = pytest.mark.anyio


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa1() -> TestKey:
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def rsa2() -> TestKey:
    return rsa_key("rsa-2")


@pytest.fixture
def idp(rsa1: TestKey) -> Generator[IdentityProvider]:
    with identity_provider(rsa1) as provider:
        yield provider


def cache(idp: IdentityProvider, clock: Clock, *, jwks_url: str | None = None, **options: float) -> JwksCache:
    settings = {"cache_seconds": 3600.0, "refetch_min_seconds": 30.0, "timeout_seconds": 5.0, **options}
    return JwksCache(idp.issuer, jwks_url, monotonic=clock, **settings)


async def test_discovers_the_jwks_url_from_the_issuer_and_caches_the_keys(idp: IdentityProvider) -> None:
    keys = cache(idp, Clock())
    assert keys.jwks_url is None
    key = await keys.key_for("rsa-1", "RS256")
    assert key.kid == "rsa-1"
    assert key.kty == "RSA"
    assert keys.jwks_url == idp.jwks_url
    await keys.key_for("rsa-1", "RS256")
    assert (idp.discovery_requests, idp.jwks_requests) == (1, 1)


async def test_a_configured_jwks_url_skips_discovery(idp: IdentityProvider) -> None:
    keys = cache(idp, Clock(), jwks_url=idp.jwks_url)
    await keys.key_for("rsa-1", "RS256")
    assert (idp.discovery_requests, idp.jwks_requests) == (0, 1)


async def test_discovery_naming_another_issuer_is_refused(idp: IdentityProvider) -> None:
    idp.discovery_issuer = "https://evil.example"
    keys = cache(idp, Clock())
    with pytest.raises(Unavailable) as caught:
        await keys.key_for("rsa-1", "RS256")
    assert "names the issuer 'https://evil.example'" in caught.value.message
    assert "they must be equal" in caught.value.message
    assert idp.jwks_requests == 0


async def test_keys_are_refetched_after_the_cache_time(idp: IdentityProvider, rsa2: TestKey) -> None:
    clock = Clock()
    keys = cache(idp, clock, jwks_url=idp.jwks_url, cache_seconds=600)
    first = await keys.key_for("rsa-1", "RS256")
    assert keys.publishes(first)
    idp.publish(rsa2)
    clock.now += 599
    await keys.key_for("rsa-1", "RS256")  # still cached
    assert idp.jwks_requests == 1
    clock.now += 2
    assert (await keys.key_for("rsa-2", "RS256")).kid == "rsa-2"
    assert idp.jwks_requests == 2
    assert not keys.publishes(first), "a key withdrawn from the JWKS must be forgotten"


async def test_an_unknown_kid_triggers_one_refetch_that_finds_a_rotated_key(
    idp: IdentityProvider, rsa1: TestKey, rsa2: TestKey
) -> None:
    clock = Clock()
    keys = cache(idp, clock, jwks_url=idp.jwks_url)
    await keys.key_for("rsa-1", "RS256")
    idp.publish(rsa1, rsa2)  # the provider rotates in a new key
    clock.now += 31
    assert (await keys.key_for("rsa-2", "RS256")).kid == "rsa-2"
    assert idp.jwks_requests == 2


async def test_unknown_kids_refetch_at_most_once_per_window(idp: IdentityProvider) -> None:
    clock = Clock()
    keys = cache(idp, clock, jwks_url=idp.jwks_url, refetch_min_seconds=30)
    await keys.key_for("rsa-1", "RS256")
    clock.now += 31
    for attempt in range(50):  # a flood of made-up key ids
        with pytest.raises(Unauthenticated) as caught:
            await keys.key_for(f"made-up-{attempt}", "RS256")
        assert f"key id 'made-up-{attempt}', which the issuer's JWKS does not publish" in caught.value.message
        assert "it publishes 1 key(s): 'rsa-1'" in caught.value.message
    assert idp.jwks_requests == 2, "one refetch for the whole flood"
    clock.now += 31
    with pytest.raises(Unauthenticated):
        await keys.key_for("made-up-again", "RS256")
    assert idp.jwks_requests == 3, "the next window allows one more"


async def test_no_refetch_right_after_the_first_load(idp: IdentityProvider) -> None:
    keys = cache(idp, Clock(), jwks_url=idp.jwks_url)
    with pytest.raises(Unauthenticated, match="does not publish"):
        await keys.key_for("unknown", "RS256")
    assert idp.jwks_requests == 1


async def test_concurrent_callers_share_one_fetch(idp: IdentityProvider, rsa1: TestKey, rsa2: TestKey) -> None:
    clock = Clock()
    keys = cache(idp, clock, jwks_url=idp.jwks_url)
    await keys.key_for("rsa-1", "RS256")
    idp.publish(rsa1, rsa2)
    idp.jwks_delay = 0.3  # every caller arrives while the one fetch is in flight
    clock.now += 31
    found: list[str | None] = []

    async def ask() -> None:
        found.append((await keys.key_for("rsa-2", "RS256")).kid)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(ask)
    assert found == ["rsa-2"] * 20
    assert idp.jwks_requests == 2


async def test_concurrent_first_requests_share_one_load(idp: IdentityProvider) -> None:
    keys = cache(idp, Clock())
    idp.jwks_delay = 0.3
    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(keys.key_for, "rsa-1", "RS256")
    assert (idp.discovery_requests, idp.jwks_requests) == (1, 1)


async def test_a_failed_refresh_serves_the_keys_already_held(idp: IdentityProvider) -> None:
    clock = Clock()
    keys = cache(idp, clock, jwks_url=idp.jwks_url, cache_seconds=600, refetch_min_seconds=30)
    await keys.key_for("rsa-1", "RS256")
    idp.fail_jwks = True
    clock.now += 601
    assert (await keys.key_for("rsa-1", "RS256")).kid == "rsa-1"
    assert idp.jwks_requests == 2
    for _ in range(20):  # within the retry window: stale keys, no new request
        await keys.key_for("rsa-1", "RS256")
    assert idp.jwks_requests == 2
    with pytest.raises(Unauthenticated) as caught:
        await keys.key_for("rotated", "RS256")
    assert "the last refresh failed" in caught.value.message
    assert "HTTP 503" in caught.value.message
    idp.fail_jwks = False
    clock.now += 31
    await keys.key_for("rsa-1", "RS256")
    assert idp.jwks_requests == 3


async def test_no_keys_at_all_is_unavailable_and_retried_only_after_the_window(idp: IdentityProvider) -> None:
    clock = Clock()
    idp.fail_jwks = True
    keys = cache(idp, clock, jwks_url=idp.jwks_url, refetch_min_seconds=30)
    for _ in range(5):
        with pytest.raises(Unavailable) as caught:
            await keys.key_for("rsa-1", "RS256")
        assert "signing keys could not be fetched" in caught.value.message
        assert f"{idp.jwks_url} answered HTTP 503" in caught.value.message
        assert caught.value.details["retry_after"] == 30
    assert idp.jwks_requests == 1
    idp.fail_jwks = False
    clock.now += 31
    assert (await keys.key_for("rsa-1", "RS256")).kid == "rsa-1"
    assert idp.jwks_requests == 2


async def test_an_empty_jwks_counts_as_a_failed_fetch(idp: IdentityProvider) -> None:
    clock = Clock()
    keys = cache(idp, clock, jwks_url=idp.jwks_url, cache_seconds=10)
    await keys.key_for("rsa-1", "RS256")
    idp.publish()
    clock.now += 11
    assert (await keys.key_for("rsa-1", "RS256")).kid == "rsa-1"
    assert idp.jwks_requests == 2


async def test_a_token_without_kid_needs_a_single_key_jwks(rsa1: TestKey, rsa2: TestKey) -> None:
    with identity_provider(rsa_key(None)) as single:
        assert (await cache(single, Clock(), jwks_url=single.jwks_url).key_for(None, "RS256")).kty == "RSA"
    with identity_provider(rsa1, rsa2) as several:
        with pytest.raises(Unauthenticated) as caught:
            await cache(several, Clock(), jwks_url=several.jwks_url).key_for(None, "RS256")
        assert "names no signing key ('kid' header) and the issuer publishes 2 keys" in caught.value.message


async def test_key_type_must_fit_the_algorithm() -> None:
    published = (rsa_key("rsa", pin_alg=False), ec_key("p384", "ES384", pin_alg=False), ec_key("pinned", "ES384"))
    with identity_provider(*published, ed25519_key("ed")) as idp:
        keys = cache(idp, Clock(), jwks_url=idp.jwks_url)
        for kid, alg, expected in (
            ("rsa", "ES256", "the token says ES256, which needs an EC (P-256) key, but key 'rsa' is RSA"),
            ("p384", "ES256", "needs an EC (P-256) key, but key 'p384' is EC (P-384)"),
            ("p384", "RS256", "the token says RS256, which needs an RSA key, but key 'p384' is EC (P-384)"),
            ("pinned", "ES256", "key 'pinned' is published for ES384 only, and the token says ES256"),
            ("ed", "RS256", "key 'ed' is published for EdDSA only"),
        ):
            with pytest.raises(Unauthenticated) as caught:
                await keys.key_for(kid, alg)
            assert expected in caught.value.message
            assert "algorithm/key confusion" in caught.value.message
        # an RSA key that pins no alg serves every RSA algorithm
        assert (await keys.key_for("rsa", "PS256")).kid == "rsa"
        assert (await keys.key_for("p384", "ES384")).curve == "P-384"
        assert (await keys.key_for("ed", "EdDSA")).curve == "Ed25519"


def test_parse_jwks_keeps_only_public_asymmetric_signing_keys() -> None:
    good = rsa_key("good").public_jwk()
    short = rsa_key("short", bits=1024).public_jwk()
    private = rsa_key("private")
    private_jwk = {**private.public_jwk(), **_private_numbers(private)}
    document = {
        "keys": [
            good,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**ec_key("enc").public_jwk(), "use": "enc"},
            short,
            private_jwk,
            {**good, "kid": "weird", "alg": "HS256"},
            "not a key",
        ]
    }
    keys, skipped = parse_jwks(document)
    assert [key.kid for key in keys.keys] == ["good"]
    notes = "\n".join(skipped)
    assert "key 'hmac': key type 'oct' is not an asymmetric signing key" in notes
    assert "key 'short': its RSA modulus is 1024 bits, under the 2048 accepted" in notes
    assert "key 'private': it is a private key" in notes
    assert "key 'weird': its 'alg' 'HS256' is not an accepted asymmetric algorithm" in notes
    assert "entry 6: not a JSON object" in notes
    assert "enc" not in notes, "encryption keys are skipped silently"
    with pytest.raises(JwksError, match="not a JWKS"):
        parse_jwks({"keys": "nope"})


def _private_numbers(key: TestKey) -> dict[str, str]:
    return {name: value for name, value in json.loads(RSAAlgorithm.to_jwk(key.private_key)).items() if name == "d"}  # type: ignore[arg-type]


def test_plain_http_is_refused_except_on_loopback() -> None:
    assert require_secure_url("https://idp.example.com/jwks", "x") == "https://idp.example.com/jwks"
    assert require_secure_url("http://127.0.0.1:9/jwks", "x")
    assert require_secure_url("http://localhost:9/jwks", "x")
    with pytest.raises(ConfigError) as caught:
        JwksCache("http://idp.example.com")
    assert "the OIDC issuer (used to discover the JWKS URL) must be an https:// URL" in caught.value.message
    with pytest.raises(ConfigError, match="the JWKS URL must be an https:// URL"):
        JwksCache("https://idp.example.com", "http://10.0.0.1/jwks")


async def test_a_discovered_plain_http_jwks_uri_is_refused(idp: IdentityProvider) -> None:
    idp.discovery_jwks_uri = "http://attacker.example/jwks"
    with pytest.raises(Unavailable) as caught:
        await cache(idp, Clock()).key_for("rsa-1", "RS256")
    assert "the discovered jwks_uri must be an https:// URL" in caught.value.message
    assert idp.jwks_requests == 0
