"""RemotePolicy against a real moto_server: an SSM parameter and an S3 object, fetched at start, re-checked by
version / ETag in the background, an unreachable store and a broken version keeping the last good policy."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from tests.support.moto import MotoServer, moto_with_fake_credentials

from bastion.config import PolicySettings, Settings
from bastion.errors import ConfigError
from bastion.policy.loader import PolicyFile
from bastion.policy.remote import (
    RemotePolicy,
    S3PolicyObject,
    SsmPolicyParameter,
    fetcher_for_url,
    open_policy_source,
)
from bastion.policy.types import AccessRequest, Decision, Operation

ALICE_READS_API = AccessRequest("alice", frozenset({"eng"}), "acme/api", Operation.READ)


def policy_text(repository: str) -> str:
    return (
        "version: 1\n"
        "rules:\n"
        "  - name: eng-read\n"
        f"    repositories: [{repository}]\n"
        "    subjects: {groups: [eng]}\n"
        "    operations: [read]\n"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Generator[MotoServer]:
    with moto_with_fake_credentials(tmp_path_factory.mktemp("moto-policy")) as server:
        yield server


_ONE_TRY = Config(retries={"total_max_attempts": 1})


def _ssm(moto: MotoServer) -> Any:
    return boto3.client("ssm", endpoint_url=moto.endpoint_url, config=_ONE_TRY)


def _s3(moto: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=moto.endpoint_url)


def _allows(policy: RemotePolicy) -> bool:
    decision: Decision = policy.current().decide(ALICE_READS_API)
    return decision.allowed


def test_an_ssm_parameter_is_loaded_and_a_new_version_picked_up_in_the_background(
    moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bastion.policy")
    name = f"/mcp-bastion/test/{uuid.uuid4().hex[:8]}/policy"
    _ssm(moto).put_parameter(Name=name, Value=policy_text("acme/api"), Type="String")
    clock = Clock()
    policy = RemotePolicy(SsmPolicyParameter(name, client=_ssm(moto)), check_interval=30, clock=clock)
    assert _allows(policy)
    assert policy.version == "1"
    _ssm(moto).put_parameter(Name=name, Value=policy_text("acme/other"), Type="String", Overwrite=True)
    clock.now += 29
    policy.current()
    policy.wait_for_refresh()
    assert _allows(policy)  # not due yet
    clock.now += 1
    assert _allows(policy)  # the check starts now, in the background; this call got the current policy
    policy.wait_for_refresh()
    assert not _allows(policy)
    assert policy.version == "2"
    assert policy.last_error is None
    assert f"policy reloaded from ssm:{name} (version 2, 1 rules)" in caplog.text


def test_an_s3_object_is_revalidated_by_etag(moto: MotoServer) -> None:
    bucket = f"policy-{uuid.uuid4().hex[:8]}"
    _s3(moto).create_bucket(Bucket=bucket)
    _s3(moto).put_object(Bucket=bucket, Key="prod/policy.yaml", Body=policy_text("acme/api").encode())
    fetcher = fetcher_for_url(f"s3://{bucket}/prod/policy.yaml")
    assert isinstance(fetcher, S3PolicyObject)
    fetcher = S3PolicyObject(bucket, "prod/policy.yaml", client=_s3(moto))
    policy = RemotePolicy(fetcher, check_interval=0)
    first_etag = policy.version
    assert first_etag
    assert fetcher.fetch(first_etag) is None  # 304: unchanged
    assert policy.refresh() is False
    _s3(moto).put_object(Bucket=bucket, Key="prod/policy.yaml", Body=policy_text("acme/*").encode())
    assert policy.refresh() is True
    assert policy.version != first_etag
    assert policy.current().decide(AccessRequest("bob", frozenset({"eng"}), "acme/web", Operation.READ)).allowed


def test_an_unreachable_store_and_a_broken_version_keep_the_last_good_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with moto_with_fake_credentials(tmp_path / "moto") as own:
        ssm = boto3.client("ssm", endpoint_url=own.endpoint_url, config=_ONE_TRY)
        ssm.put_parameter(Name="/p", Value=policy_text("acme/api"), Type="String")
        policy = RemotePolicy(SsmPolicyParameter("/p", client=ssm), check_interval=0)
        own.stop()
        assert policy.refresh() is False
        assert _allows(policy)
        assert policy.last_error is not None
        assert "cannot reach SSM for the policy ssm:/p" in policy.last_error
        assert "keeping the policy loaded at" in policy.last_error
        own.restart()
        ssm.put_parameter(Name="/p", Value="version: 1\nrules: [{name: x}]\n", Type="String", Overwrite=True)
        assert policy.refresh() is False
        assert _allows(policy)
        assert policy.last_error is not None
        assert policy.last_error.startswith("version 2 is invalid, still serving version 1: ssm:/p@2")
        errors = caplog.text.count("policy reload from ssm:/p failed")
        assert policy.refresh() is False  # the same broken version is not parsed or reported again
        assert caplog.text.count("policy reload from ssm:/p failed") == errors
        ssm.put_parameter(Name="/p", Value=policy_text("acme/other"), Type="String", Overwrite=True)
        assert policy.refresh() is True
        assert policy.last_error is None
        assert not _allows(policy)


def test_no_policy_at_start_refuses_to_start(moto: MotoServer) -> None:
    with pytest.raises(
        ConfigError, match=r"cannot load the policy at start: cannot read the policy parameter ssm:/nope"
    ):
        RemotePolicy(SsmPolicyParameter("/nope", client=_ssm(moto)))
    _ssm(moto).put_parameter(Name="/broken", Value="rules: 3\n", Type="String")
    with pytest.raises(ConfigError, match=r"ssm:/broken@1"):
        RemotePolicy(SsmPolicyParameter("/broken", client=_ssm(moto)))


@pytest.mark.parametrize("url", ["ssm:", "ssm:with space", "s3://bucket", "s3://bucket/", "https://x/y", "/etc/p.yaml"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"policy\.url"):
        fetcher_for_url(url)


def test_the_source_follows_the_settings(moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "policy.yaml").write_text(policy_text("acme/api"))
    assert isinstance(open_policy_source(Settings(data_dir=tmp_path)), PolicyFile)
    _ssm(moto).put_parameter(Name="/from-settings", Value=policy_text("acme/api"), Type="String")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)  # how any AWS SDK client is pointed elsewhere
    source = open_policy_source(
        Settings(data_dir=tmp_path, policy=PolicySettings(url="ssm:/from-settings", reload_check_seconds=30))
    )
    assert isinstance(source, RemotePolicy)
    assert source.check_interval == 30
    assert source.current().decide(ALICE_READS_API).allowed
