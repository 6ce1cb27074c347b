"""EnvSecretsProvider: names as environment variables, missing and blank values, stated expiry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bastion.secrets import SecretNotFound
from bastion.secrets.env import EnvSecretsProvider, env_var_name


def test_names_map_to_environment_variables() -> None:
    assert env_var_name("GITHUB_TOKEN") == "GITHUB_TOKEN"
    assert env_var_name("mcp/github/acme") == "MCP_GITHUB_ACME"
    assert env_var_name("mcp/github/my-org.io") == "MCP_GITHUB_MY_ORG_IO"
    assert env_var_name("9lives") == "_9LIVES"


@pytest.mark.anyio
async def test_reads_the_variable_and_strips_whitespace() -> None:
    provider = EnvSecretsProvider({"MCP_GITHUB_ACME": "  ghp_abc\n"})
    secret = await provider.fetch("mcp/github/acme")
    assert secret.value.get_secret_value() == "ghp_abc"
    assert secret.name == "mcp/github/acme"
    assert secret.expires_at is None
    assert "ghp_abc" not in repr(secret)


@pytest.mark.anyio
async def test_missing_or_blank_is_not_found_and_names_the_variable() -> None:
    provider = EnvSecretsProvider({"MCP_GITHUB_DEFAULT": "   "})
    with pytest.raises(SecretNotFound, match="environment variable MCP_GITHUB_ACME is not set"):
        await provider.fetch("mcp/github/acme")
    with pytest.raises(SecretNotFound, match="MCP_GITHUB_DEFAULT"):
        await provider.fetch("mcp/github/default")


@pytest.mark.anyio
async def test_a_json_secret_states_its_expiry() -> None:
    provider = EnvSecretsProvider({"T": '{"token": "ghp_x", "expires_at": "2030-01-02T03:04:05Z"}'})
    secret = await provider.fetch("T")
    assert secret.expires_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
