"""The customer-managed KMS key and what it encrypts in both stacks: log groups, the GitHub App's secret and the
audit chain's HMAC key."""

# pyright: reportArgumentType=false
# (jsii bindings: a CDK class and its own interface differ in parameter names, e.g. Key.add_alias(alias_name)
# vs IKey.add_alias(alias), which pyright reports at every call that passes a Key where an IKey is expected.)

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .nag import acknowledge

__all__ = ["audit_hmac_key_secret", "bastion_key", "encrypted_log_group", "github_app_key_secret", "retention"]

_RETENTION_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    return _RETENTION_BY_DAYS[days]


def bastion_key(scope: Construct, prefix: str) -> kms.Key:
    """One key for the GitHub App secret, the audit HMAC key, the log groups, the alarm topic and (when created) the
    databases.

    CloudWatch Logs and CloudWatch alarms (publishing to the encrypted SNS topic) use the key as services, so the
    key policy names them; Logs only for this deployment's log groups, via the encryption context.
    """
    key = kms.Key(
        scope,
        "Key",
        description=f"mcp-bastion {prefix}: GitHub App secret, audit HMAC key, logs, alarm topic, shared state",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    region = Stack.of(scope).region
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsForThisDeployment",
            principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],  # in a key policy "*" means this key
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{Aws.PARTITION}:logs:{region}:{Aws.ACCOUNT_ID}:log-group:{prefix}/*"
                    )
                }
            },
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublishToEncryptedTopic",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
        )
    )
    return key


def encrypted_log_group(
    scope: Construct, construct_id: str, *, name: str, key: kms.IKey, days: int, keep: bool
) -> logs.LogGroup:
    """A log group under the deployment's prefix, encrypted with the key; `keep` retains it on stack deletion."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        encryption_key=key,
        retention=retention(days),
        removal_policy=RemovalPolicy.RETAIN if keep else RemovalPolicy.DESTROY,
    )


def github_app_key_secret(scope: Construct, *, name: str, key: kms.IKey) -> secretsmanager.Secret:
    """The secret the operator puts the GitHub App's PEM key into after the first deployment."""
    return secretsmanager.Secret(
        scope,
        "GitHubAppPrivateKey",
        secret_name=f"{name}/github-app-private-key",
        description="PEM private key of the GitHub App (replace the placeholder: docs/deploy-aws.md)",
        encryption_key=key,
    )


def audit_hmac_key_secret(scope: Construct, *, name: str, key: kms.IKey) -> secretsmanager.Secret:
    """The HMAC key that seals the audit hash chain (`BASTION_AUDIT__HMAC_KEY_SECRET`), generated at creation."""
    secret = secretsmanager.Secret(
        scope,
        "AuditHmacKey",
        secret_name=f"{name}/audit-hmac-key",
        description="HMAC key of the audit hash chain (bastion audit verify needs it: docs/deploy-aws.md)",
        encryption_key=key,
        generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
        # Retained on stack deletion: records sealed with this key can be verified only with this key.
        removal_policy=RemovalPolicy.RETAIN,
    )
    acknowledge(
        secret,
        "AwsSolutions-SMG4",
        "Rotating the audit HMAC key would need the verifier to know every key's validity period in the chain; "
        "the key is never sent anywhere (the application reads it once at start-up and only computes HMACs).",
    )
    return secret
