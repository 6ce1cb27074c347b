"""infra/cdk/bastion_infra/settings.py: deployment settings refuse inconsistent input with a message naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from infra.cdk.bastion_infra.settings import (
    SettingsError,
    bootstrap_repositories,
    lambda_settings_from_context,
    service_settings_from_context,
)
from tests.infra.conftest import EXISTING_STATE, REPO_ROOT, cdk_json_context


def _service(**overrides: Any) -> Any:
    return service_settings_from_context(cdk_json_context() | overrides, REPO_ROOT)


def test_cdk_json_defaults_are_a_valid_deployment() -> None:
    settings = _service()
    assert settings.public_url == "https://mcp.example.com/mcp"
    assert settings.prefix == "/mcp-bastion/prod"
    assert settings.shared_state == "create"
    assert settings.policy_file == REPO_ROOT / "examples" / "policy.yaml"


def test_bootstrap_json_lists_exact_repositories() -> None:
    assert json.loads(bootstrap_repositories(["acme/api"])) == [
        {"url": "https://github.com/acme/api.git", "name": "acme/api"}
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"allowed_repositories": ["acme/*"]}, "patterns such as acme/\\* belong in the policy file"),
        ({"allowed_repositories": ["evil/api"]}, "outside github_org_allowlist"),
        ({"shared_state": "none"}, "more than one task needs shared PostgreSQL and Redis"),
        ({"shared_state": "existing"}, "existing_state: required exactly when shared_state is 'existing'"),
        ({"certificate_arn": ""}, "certificate_arn"),
        ({"github_app_id": "my-app"}, "github_app_id: the numeric id"),
        ({"audit_retention_days": 100}, "audit_retention_days: 100 is not a CloudWatch Logs retention period"),
        ({"environment": "Prod_1"}, "environment: lowercase"),
        ({"desired_count": 8}, "desired_count/max_count"),
        ({"app_settings": {"OIDC_ISSUER": "x"}}, "app_settings: 'OIDC_ISSUER' is not a BASTION_\\* setting"),
        ({"app_settings": {"BASTION_STATE_PASSWORD": "x"}}, "looks like a credential"),
        (
            {
                "vpc": {
                    "vpc_id": "vpc-1",
                    "availability_zones": ["a", "b"],
                    "public_subnet_ids": ["p"],
                    "private_subnet_ids": ["q", "r"],
                }
            },
            "vpc.public_subnet_ids: give one subnet per availability zone",
        ),
    ],
)
def test_inconsistent_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _service(**overrides)


def test_one_task_may_keep_state_on_local_sqlite() -> None:
    settings = _service(shared_state="none", desired_count=1, max_count=1)
    assert settings.max_count == 1


def test_existing_state_url_must_not_carry_the_password() -> None:
    state = EXISTING_STATE | {"state_url": "postgresql+psycopg://bastion:hunter2@db:5432/bastion"}
    with pytest.raises(SettingsError, match="leave the password out"):
        _service(shared_state="existing", existing_state=state)


def test_lists_may_come_from_the_command_line_as_strings() -> None:
    settings = _service(github_org_allowlist='["acme","beta"]', allowed_repositories="acme/api,beta/web")
    assert settings.github_org_allowlist == ("acme", "beta")
    assert settings.allowed_repositories == ("acme/api", "beta/web")


def test_lambda_needs_the_built_package(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"run scripts/build-lambda\.sh first"):
        lambda_settings_from_context(cdk_json_context() | {"lambda_asset_dir": str(tmp_path / "missing")}, REPO_ROOT)
    with pytest.raises(SettingsError, match="cognito_domain_prefix"):
        lambda_settings_from_context(
            cdk_json_context() | {"lambda_asset_dir": str(tmp_path), "cognito_domain_prefix": ""}, REPO_ROOT
        )
