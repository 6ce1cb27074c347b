"""Synthesize the CDK stacks once per session, offline, and hand the templates and the cdk-nag report to the tests.

Synthesis runs in the jsii Node process (~550 MB, seconds per app), so every stack variant lives in one of two
apps, each synthesized once:
- `default_app`: built by `build_stacks` from cdk.json's context (what `cdk deploy` does), variant `both`;
- `variants_app`: the other shapes — an existing VPC with existing PostgreSQL/Redis, and a Lambda with neither
  Cognito nor VPC — built from settings objects.
cdk-nag runs in both; an unacknowledged finding makes `synth()` raise, which the nag tests report.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_DIR = REPO_ROOT / "infra" / "cdk"
REGION = "eu-west-1"

EXISTING_VPC: dict[str, Any] = {
    "vpc_id": "vpc-0123456789abcdef0",
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
    "public_subnet_ids": ["subnet-0000000000000a001", "subnet-0000000000000a002"],
    "private_subnet_ids": ["subnet-0000000000000b001", "subnet-0000000000000b002"],
}
EXISTING_STATE: dict[str, str] = {
    "state_url": "postgresql+psycopg://bastion@db.internal.example:5432/bastion",
    "state_password_secret_arn": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:bastion/db-AbCdEf",
    "rate_limit_storage_url_secret_arn": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:bastion/redis-AbCdEf",
    "secrets_kms_key_arn": "arn:aws:kms:eu-west-1:111111111111:key/11111111-2222-3333-4444-555555555555",
}


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((CDK_DIR / "cdk.json").read_text())["context"])


@dataclass
class Synthesized:
    """One synthesized app: templates by stack name, the validation report, the acknowledgments made."""

    templates: dict[str, dict[str, Any]]
    report: dict[str, Any]
    error: str | None
    acknowledgments: set[tuple[str, str]] = field(default_factory=lambda: set[tuple[str, str]]())


def _synthesize(app: Any, outdir: Path) -> Synthesized:
    error: str | None = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings: ValidationFailed, after the templates were written
        error = str(exc)
    templates = {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in outdir.glob("*.template.json")
    }
    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"pluginReports": []}
    acknowledgments: set[tuple[str, str]] = set()
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                # CDK acknowledges some of its own CloudFormation-Validate rules; ours are the AwsSolutions ones.
                acknowledgments |= {
                    (construct.node.path, rule_id) for rule_id in entry.data if rule_id.startswith("AwsSolutions::")
                }
    return Synthesized(templates=templates, report=report, error=error, acknowledgments=acknowledgments)


@pytest.fixture(scope="session")
def lambda_asset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A placeholder for build/lambda: Code.from_asset needs a directory, not a real package."""
    directory = tmp_path_factory.mktemp("lambda-asset")
    (directory / "bastion").mkdir()
    (directory / "bastion" / "__init__.py").write_text("# placeholder for tests\n")
    return directory


@pytest.fixture(scope="session")
def default_app(tmp_path_factory: pytest.TempPathFactory, lambda_asset_dir: Path) -> Iterator[Synthesized]:
    import aws_cdk as cdk
    from infra.cdk.bastion_infra import build_stacks

    outdir = tmp_path_factory.mktemp("cdk-default")
    context = cdk_json_context() | {"variant": "both", "region": REGION, "lambda_asset_dir": str(lambda_asset_dir)}
    app = cdk.App(outdir=str(outdir), context=context)
    build_stacks(app, repo_root=REPO_ROOT)
    yield _synthesize(app, outdir)
    shutil.rmtree(outdir, ignore_errors=True)


@pytest.fixture(scope="session")
def variants_app(tmp_path_factory: pytest.TempPathFactory, lambda_asset_dir: Path) -> Iterator[Synthesized]:
    import aws_cdk as cdk
    from infra.cdk.bastion_infra import BastionLambdaStack, BastionServiceStack
    from infra.cdk.bastion_infra.nag import add_nag_checks
    from infra.cdk.bastion_infra.settings import lambda_settings_from_context, service_settings_from_context

    outdir = tmp_path_factory.mktemp("cdk-variants")
    app = cdk.App(outdir=str(outdir))
    env = cdk.Environment(region=REGION)
    base = cdk_json_context()
    service = service_settings_from_context(
        base
        | {
            "environment": "shared",
            "vpc": EXISTING_VPC,
            "shared_state": "existing",
            "existing_state": EXISTING_STATE,
            "ingress_cidrs": ["203.0.113.0/24"],
            "ip_allowlist": ["203.0.113.0/24"],
            "alarm_email": None,
            "app_settings": {"BASTION_AUTH__OIDC__ISSUER": "https://login.example.com/"},
        },
        REPO_ROOT,
    )
    BastionServiceStack(app, "ServiceExistingVpc", settings=service, env=env)
    plain = lambda_settings_from_context(
        base | {"environment": "plain", "lambda_asset_dir": str(lambda_asset_dir), "lambda_cognito": False},
        REPO_ROOT,
    )
    BastionLambdaStack(app, "LambdaPlain", settings=plain, env=env)
    private = lambda_settings_from_context(
        base
        | {
            "environment": "private",
            "lambda_asset_dir": str(lambda_asset_dir),
            "lambda_in_vpc": True,
            "create_apigateway_log_role": True,
            "domain_name": None,
        },
        REPO_ROOT,
    )
    BastionLambdaStack(app, "LambdaPrivate", settings=private, env=env)
    add_nag_checks(app)
    yield _synthesize(app, outdir)
    shutil.rmtree(outdir, ignore_errors=True)
