"""`bastion policy check` and `bastion policy lint` through the real root app, on files and on the SSM parameter or
S3 object of BASTION_POLICY__URL (a real moto_server on 127.0.0.1)."""

from __future__ import annotations

import uuid
from collections.abc import Generator
from pathlib import Path

import boto3
import pytest
from tests.support.moto import MotoServer, moto_with_fake_credentials
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.cli.policy import full_ref

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "policy.yaml"

POLICY = """\
version: 1
defaults:
  max_file_size: 1MiB
rules:
  - name: eng-read
    repositories: ["acme/*"]
    subjects: {groups: [eng]}
    operations: [read, search]
    refs: [main, "refs/tags/v*"]
  - name: no-infra
    effect: deny
    description: Infrastructure is SRE only
    repositories: [acme/infra]
    subjects: {users: ["*"]}
"""


@pytest.fixture(autouse=True)
def _no_policy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BASTION_POLICY__FILE", raising=False)
    monkeypatch.delenv("BASTION_POLICY__URL", raising=False)
    monkeypatch.delenv("BASTION_DATA_DIR", raising=False)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def check(policy_file: Path, *args: str) -> tuple[int, str]:
    return run("policy", "check", "--file", str(policy_file), "--subject", "alice", "--group", "eng", *args)


def test_allow_prints_reason_rule_limits_and_exits_0(policy_file: Path) -> None:
    code, output = check(policy_file, "--repo", "acme/api", "--op", "read", "--ref", "main", "--path", "src/a.py")
    assert code == 0, output
    assert "ALLOW  allowed by rule 'eng-read'" in output
    assert "rule:   eng-read" in output
    assert "limits: max_file_size=1048576 bytes, redaction=mask" in output
    assert "decides" in output  # the trace table marks the deciding rule


def test_short_ref_is_a_branch_and_full_refs_are_kept(policy_file: Path) -> None:
    code, output = check(policy_file, "--repo", "acme/api", "--op", "read", "--ref", "v1")
    assert code == 1
    assert "DENY  ref 'refs/heads/v1' is not allowed by rule 'eng-read' (allowed: main, refs/tags/v*)" in output
    code, output = check(policy_file, "--repo", "acme/api", "--op", "read", "--ref", "refs/tags/v1")
    assert code == 0, output
    assert full_ref("main") == "refs/heads/main"
    assert full_ref("refs/tags/v1") == "refs/tags/v1"


def test_deny_by_rule_exits_1_with_the_trace(policy_file: Path) -> None:
    code, output = check(policy_file, "--repo", "acme/infra", "--op", "read")
    assert code == 1
    assert "DENY  denied by rule 'no-infra': Infrastructure is SRE only" in output
    assert "rule:   no-infra" in output
    assert "eng-read" in output  # every rule has a row
    assert "matches" in output


def test_no_rule_allows(policy_file: Path) -> None:
    code, output = check(policy_file, "--repo", "acme/api", "--op", "diff", "--group", "ops")
    assert code == 1
    assert "DENY  no rule allows diff on acme/api for alice (groups: eng, ops)" in output
    assert "rule:   -" in output
    assert "no: operation" in output


def test_size_and_default_deny_list(policy_file: Path) -> None:
    code, output = check(policy_file, "--repo", "acme/api", "--op", "read", "--size", "2MiB")
    assert code == 1
    assert "DENY  file is 2.0 MiB, over the 1.0 MiB limit of the policy's defaults.max_file_size (a limit on" in output
    code, output = check(policy_file, "--repo", "acme/api", "--op", "read", "--path", "deploy/.env")
    assert code == 1
    assert "DENY  path 'deploy/.env' is denied by the default deny list (pattern '.env')" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--repo", "acme/api", "--op", "write"), "write"),
        (("--repo", "acme/api", "--op", "read", "--size", "huge"), "--size: 'huge' is not a size"),
        (("--repo", "acme", "--op", "read"), "repository name 'acme' is not a canonical owner/repo name"),
        (("--repo", "acme/api", "--op", "read", "--path", "../x"), "path '../x' is not a normalized"),
    ],
)
def test_bad_input_exits_2(policy_file: Path, args: tuple[str, ...], message: str) -> None:
    code, output = check(policy_file, *args)
    assert code == 2
    assert message in output


def test_broken_policy_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nrules: [{name: x}]\n")
    code, output = check(path, "--repo", "acme/api", "--op", "read")
    assert code == 2
    assert f"{path}:2: rule 'x' needs 'repositories'" in output


def test_default_file_comes_from_the_data_dir(tmp_path: Path) -> None:
    code, output = run(
        "--data-dir", str(tmp_path), "policy", "check", "--subject", "a", "--repo", "o/r", "--op", "read"
    )
    assert code == 2
    assert f"policy file {tmp_path.resolve() / 'policy.yaml'} does not exist" in output
    assert "examples/policy.yaml" in output
    (tmp_path / "policy.yaml").write_text(POLICY)
    code, output = run(
        "--data-dir", str(tmp_path), "policy", "check", "--subject", "a", "--group", "eng", "--repo", "acme/x",
        "--op", "read",
    )  # fmt: skip
    assert code == 0, output
    assert "allowed by rule 'eng-read'" in output


def test_lint_clean_file_exits_0() -> None:
    code, output = run("policy", "lint", "--file", str(EXAMPLE))
    assert code == 0, output
    assert "no problems found" in output


def test_lint_prints_each_finding_and_exits_1_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "rules:\n"
        "  - {name: a, repositories: [acme/x], subjects: {users: [u]}, operations: [read], colour: red}\n"
        "  - {name: b, repositories: [acme/y], subjects: {}, operations: [read]}\n"
    )
    code, output = run("policy", "lint", "--file", str(path))
    assert code == 1
    assert f"{path}:3: error: rule 'a': unknown key 'colour'" in output
    assert f"{path}:4: warning: rule 'b' has no users and no groups: it matches nobody" in output
    assert "1 error(s), 1 warning(s)" in output


def test_lint_warnings_only_exit_0_and_known_repos(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    code, output = run("policy", "lint", "--file", str(path), "--known-repo", "acme/api")
    assert code == 0, output
    assert f"{path}:13: warning: rule 'no-infra': repository glob 'acme/infra' matches none of the 1 known" in output
    assert "0 error(s), 1 warning(s)" in output


# -- the policy of BASTION_POLICY__URL -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Generator[MotoServer]:
    with moto_with_fake_credentials(tmp_path_factory.mktemp("moto-policy-cli")) as server:
        yield server


@pytest.fixture
def remote(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """AWS clients built the way the server builds them (no endpoint in the code) reach the moto_server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    return moto


def test_check_and_lint_read_the_ssm_parameter_the_server_would_load(
    remote: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = f"/mcp-bastion/cli/{uuid.uuid4().hex[:8]}/policy"
    ssm = boto3.client("ssm", endpoint_url=remote.endpoint_url)
    ssm.put_parameter(Name=name, Value=POLICY, Type="String")
    monkeypatch.setenv("BASTION_POLICY__URL", f"ssm:{name}")
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))  # holds no policy file: the parameter is what is read
    args = ("policy", "check", "--subject", "alice", "--group", "eng", "--repo", "acme/api", "--op", "read")
    code, output = run(*args)
    assert code == 0, output
    assert "ALLOW  allowed by rule 'eng-read'" in output
    assert f"policy: ssm:{name}@1" in output
    code, output = run("policy", "lint")
    assert code == 0, output
    assert f"ssm:{name}@1: no problems found" in output
    # A broken new version: lint names its lines, check refuses it, as the server would keep the last good one.
    ssm.put_parameter(Name=name, Value="version: 1\nrules: [{name: x}]\n", Type="String", Overwrite=True)
    code, output = run("policy", "lint")
    assert code == 1
    assert f"ssm:{name}@2:2: error: rule 'x' needs 'repositories'" in output
    code, output = run(*args)
    assert code == 2
    assert f"ssm:{name}@2:2: rule 'x' needs 'repositories'" in output
    # --file still wins over the configured URL.
    code, output = run(*args, "--file", str(EXAMPLE))
    assert f"policy: {EXAMPLE}" in output


def test_lint_reads_an_s3_object(remote: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = f"policy-cli-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=remote.endpoint_url)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="prod/policy.yaml", Body=POLICY.encode())
    etag = s3.head_object(Bucket=bucket, Key="prod/policy.yaml")["ETag"]
    monkeypatch.setenv("BASTION_POLICY__URL", f"s3://{bucket}/prod/policy.yaml")
    code, output = run("policy", "lint", "--known-repo", "acme/api")
    assert code == 0, output
    assert f"s3://{bucket}/prod/policy.yaml@{etag}:13: warning: rule 'no-infra'" in output


def test_an_unreadable_or_malformed_policy_url_is_refused_with_the_reason(
    remote: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_POLICY__URL", "ssm:/mcp-bastion/cli/no-such-parameter")
    for args in (("policy", "lint"), ("policy", "check", "--subject", "a", "--repo", "o/r", "--op", "read")):
        code, output = run(*args)
        assert code == 2, output
        assert "cannot read the policy parameter ssm:/mcp-bastion/cli/no-such-parameter: ParameterNotFound" in output
    monkeypatch.setenv("BASTION_POLICY__URL", "https://example.com/policy.yaml")
    code, output = run("policy", "lint")
    assert code == 1
    assert "https://example.com/policy.yaml: error: policy.url 'https://example.com/policy.yaml' is neither" in output


def test_a_policy_url_without_an_aws_region_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))  # no region from a profile either
    monkeypatch.setenv("BASTION_POLICY__URL", "ssm:/mcp-bastion/cli/policy")
    code, output = run("policy", "lint")
    assert code == 2, output
    assert "cannot reach SSM for the policy ssm:/mcp-bastion/cli/policy: You must specify a region." in output
    assert "Traceback" not in output
