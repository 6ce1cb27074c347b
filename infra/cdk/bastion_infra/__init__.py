"""AWS CDK app for mcp-bastion: the ECS Fargate service stack and the Lambda + API Gateway stack."""

from .lambda_stack import BastionLambdaStack
from .service_stack import BastionServiceStack
from .settings import (
    AlarmThresholds,
    ExistingState,
    ExistingVpc,
    LambdaSettings,
    ServiceSettings,
    SettingsError,
)
from .stacks import build_stacks

__all__ = [
    "AlarmThresholds",
    "BastionLambdaStack",
    "BastionServiceStack",
    "ExistingState",
    "ExistingVpc",
    "LambdaSettings",
    "ServiceSettings",
    "SettingsError",
    "build_stacks",
]
