"""Where the running service reads its access policy: an SSM parameter written from the operator's policy file.

The policy is deployed with the stack (policy as code: a change is a reviewed commit and a deploy), and the
application re-checks the parameter version every `BASTION_POLICY__RELOAD_CHECK_SECONDS`, so a policy change
needs no task restart. The policy is not secret, so a plain String parameter is enough.
"""

# pyright: reportArgumentType=false
# (jsii bindings: a CDK class and its own interface differ in parameter names, e.g. Key.add_alias(alias_name)
# vs IKey.add_alias(alias), which pyright reports at every call that passes a Key where an IKey is expected.)

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from .settings import SettingsError

__all__ = ["PolicySource"]

_STANDARD_LIMIT = 4096
_ADVANCED_LIMIT = 8192


class PolicySource(Construct):
    """`url` (the `BASTION_POLICY__URL` value) and `read_statements()` (what the application role needs)."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str, policy_file: Path) -> None:
        super().__init__(scope, construct_id)
        try:
            text = policy_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SettingsError(f"policy_file: {policy_file} does not exist") from None
        size = len(text.encode("utf-8"))
        if size > _ADVANCED_LIMIT:
            raise SettingsError(f"policy_file: {size} bytes; an SSM parameter holds at most {_ADVANCED_LIMIT}")
        self.parameter = ssm.StringParameter(
            self,
            "Parameter",
            parameter_name=name,
            string_value=text,
            description="mcp-bastion access policy (YAML, docs/policy.md)",
            tier=ssm.ParameterTier.ADVANCED if size > _STANDARD_LIMIT else ssm.ParameterTier.STANDARD,
        )
        self.url = f"ssm:{name}"

    def read_statements(self) -> list[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(
                sid="ReadPolicy", actions=["ssm:GetParameter"], resources=[self.parameter.parameter_arn]
            )
        ]
