"""`chain_key`: where the hash chain's HMAC key comes from (environment variable, file, or a Secrets Manager secret
read from a real moto_server on 127.0.0.1, as the AWS stacks configure it)."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.support.moto import MotoServer

from bastion.audit.setup import chain_key
from bastion.config import AuditSettings, SecretsSettings, Settings
from bastion.errors import ConfigError


def settings(tmp_path: Path, secret: str | None, **secrets_settings: Any) -> Settings:
    return Settings(
        data_dir=tmp_path, audit=AuditSettings(hmac_key_secret=secret), secrets=SecretsSettings(**secrets_settings)
    )


def test_no_secret_means_a_plain_sha256_chain(tmp_path: Path) -> None:
    assert chain_key(settings(tmp_path, None)) is None


def test_an_environment_variable_and_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AUDIT_HMAC_KEY", " k3y-from-the-environment \n")
    assert chain_key(settings(tmp_path, "TEST_AUDIT_HMAC_KEY")) == b"k3y-from-the-environment"
    (tmp_path / "key").write_bytes(b"k3y-from-a-file-0123\n")
    assert chain_key(settings(tmp_path, f"file:{tmp_path / 'key'}")) == b"k3y-from-a-file-0123"
    monkeypatch.setenv("TEST_AUDIT_HMAC_KEY", "short")
    with pytest.raises(ConfigError, match="the audit HMAC key must be at least 16 bytes"):
        chain_key(settings(tmp_path, "TEST_AUDIT_HMAC_KEY"))


def test_a_secrets_manager_secret_by_arn_or_name(moto: MotoServer, tmp_path: Path) -> None:
    key = secrets.token_urlsafe(32)
    name = f"mcp-bastion/test/audit-hmac-{uuid.uuid4().hex[:8]}"
    created = boto3.client("secretsmanager", endpoint_url=moto.endpoint_url).create_secret(Name=name, SecretString=key)
    assert created["ARN"].startswith("arn:aws:secretsmanager:us-east-1:")
    # The region comes from the ARN (no secrets.region needed); only the endpoint is the test's.
    by_arn = settings(tmp_path, created["ARN"], endpoint_url=moto.endpoint_url)
    assert chain_key(by_arn) == key.encode()
    # An ARN says where the secret is: secrets.region (set for the GitHub secrets, say) does not send it elsewhere.
    elsewhere = settings(tmp_path, created["ARN"], endpoint_url=moto.endpoint_url, region="eu-west-1")
    assert chain_key(elsewhere) == key.encode()
    by_name = settings(tmp_path, f"secretsmanager:{name}", endpoint_url=moto.endpoint_url, region="us-east-1")
    assert chain_key(by_name) == key.encode()


def test_a_missing_or_short_secret_stops_the_start_with_the_reason(moto: MotoServer, tmp_path: Path) -> None:
    missing = f"secretsmanager:mcp-bastion/test/no-such-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigError, match=r"audit\.hmac_key_secret: secret 'mcp-bastion/test/no-such-.*does not exist"):
        chain_key(settings(tmp_path, missing, endpoint_url=moto.endpoint_url, region="us-east-1"))
    name = f"mcp-bastion/test/short-{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager", endpoint_url=moto.endpoint_url).create_secret(Name=name, SecretString="short")
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        chain_key(settings(tmp_path, f"secretsmanager:{name}", endpoint_url=moto.endpoint_url, region="us-east-1"))
