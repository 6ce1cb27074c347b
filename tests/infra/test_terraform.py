"""infra/terraform: `terraform fmt -check` and `terraform validate` of the module and of seed 000's example call.

Offline: `terraform init` reads the AWS provider from a local plugin directory (FACTS.md). Nothing is skipped:
without terraform or a provider the test fails and says what to install. On a machine with network access (the
GitHub Actions runner), BASTION_TF_ONLINE_INIT=1 lets init download the provider instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.infra.conftest import REPO_ROOT

MODULE = REPO_ROOT / "infra" / "terraform"
SEED_000_VARIABLES = {
    "environment",
    "vpc_id",
    "subnet_ids",
    "github_org_whitelist",
    "allowed_repositories",
    "enable_monitoring",
    "alarm_email",
}
# Where images and developer machines keep provider mirrors; searched in order (no scan of the whole disk).
_PLUGIN_ROOTS = (
    Path("/opt/tf-plugins"),
    Path("/opt"),
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
)


def _terraform() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.fail("terraform is not on PATH: install Terraform >= 1.11 (the CI image ships 1.11)")
    return binary


def _plugin_dir() -> Path | None:
    configured = os.environ.get("BASTION_TF_PLUGIN_DIR")
    if configured:
        return Path(configured)
    for root in _PLUGIN_ROOTS:
        if not root.is_dir():
            continue
        if (root / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return root
        for candidate in root.glob("*/registry.terraform.io/hashicorp/aws"):
            return candidate.parents[2]
    return None


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {"TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run(
        [_terraform(), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the module (init writes .terraform/ beside the code), with the example policy it reads."""
    root = tmp_path_factory.mktemp("terraform")
    shutil.copytree(MODULE, root / "infra" / "terraform", ignore=shutil.ignore_patterns(".terraform*"))
    (root / "examples").mkdir()
    shutil.copy(REPO_ROOT / "examples" / "policy.yaml", root / "examples" / "policy.yaml")
    return root / "infra" / "terraform"


def _init(directory: Path) -> None:
    plugin_dir = _plugin_dir()
    args = ["init", "-input=false", "-backend=false", "-no-color"]
    if plugin_dir is not None:
        args.append(f"-plugin-dir={plugin_dir}")
    elif os.environ.get("BASTION_TF_ONLINE_INIT") != "1":
        pytest.fail(
            "no local copy of the hashicorp/aws provider found (looked in "
            f"{', '.join(map(str, _PLUGIN_ROOTS))}); set BASTION_TF_PLUGIN_DIR to the directory holding "
            "registry.terraform.io/, or BASTION_TF_ONLINE_INIT=1 where the registry is reachable"
        )
    result = _run(args, directory)
    assert result.returncode == 0, result.stdout + result.stderr


def test_fmt_check() -> None:
    result = _run(["fmt", "-check", "-recursive", "-diff", "-no-color"], MODULE)
    assert result.returncode == 0, f"run `terraform fmt -recursive infra/terraform`:\n{result.stdout}{result.stderr}"


def test_module_validates(workspace: Path) -> None:
    _init(workspace)
    result = _run(["validate", "-no-color"], workspace)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The configuration is valid" in result.stdout


def test_seed_000_example_call_validates(workspace: Path) -> None:
    example = workspace / "examples" / "basic"
    _init(example)
    result = _run(["validate", "-no-color"], example)
    assert result.returncode == 0, result.stdout + result.stderr


def test_interface_has_seed_000_variables_and_allowlist_output() -> None:
    text = (MODULE / "variables.tf").read_text()
    declared = set(re.findall(r'^variable "([a-z_0-9]+)"', text, flags=re.MULTILINE))
    assert declared >= SEED_000_VARIABLES, SEED_000_VARIABLES - declared
    outputs = set(re.findall(r'^output "([a-z_0-9]+)"', (MODULE / "outputs.tf").read_text(), flags=re.MULTILINE))
    assert {"nat_egress_ips", "mcp_url", "github_app_key_secret_arn"} <= outputs


def test_the_load_balancer_has_a_rate_limiting_web_acl() -> None:
    text = (MODULE / "main.tf").read_text()
    association = re.search(r'resource "aws_wafv2_web_acl_association" "this" \{(.*?)\n\}', text, flags=re.DOTALL)
    assert association is not None
    assert re.search(r"resource_arn\s*=\s*aws_lb\.this\.arn", association.group(1))
    assert re.search(r"web_acl_arn\s*=\s*aws_wafv2_web_acl\.this\.arn", association.group(1))
    acl = re.search(r'resource "aws_wafv2_web_acl" "this" \{(.*?)\n\}', text, flags=re.DOTALL)
    assert acl is not None
    assert re.search(r"rate_based_statement \{\s*limit\s*=\s*var\.waf_rate_limit", acl.group(1))
    assert re.search(r'aggregate_key_type\s*=\s*"IP"', acl.group(1))


def _block(text: str, header: str) -> str:
    """The body of the top-level block that starts with `header` (e.g. `resource "aws_lb" "this"`)."""
    found = re.search(rf"^{re.escape(header)} \{{(.*?)\n\}}", text, flags=re.DOTALL | re.MULTILINE)
    assert found is not None, f"no {header} block"
    return found.group(1)


def test_the_audit_chain_is_sealed_with_a_generated_retained_key_the_task_role_may_read() -> None:
    main = (MODULE / "main.tf").read_text()
    secret = _block(main, 'resource "aws_secretsmanager_secret" "audit_hmac_key"')
    assert re.search(r"kms_key_id\s*=\s*aws_kms_key\.this\.arn", secret)
    assert re.search(r"prevent_destroy\s*=\s*true", secret), "records sealed with the key verify only with it"
    kms_key = _block(main, 'resource "aws_kms_key" "this"')
    assert re.search(r"prevent_destroy\s*=\s*true", kms_key), "the kept secret and audit logs are encrypted with it"
    # Drawn ephemerally and written write-only: the key never enters the plan or the state.
    password = _block(main, 'ephemeral "aws_secretsmanager_random_password" "audit_hmac_key"')
    assert re.search(r"password_length\s*=\s*64", password)
    version = _block(main, 'resource "aws_secretsmanager_secret_version" "audit_hmac_key"')
    assert re.search(r"secret_id\s*=\s*aws_secretsmanager_secret\.audit_hmac_key\.id", version)
    assert re.search(
        r"secret_string_wo\s*=\s*ephemeral\.aws_secretsmanager_random_password\.audit_hmac_key\.random_password",
        version,
    )
    assert not re.search(r"^\s*secret_string\s*=", version, flags=re.MULTILINE), "a stored value is in the state"
    assert re.search(r"secret_string_wo_version\s*=\s*1\b", version), "a constant version: written once"
    assert 'data "aws_secretsmanager_random_password"' not in main
    environment = _block(main, "locals")
    assert re.search(
        r"BASTION_AUDIT__HMAC_KEY_SECRET\s*=\s*aws_secretsmanager_secret\.audit_hmac_key\.arn", environment
    )
    service = _block(main, 'resource "aws_ecs_service" "this"')
    assert re.search(r"depends_on\s*=\s*\[[^]]*aws_secretsmanager_secret_version\.audit_hmac_key", service)
    task_policy = _block((MODULE / "iam.tf").read_text(), 'data "aws_iam_policy_document" "task"')
    statement = re.search(r'sid\s*=\s*"ReadAuditHmacKey"(.*?)\n  \}', task_policy, flags=re.DOTALL)
    assert statement is not None
    assert re.search(r'actions\s*=\s*\["secretsmanager:GetSecretValue"\]', statement.group(1))
    assert re.search(r"resources\s*=\s*\[aws_secretsmanager_secret\.audit_hmac_key\.arn\]", statement.group(1))
    outputs = _block((MODULE / "outputs.tf").read_text(), 'output "audit_hmac_key_secret_arn"')
    assert re.search(r"value\s*=\s*aws_secretsmanager_secret\.audit_hmac_key\.arn", outputs)


def test_validation_rejects_a_repository_outside_the_org_allowlist(workspace: Path) -> None:
    """The cross-variable validation runs at plan time, before any AWS call, so it fails here with its message."""
    probe = workspace.parent / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "main.tf").write_text(
        'module "m" {\n  source = "../terraform"\n'
        '  environment = "prod"\n  vpc_id = "vpc-1"\n  subnet_ids = ["a", "b"]\n'
        '  github_org_whitelist = ["acme"]\n  allowed_repositories = ["evil/repo"]\n'
        '  public_subnet_ids = ["c", "d"]\n  domain_name = "mcp.example.com"\n  certificate_arn = "arn:x"\n'
        '  image_uri = "1.dkr.ecr.eu-west-1.amazonaws.com/mcp-bastion:1"\n  github_app_id = "1"\n'
        '  policy_yaml = "version: 1"\n}\n'
    )
    _init(probe)
    result = _run(["plan", "-input=false", "-refresh=false", "-lock=false", "-no-color"], probe)
    assert result.returncode != 0
    message = " ".join((result.stdout + result.stderr).split())
    assert "every repository must belong to an organisation in github_org_whitelist" in message
