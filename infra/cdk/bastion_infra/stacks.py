"""Which stacks an app holds, chosen by CDK context (`variant`), with cdk-nag over all of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Stack

from .lambda_stack import BastionLambdaStack
from .nag import add_nag_checks
from .service_stack import BastionServiceStack
from .settings import SettingsError, lambda_settings_from_context, service_settings_from_context

__all__ = ["CONTEXT_KEYS", "build_stacks"]

# Every context key the app reads (a key outside this list in cdk.json is almost certainly a typo).
CONTEXT_KEYS = (
    "variant", "region", "environment", "github_app_id", "github_org_allowlist", "allowed_repositories",
    "policy_file", "alarm_email", "domain_name", "alarm_thresholds", "log_retention_days", "audit_retention_days",
    "certificate_arn", "ecr_repository", "image_tag", "vpc", "shared_state", "existing_state", "desired_count",
    "max_count", "ingress_cidrs", "ip_allowlist", "lambda_asset_dir", "lambda_cognito", "cognito_domain_prefix",
    "lambda_in_vpc", "create_apigateway_log_role", "app_settings",
)  # fmt: skip


class _Context:
    def __init__(self, app: App) -> None:
        self._app = app

    def get(self, key: str, default: Any = None, /) -> Any:
        if key not in CONTEXT_KEYS:
            raise KeyError(key)
        value = self._app.node.try_get_context(key)
        return default if value is None else value


def build_stacks(app: App, repo_root: Path) -> list[Stack]:
    """Add the stacks named by context `variant` (`service`, `lambda` or `both`) to `app`.

    The region must be known (ALB access logging and ARNs need it) but the account need not be: leaving it out
    keeps availability zones as `Fn::GetAZs` instead of CDK's offline placeholders.
    """
    context = _Context(app)
    variant = str(context.get("variant", "service"))
    if variant not in ("service", "lambda", "both"):
        raise SettingsError("variant: 'service', 'lambda' or 'both'")
    region = context.get("region") or os.environ.get("CDK_DEFAULT_REGION")
    if not region:
        raise SettingsError("region: pass -c region=<aws-region> (or configure a default region for the CDK CLI)")
    env = Environment(region=str(region))
    stacks: list[Stack] = []
    if variant in ("service", "both"):
        settings = service_settings_from_context(context, repo_root)
        stacks.append(BastionServiceStack(app, f"BastionService-{settings.environment}", settings=settings, env=env))
    if variant in ("lambda", "both"):
        lambda_settings = lambda_settings_from_context(context, repo_root)
        stacks.append(
            BastionLambdaStack(app, f"BastionLambda-{lambda_settings.environment}", settings=lambda_settings, env=env)
        )
    add_nag_checks(app)
    return stacks
