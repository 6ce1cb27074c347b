"""`bastion token` against a real OAuth token endpoint on 127.0.0.1: the client-credentials grant, what is
printed (and what never is), and configurations that carry the token."""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path

import pytest
from tests.support.oidc import IdentityProvider, identity_provider, rsa_key
from typer.testing import CliRunner

from bastion.auth.oidc import OidcAuthenticator
from bastion.cli.main import app
from bastion.config import OidcSettings

pytestmark = pytest.mark.anyio

runner = CliRunner()
SECRET = "s3cr3t-value-never-printed"
RESOURCE = "https://mcp.example.com/mcp"


@pytest.fixture
def idp() -> Generator[IdentityProvider]:
    key = rsa_key("token-key")
    with identity_provider(key) as provider:
        provider.token_key = key
        provider.clients["ci-robot"] = SECRET
        provider.token_claims = {"cognito:groups": ["ci"]}
        yield provider


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "client-secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["token", *args], env=env)
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr
    return result.exit_code, result.stdout, result.stderr


async def test_prints_only_a_token_the_server_accepts(idp: IdentityProvider, secret_file: Path) -> None:
    code, out, err = run(
        "--token-url", idp.token_url, "--client-id", "ci-robot", "--client-secret-file", str(secret_file),
        "--scope", "bastion/read", "--scope", "bastion/search",
    )  # fmt: skip
    assert code == 0, err
    token = out.strip()
    assert out == token + "\n", "only the token on stdout"
    assert "expires in 3600 s" in err
    assert idp.token_requests == [
        {"grant_type": "client_credentials", "scope": "bastion/read bastion/search", "auth": "basic"}
    ]
    # A Cognito-style token (client_id, no aud) that the server's verifier accepts for this client.
    settings = OidcSettings(
        issuer=idp.issuer, audiences=["ci-robot"], groups_claim="cognito:groups", required_scopes=["bastion/read"]
    )
    principal = await OidcAuthenticator(settings, RESOURCE).authenticate(token)
    assert (principal.subject, principal.groups, principal.client) == ("ci-robot", frozenset({"ci"}), "ci-robot")


async def test_resource_indicator_and_secret_in_the_form_body(idp: IdentityProvider) -> None:
    code, out, err = run(
        "--token-url", idp.token_url, "--client-id", "ci-robot", "--resource", RESOURCE, "--auth-method", "post",
        env={"BASTION_TOKEN_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    assert code == 0, err
    assert idp.token_requests == [
        {"grant_type": "client_credentials", "resource": RESOURCE, "client_id": "ci-robot", "auth": "post"}
    ]
    principal = await OidcAuthenticator(OidcSettings(issuer=idp.issuer), RESOURCE).authenticate(out.strip())
    assert principal.subject == "ci-robot", "the token's audience is the resource it was requested for"


def test_a_refused_client_gets_the_providers_reason(idp: IdentityProvider, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret")
    code, out, err = run("--token-url", idp.token_url, "--client-id", "ci-robot", "--client-secret-file", str(wrong))
    assert code == 1
    assert out == ""
    assert "the token endpoint answered HTTP 401: invalid_client (client authentication failed)" in err
    assert "not-the-secret" not in err


def test_the_secret_must_come_from_a_file_or_the_environment(idp: IdentityProvider, tmp_path: Path) -> None:
    code, _, err = run("--token-url", idp.token_url, "--client-id", "ci-robot", env={"BASTION_TOKEN_CLIENT_SECRET": ""})
    assert code == 2
    assert "no client secret: pass --client-secret-file FILE or set BASTION_TOKEN_CLIENT_SECRET" in err
    missing = tmp_path / "absent"
    code, _, err = run("--token-url", idp.token_url, "--client-id", "ci-robot", "--client-secret-file", str(missing))
    assert code == 2
    assert f"cannot read the client secret file {missing}" in err
    code, _, err = run("--token-url", idp.token_url, "--client-id", "ci", "--client-secret", SECRET)
    assert code == 2, "there is no option that takes the secret itself"


def test_plain_http_token_urls_are_refused_off_loopback(secret_file: Path) -> None:
    code, _, err = run(
        "--token-url", "http://idp.example.com/oauth2/token", "--client-id", "x", "--client-secret-file",
        str(secret_file),
    )  # fmt: skip
    assert code == 2
    assert "the token URL must be an https:// URL" in err


def test_an_unreachable_endpoint_is_reported(secret_file: Path) -> None:
    code, _, err = run(
        "--token-url", "http://127.0.0.1:9/oauth2/token", "--client-id", "x", "--client-secret-file", str(secret_file)
    )
    assert code == 1
    assert "cannot reach the token endpoint http://127.0.0.1:9/oauth2/token" in err


@pytest.mark.parametrize("client", ["vscode", "claude-code", "cursor", "claude-desktop"])
def test_print_config_carries_the_token(idp: IdentityProvider, secret_file: Path, client: str) -> None:
    code, out, err = run(
        "--token-url", idp.token_url, "--client-id", "ci-robot", "--client-secret-file", str(secret_file),
        "--print-config", client, "--url", RESOURCE,
    )  # fmt: skip
    assert code == 0, err
    assert RESOURCE in out
    assert "Bearer eyJ" in out
    assert out.startswith("# WARNING: this snippet contains your access token. Keep it out of version control")
    assert "this configuration contains an access token (it expires in 3600 s" in err
    if client == "vscode":
        config = json.loads(out[out.index("{") :])
        header = config["servers"]["bastion"]["headers"]["Authorization"]
        assert header.startswith("Bearer eyJ")
        assert header.count(".") == 2


def test_print_config_names_a_known_client(idp: IdentityProvider, secret_file: Path) -> None:
    code, _, err = run(
        "--token-url", idp.token_url, "--client-id", "ci-robot", "--client-secret-file", str(secret_file),
        "--print-config", "emacs",
    )  # fmt: skip
    assert code == 2
    assert "unknown client 'emacs': choose one of claude-code, claude-desktop, vscode, cursor" in err
    assert idp.token_requests == [], "nothing is requested for a command line that cannot succeed"


def test_header_json_for_a_headers_helper(idp: IdentityProvider, secret_file: Path) -> None:
    code, out, err = run(
        "--token-url", idp.token_url, "--client-id", "ci-robot", "--client-secret-file", str(secret_file),
        "--header-json",
    )  # fmt: skip
    assert code == 0, err
    headers = json.loads(out)
    assert list(headers) == ["Authorization"]
    assert headers["Authorization"].startswith("Bearer eyJ")
