"""GitHubAppCredentials end to end against the App stand-in: a real RS256 App JWT verified with the App's public
key, installation lookup and tokens, caching and refresh before expiry, one refresh per organisation, 401s, key
rotation, outages served until the token's own expiry, the PAT fallback, the allowlist and GHES paths."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.github.conftest import APP_ID, KEY_SECRET, Clock, MakeCredentials, pem_of
from tests.support.github_stub import GitHubAppStub, Reply, Scripted, github_app_stub, make_app_key

from bastion.errors import ConfigError, InvalidInput, Unavailable
from bastion.github.api import GitHubApi
from bastion.github.credentials import NoCredentials


@pytest.mark.anyio
async def test_an_installation_token_is_minted_with_a_verified_app_jwt(
    stub: GitHubAppStub, make_credentials: MakeCredentials
) -> None:
    credentials = make_credentials()
    token = await credentials.token_for("Acme")
    issued = stub.minted("acme")
    assert [item.token for item in issued] == [token.value.get_secret_value()]
    assert token.kind == "installation"
    assert token.expires_at is not None
    assert [(call.method, call.path, call.credential) for call in stub.calls()] == [
        ("GET", "/orgs/acme/installation", "jwt"),
        ("POST", "/app/installations/1001/access_tokens", "jwt"),
    ]
    claims = stub.jwt_claims[-1]
    assert claims["iss"] == APP_ID
    assert claims["exp"] - claims["iat"] == 600  # iat 60 s back, exp 9 minutes ahead
    seconds = credentials.seconds_to_expiry("acme")
    assert seconds is not None
    assert 3500 < seconds <= 3600


@pytest.mark.anyio
async def test_the_token_is_cached_and_refreshed_when_less_than_the_margin_is_left(
    stub: GitHubAppStub, make_credentials: MakeCredentials, clock: Clock
) -> None:
    credentials = make_credentials(refresh_margin=300)
    first = await credentials.token_for("acme")
    clock.offset = 3600 - 310  # 310 s left: still good
    assert await credentials.token_for("acme") == first
    clock.offset = 3600 - 290  # 290 s left: replaced before it expires
    second = await credentials.token_for("acme")
    assert second.value.get_secret_value() != first.value.get_secret_value()
    assert len(stub.minted("acme")) == 2
    assert len(stub.calls("/orgs/acme/installation")) == 1  # the installation id is remembered


@pytest.mark.anyio
async def test_due_tokens_are_renewed_in_the_background_before_the_expiry_alarm(
    stub: GitHubAppStub, make_credentials: MakeCredentials, clock: Clock
) -> None:
    credentials = make_credentials()
    assert credentials.refresh_margin == 900  # above the 600 s alarm: the alarm means refreshing fails
    await credentials.token_for("acme")
    await credentials.token_for("globex")
    clock.offset = 3600 - 910  # (the expiry GitHub states has whole seconds)
    await credentials.refresh_due()
    assert (len(stub.minted("acme")), len(stub.minted("globex"))) == (1, 1)
    clock.offset = 3600 - 890
    await credentials.refresh_due()
    assert (len(stub.minted("acme")), len(stub.minted("globex"))) == (2, 2)
    assert (await credentials.token_for("acme")).value.get_secret_value() == stub.minted("acme")[-1].token


@pytest.mark.anyio
async def test_concurrent_callers_share_one_refresh_per_organisation(
    stub: GitHubAppStub, make_credentials: MakeCredentials
) -> None:
    credentials = make_credentials()
    tokens = await asyncio.gather(*(credentials.token_for(org) for org in ["acme", "globex"] * 10))
    assert len({token.value.get_secret_value() for token in tokens}) == 2
    assert (len(stub.minted("acme")), len(stub.minted("globex"))) == (1, 1)
    assert credentials.organizations() == ["acme", "globex"]


@pytest.mark.anyio
async def test_a_configured_installation_id_skips_the_lookup(
    stub: GitHubAppStub, make_credentials: MakeCredentials
) -> None:
    credentials = make_credentials(installation_ids={"ACME": 1001})
    await credentials.token_for("acme")
    assert [call.path for call in stub.calls()] == ["/app/installations/1001/access_tokens"]


@pytest.mark.anyio
async def test_invalidate_after_a_401_mints_a_new_token(stub: GitHubAppStub, make_credentials: MakeCredentials) -> None:
    credentials = make_credentials()
    first = await credentials.token_for("acme")
    stub.revoke(first.value.get_secret_value())
    credentials.invalidate("ACME")
    second = await credentials.token_for("acme")
    assert second.value.get_secret_value() in stub.valid_tokens
    assert second != first


@pytest.mark.anyio
async def test_a_rotated_app_key_is_read_again_after_github_rejects_the_jwt(
    stub: GitHubAppStub, make_credentials: MakeCredentials, secrets_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = make_credentials()
    await credentials.token_for("acme")  # the old key is now cached (TTL 5 minutes)
    new_key = make_app_key()
    (secrets_dir / KEY_SECRET).write_text(pem_of(new_key))
    stub.rotate_key(new_key.public_key())  # the old key was deleted on GitHub
    token = await credentials.token_for("globex")
    assert token.value.get_secret_value() in stub.valid_tokens
    assert "GitHub rejected the App JWT (app 424242); reading the private key again" in caplog.text
    assert next(call.credential for call in stub.calls("globex|1002")).startswith("rejected")


@pytest.mark.anyio
async def test_a_wrong_key_is_explained(
    stub: GitHubAppStub, make_credentials: MakeCredentials, secrets_dir: Path
) -> None:
    (secrets_dir / KEY_SECRET).write_text(pem_of(make_app_key()))
    with pytest.raises(Unavailable, match=r"GitHub rejects the App JWT for app id 424242: check .* 'github-app\.pem'"):
        await make_credentials().token_for("acme")
    (secrets_dir / KEY_SECRET).write_text("not a key")
    with pytest.raises(Unavailable, match=r"github-app\.pem' is not a PEM private key"):
        await make_credentials().token_for("acme")


@pytest.mark.anyio
async def test_an_outage_serves_the_current_token_until_its_own_expiry(
    stub: GitHubAppStub, make_credentials: MakeCredentials, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = make_credentials()
    first = await credentials.token_for("acme")
    stub.scripted.append(Scripted("POST", "access_tokens", Reply(503, {"message": "Service Unavailable"}), times=100))
    clock.offset = 3600 - 200  # due for refresh; GitHub fails
    assert await credentials.token_for("acme") == first
    assert "refreshing the installation token of acme failed (GitHub refused" in caplog.text
    attempts = len(stub.calls("access_tokens"))
    clock.offset += 10  # within the retry pause: GitHub is not asked again
    assert await credentials.token_for("acme") == first
    assert len(stub.calls("access_tokens")) == attempts
    clock.offset = 3600 - 30  # less than a minute left: not handed out any more
    with pytest.raises(Unavailable, match=r"no GitHub installation token for acme: .*503 Service Unavailable"):
        await credentials.token_for("acme")
    stub.scripted.clear()
    assert (await credentials.token_for("acme")).value.get_secret_value() in stub.valid_tokens


@pytest.mark.anyio
async def test_organisations_without_the_app_fall_back_to_a_pat(
    stub: GitHubAppStub, make_credentials: MakeCredentials, secrets_dir: Path
) -> None:
    credentials = make_credentials()
    with pytest.raises(NoCredentials, match=r"not installed on 'initech'.*tokens/initech.*does not exist"):
        await credentials.token_for("initech")
    assert [call.path for call in stub.calls("initech")] == [
        "/orgs/initech/installation",
        "/users/initech/installation",
    ]
    (secrets_dir / "tokens").mkdir()
    (secrets_dir / "tokens" / "default").write_text('{"token": "ghp_default"}')
    credentials = make_credentials()
    stub.requests.clear()
    token = await credentials.token_for("initech")
    assert (token.kind, token.value.get_secret_value()) == ("pat", "ghp_default")
    assert len(stub.calls("initech")) == 2
    await credentials.token_for("initech")
    assert len(stub.calls("initech")) == 2  # "not installed" is remembered


@pytest.mark.anyio
async def test_a_rejected_pat_is_read_again_from_its_secret(
    make_credentials: MakeCredentials, secrets_dir: Path
) -> None:
    (secrets_dir / "tokens").mkdir()
    (secrets_dir / "tokens" / "initech").write_text("ghp_old")
    credentials = make_credentials(app_id=None, private_key_secret=None)
    assert (await credentials.token_for("initech")).value.get_secret_value() == "ghp_old"
    (secrets_dir / "tokens" / "initech").write_text("ghp_new")  # rotated
    assert (await credentials.token_for("initech")).value.get_secret_value() == "ghp_old"  # cached (TTL)
    credentials.invalidate("initech")  # GitHub said 401
    assert (await credentials.token_for("initech")).value.get_secret_value() == "ghp_new"


@pytest.mark.anyio
async def test_the_allowlist_and_owner_names_are_enforced(make_credentials: MakeCredentials) -> None:
    credentials = make_credentials(org_allowlist=["Acme"])
    assert (await credentials.token_for("ACME")).kind == "installation"
    with pytest.raises(Unavailable, match="'globex': it is not in BASTION_GITHUB__ORG_ALLOWLIST"):
        await credentials.token_for("globex")
    with pytest.raises(InvalidInput, match="is not a GitHub organisation or user name"):
        await credentials.token_for("../app")


@pytest.mark.anyio
async def test_installations_are_listed(make_credentials: MakeCredentials) -> None:
    listed = await make_credentials().installations()
    assert [(item.id, item.account) for item in listed] == [(1001, "acme"), (1002, "globex")]


def test_an_app_needs_both_id_and_key(make_credentials: MakeCredentials) -> None:
    with pytest.raises(ConfigError, match="needs both BASTION_GITHUB__APP_ID and BASTION_GITHUB__PRIVATE_KEY_SECRET"):
        make_credentials(private_key_secret=None)


@pytest.mark.anyio
async def test_github_enterprise_server_paths_and_rate_limit_headers(
    app_key: rsa.RSAPrivateKey, make_credentials: MakeCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with github_app_stub(APP_ID, app_key.public_key(), installations={"eng": 7}, base_path="/api/v3") as ghes:
        ghes.rate_remaining = 300
        api = GitHubApi(ghes.url)
        credentials = make_credentials(api=api)
        token = await credentials.token_for("eng")
        assert ghes.url.endswith("/api/v3")
        assert [call.path for call in ghes.calls()] == ["/orgs/eng/installation", "/app/installations/7/access_tokens"]
        assert api.rate_limit is not None
        assert api.rate_limit.limit == 5000
        assert "GitHub rate limit low" in caplog.text
        assert token.value.get_secret_value() not in caplog.text
