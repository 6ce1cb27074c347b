"""AwsSecretsProvider + SecretsCache against a real moto_server: per-organisation names with the default fallback,
a customer KMS key, a rotation (new AWSCURRENT) seen after the TTL and after an invalidation (a 401), and a
Secrets Manager outage served from the cache."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.support.moto import MotoServer, moto_server

from bastion.config import SecretsSettings, Settings
from bastion.errors import Unavailable
from bastion.secrets import SecretNotFound, SecretsCache, build_secrets_provider, org_secret_names
from bastion.secrets.aws import AwsSecretsProvider


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _client(moto: MotoServer) -> Any:
    return boto3.client("secretsmanager", endpoint_url=moto.endpoint_url)


def _name(prefix: str = "mcp/github") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]}"


@pytest.mark.anyio
async def test_reads_by_name_and_arn_and_reports_a_missing_secret(moto: MotoServer) -> None:
    name = _name()
    created = _client(moto).create_secret(Name=name, SecretString='{"token": "ghp_one"}')
    provider = AwsSecretsProvider(endpoint_url=moto.endpoint_url)
    by_name = await provider.fetch(name)
    by_arn = await provider.fetch(created["ARN"])
    assert by_name.value.get_secret_value() == by_arn.value.get_secret_value() == '{"token": "ghp_one"}'
    assert by_name.version == created["VersionId"]
    with pytest.raises(SecretNotFound, match=r"does not exist in AWS Secrets Manager \(http://127\.0\.0\.1"):
        await provider.fetch(_name())


@pytest.mark.anyio
async def test_a_secret_under_a_customer_kms_key_decrypts_transparently(moto: MotoServer) -> None:
    kms = boto3.client("kms", endpoint_url=moto.endpoint_url)
    key_id = kms.create_key(Description="bastion secrets", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    name = _name()
    _client(moto).create_secret(Name=name, SecretString="-----BEGIN RSA PRIVATE KEY-----\nabc", KmsKeyId=key_id)
    assert _client(moto).describe_secret(SecretId=name)["KmsKeyId"].endswith(key_id)
    secret = await AwsSecretsProvider(endpoint_url=moto.endpoint_url).fetch(name)
    assert secret.value.get_secret_value() == "-----BEGIN RSA PRIVATE KEY-----\nabc"


@pytest.mark.anyio
async def test_per_organisation_secrets_fall_back_to_the_default(moto: MotoServer) -> None:
    prefix = f"mcp/{uuid.uuid4().hex[:6]}"
    config = SecretsSettings(provider="aws", name_template=prefix + "/{org}", default_name=f"{prefix}/default")
    _client(moto).create_secret(Name=f"{prefix}/acme", SecretString="acme-token")
    _client(moto).create_secret(Name=f"{prefix}/default", SecretString="default-token")
    cache = SecretsCache(AwsSecretsProvider(endpoint_url=moto.endpoint_url))
    assert (await cache.first(org_secret_names(config, "Acme"))).value.get_secret_value() == "acme-token"
    other = await cache.first(org_secret_names(config, "globex"))
    assert (other.name, other.value.get_secret_value()) == (f"{prefix}/default", "default-token")


@pytest.mark.anyio
async def test_a_rotation_is_seen_after_the_ttl_or_at_once_after_an_invalidation(
    moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bastion.secrets")
    client = _client(moto)
    name = _name()
    client.create_secret(Name=name, SecretString="v1")
    clock = Clock()
    cache = SecretsCache(AwsSecretsProvider(endpoint_url=moto.endpoint_url), ttl=300, clock=clock)
    assert (await cache.get(name)).value.get_secret_value() == "v1"

    second = client.put_secret_value(SecretId=name, SecretString="v2")  # the new AWSCURRENT; v1 is AWSPREVIOUS
    assert "AWSCURRENT" in second["VersionStages"]
    clock.now += 200
    assert (await cache.get(name)).value.get_secret_value() == "v1"  # within the TTL
    clock.now += 101
    rotated = await cache.get(name)
    assert (rotated.value.get_secret_value(), rotated.version) == ("v2", second["VersionId"])
    assert f"secret {name} rotated" in caplog.text

    client.put_secret_value(SecretId=name, SecretString="v3")
    assert (await cache.get(name)).value.get_secret_value() == "v2"
    cache.invalidate(name)  # what a 401 from GitHub does
    assert (await cache.get(name)).value.get_secret_value() == "v3"
    assert "v3" not in caplog.text


@pytest.mark.anyio
async def test_a_secret_scheduled_for_deletion_is_explained(moto: MotoServer) -> None:
    name = _name()
    _client(moto).create_secret(Name=name, SecretString="x")
    _client(moto).delete_secret(SecretId=name, RecoveryWindowInDays=7)
    with pytest.raises(Unavailable, match=r"InvalidRequestException.*scheduled for deletion"):
        await AwsSecretsProvider(endpoint_url=moto.endpoint_url).fetch(name)


@pytest.mark.anyio
async def test_an_outage_is_served_from_the_cache_and_recovers(
    tmp_path: Path, aws_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bastion.secrets")
    with moto_server(tmp_path / "moto") as own:
        client = _client(own)
        name = _name()
        client.create_secret(Name=name, SecretString="before-outage")
        uncached = _name()
        client.create_secret(Name=uncached, SecretString="never-read")
        clock = Clock()
        settings = Settings(
            data_dir=tmp_path / "data",
            secrets=SecretsSettings(provider="aws", endpoint_url=own.endpoint_url, cache_seconds=300),
        )
        provider = build_secrets_provider(settings)
        assert provider.describe() == f"AWS Secrets Manager ({own.endpoint_url})"
        cache = SecretsCache(provider, ttl=settings.secrets.cache_seconds, clock=clock)
        assert (await cache.get(name)).value.get_secret_value() == "before-outage"

        own.stop()
        clock.now += 301
        assert (await cache.get(name)).value.get_secret_value() == "before-outage"
        assert "serving the value read at" in caplog.text
        with pytest.raises(Unavailable, match="cannot reach AWS Secrets Manager"):
            await cache.get(uncached)  # nothing cached: nothing to serve

        own.restart()
        client.put_secret_value(SecretId=name, SecretString="after-outage")
        clock.now += 11  # past the retry pause
        assert (await cache.get(name)).value.get_secret_value() == "after-outage"
        assert f"secret {name} rotated" in caplog.text
