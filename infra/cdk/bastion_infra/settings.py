"""What an operator chooses for a deployment, as frozen value objects read from CDK context.

The stacks take these objects, never raw context, so a test builds a deployment in one line and a typo in
`cdk.json` fails at synth with a message instead of producing a half-configured stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast
from urllib.parse import urlsplit

__all__ = [
    "AlarmThresholds",
    "ContextReader",
    "ExistingState",
    "ExistingVpc",
    "LambdaSettings",
    "ServiceSettings",
    "SettingsError",
    "bootstrap_repositories",
    "lambda_settings_from_context",
    "service_settings_from_context",
]

SharedStateMode = Literal["create", "existing", "none"]

# An exact `owner/name`: bootstrap mirrors concrete repositories; globs belong in the policy file.
_REPOSITORY_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# CloudWatch Logs accepts only these retention periods.
VALID_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922)


class SettingsError(ValueError):
    """A deployment setting is missing or inconsistent; the message names the context key to fix."""


@dataclass(frozen=True)
class AlarmThresholds:
    """The numbers behind seed 000's four alerts plus 5xx and audit-sink lag (all per 5 minutes unless noted)."""

    denied_attempts: int = 10
    tool_calls: int = 5000
    errors: int = 5
    token_expiry_seconds: int = 600
    http_5xx: int = 5
    audit_sink_lag_seconds: int = 300


@dataclass(frozen=True)
class ExistingVpc:
    """A VPC the stack does not own. Given as attributes (no lookup), so synthesis stays offline."""

    vpc_id: str
    availability_zones: tuple[str, ...]
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        zones = len(self.availability_zones)
        if zones < 2:
            raise SettingsError("vpc.availability_zones: give at least two zones")
        for name, subnets in (
            ("public_subnet_ids", self.public_subnet_ids),
            ("private_subnet_ids", self.private_subnet_ids),
        ):
            if len(subnets) != zones:
                raise SettingsError(f"vpc.{name}: give one subnet per availability zone ({zones})")


@dataclass(frozen=True)
class ExistingState:
    """Shared PostgreSQL and Redis that already exist (for more than one task).

    The password and the Redis URL are secrets because they carry credentials; ECS injects them at task start.
    """

    state_url: str
    state_password_secret_arn: str
    rate_limit_storage_url_secret_arn: str
    # Only when those secrets are encrypted with a customer key: the execution role needs kms:Decrypt on it.
    secrets_kms_key_arn: str | None = None

    def __post_init__(self) -> None:
        if not self.state_url.startswith("postgresql"):
            raise SettingsError("existing_state.state_url: expected postgresql+psycopg://user@host:port/db")
        if urlsplit(self.state_url).password:
            raise SettingsError("existing_state.state_url: leave the password out (state_password_secret_arn holds it)")


def _require_repositories(names: Sequence[str], orgs: Sequence[str]) -> None:
    for name in names:
        if not _REPOSITORY_NAME.match(name):
            raise SettingsError(
                f"allowed_repositories: {name!r} is not owner/name; list exact repositories to mirror "
                "(patterns such as acme/* belong in the policy file)"
            )
        if orgs and name.split("/", 1)[0].lower() not in {org.lower() for org in orgs}:
            raise SettingsError(f"allowed_repositories: {name!r} is outside github_org_allowlist {list(orgs)}")


def bootstrap_repositories(names: Sequence[str], github_url: str = "https://github.com") -> str:
    """The `BASTION_REPOS__BOOTSTRAP` JSON for exact repository names."""
    return json.dumps(
        [{"url": f"{github_url}/{name}.git", "name": name} for name in names],
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class _Common:
    environment: str
    github_app_id: str
    github_org_allowlist: tuple[str, ...]
    allowed_repositories: tuple[str, ...]
    policy_file: Path
    alarm_email: str | None
    domain_name: str | None
    thresholds: AlarmThresholds
    log_retention_days: int
    audit_retention_days: int
    # More non-secret BASTION_* settings for the container/function, e.g. BASTION_AUTH__OIDC__ISSUER (docs/auth.md).
    app_settings: Mapping[str, str]

    def _validate_common(self) -> None:
        if not _ENVIRONMENT_NAME.match(self.environment):
            raise SettingsError("environment: lowercase letters, digits and '-', at most 20 characters")
        if not self.github_app_id.isdigit():
            raise SettingsError("github_app_id: the numeric id of the GitHub App (Settings > Developer settings)")
        _require_repositories(self.allowed_repositories, self.github_org_allowlist)
        for key, days in (
            ("log_retention_days", self.log_retention_days),
            ("audit_retention_days", self.audit_retention_days),
        ):
            if days not in VALID_RETENTION_DAYS:
                raise SettingsError(f"{key}: {days} is not a CloudWatch Logs retention period {VALID_RETENTION_DAYS}")
        for name in self.app_settings:
            if not name.startswith("BASTION_"):
                raise SettingsError(f"app_settings: {name!r} is not a BASTION_* setting")
            if "PASSWORD" in name or name.endswith("_TOKEN"):
                raise SettingsError(f"app_settings: {name!r} looks like a credential; use a secret instead")
        if self.alarm_email is not None and "@" not in self.alarm_email:
            raise SettingsError("alarm_email: expected an e-mail address")

    @property
    def prefix(self) -> str:
        """Resource names and log groups start with this: `/mcp-bastion/<env>/...`."""
        return f"/mcp-bastion/{self.environment}"


@dataclass(frozen=True)
class ServiceSettings(_Common):
    """The ECS Fargate deployment behind an ALB."""

    certificate_arn: str = ""
    ecr_repository_name: str = "mcp-bastion"
    image_tag: str = "latest"
    existing_vpc: ExistingVpc | None = None
    shared_state: SharedStateMode = "create"
    existing_state: ExistingState | None = None
    desired_count: int = 2
    max_count: int = 6
    cpu: int = 1024
    memory_mib: int = 2048
    ephemeral_storage_gib: int = 50
    ingress_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    ip_allowlist: tuple[str, ...] = ()
    database_instance_type: str = "t4g.small"
    cache_node_type: str = "cache.t4g.small"

    def __post_init__(self) -> None:
        self._validate_common()
        if not self.certificate_arn.startswith("arn:"):
            raise SettingsError("certificate_arn: the ACM certificate ARN for the ALB's HTTPS listener")
        if not self.domain_name:
            raise SettingsError("domain_name: the DNS name clients use (it is also the OAuth resource)")
        if not 1 <= self.desired_count <= self.max_count:
            raise SettingsError("desired_count/max_count: need 1 <= desired_count <= max_count")
        if self.max_count > 1 and self.shared_state == "none":
            raise SettingsError(
                "shared_state: more than one task needs shared PostgreSQL and Redis; use 'create' or 'existing' "
                "(or set max_count to 1)"
            )
        if (self.shared_state == "existing") != (self.existing_state is not None):
            raise SettingsError("existing_state: required exactly when shared_state is 'existing'")
        if self.ephemeral_storage_gib < 21 or self.ephemeral_storage_gib > 200:
            raise SettingsError("ephemeral_storage_gib: Fargate allows 21-200 GiB")

    @property
    def public_url(self) -> str:
        return f"https://{self.domain_name}/mcp"


@dataclass(frozen=True)
class LambdaSettings(_Common):
    """The Lambda deployment behind API Gateway (REST)."""

    lambda_asset_dir: Path = Path("build/lambda")
    certificate_arn: str | None = None
    cognito: bool = True
    cognito_domain_prefix: str | None = None
    in_vpc: bool = False
    existing_vpc: ExistingVpc | None = None
    throttle_rate: float = 50.0
    throttle_burst: int = 100
    memory_mib: int = 1024
    create_apigateway_log_role: bool = False

    def __post_init__(self) -> None:
        self._validate_common()
        if not self.lambda_asset_dir.is_dir():
            raise SettingsError(
                f"lambda_asset_dir: {self.lambda_asset_dir} is not a directory; run scripts/build-lambda.sh first"
            )
        if self.existing_vpc is not None and not self.in_vpc:
            raise SettingsError("vpc: an existing VPC is used only with lambda_in_vpc=true")
        if self.domain_name and not self.certificate_arn:
            raise SettingsError("certificate_arn: a custom domain_name needs an ACM certificate in the stack's region")
        if self.cognito and not self.cognito_domain_prefix:
            raise SettingsError("cognito_domain_prefix: Cognito's token endpoint needs a globally unique prefix")


# --- reading CDK context -------------------------------------------------------------------------------------


class ContextReader(Protocol):
    """`get(key)` of CDK context values (a plain dict in tests)."""

    def get(self, key: str, default: Any = None, /) -> Any: ...


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # `-c key='["a","b"]'` arrives as a string from the command line.
        value = json.loads(value) if value.startswith("[") else [item for item in value.split(",") if item]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in cast(list[Any], value)):
        raise SettingsError(f"{key}: expected a list of strings")
    return tuple(cast(list[str], value))


def _mapping(value: Any, key: str) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise SettingsError(f"{key}: expected an object")
    return cast(dict[str, Any], value)


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}


def _optional(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _existing_vpc(raw: dict[str, Any] | None) -> ExistingVpc | None:
    if raw is None:
        return None
    return ExistingVpc(
        vpc_id=str(raw["vpc_id"]),
        availability_zones=_strings(raw.get("availability_zones"), "vpc.availability_zones"),
        public_subnet_ids=_strings(raw.get("public_subnet_ids"), "vpc.public_subnet_ids"),
        private_subnet_ids=_strings(raw.get("private_subnet_ids"), "vpc.private_subnet_ids"),
    )


def _common(get: ContextReader, base_dir: Path) -> dict[str, Any]:
    thresholds = _mapping(get.get("alarm_thresholds"), "alarm_thresholds") or {}
    policy_file = Path(str(get.get("policy_file") or "examples/policy.yaml"))
    return {
        "environment": str(get.get("environment") or "prod"),
        "github_app_id": str(get.get("github_app_id") or ""),
        "github_org_allowlist": _strings(get.get("github_org_allowlist"), "github_org_allowlist"),
        "allowed_repositories": _strings(get.get("allowed_repositories"), "allowed_repositories"),
        "policy_file": policy_file if policy_file.is_absolute() else base_dir / policy_file,
        "alarm_email": _optional(get.get("alarm_email")),
        "domain_name": _optional(get.get("domain_name")),
        "thresholds": AlarmThresholds(**{key: int(value) for key, value in thresholds.items()}),
        "log_retention_days": int(get.get("log_retention_days") or 90),
        "audit_retention_days": int(get.get("audit_retention_days") or 400),
        "app_settings": {str(k): str(v) for k, v in (_mapping(get.get("app_settings"), "app_settings") or {}).items()},
    }


def service_settings_from_context(get: ContextReader, base_dir: Path) -> ServiceSettings:
    """Build the service settings from CDK context values (`cdk.json` or `-c key=value`)."""
    state = _mapping(get.get("existing_state"), "existing_state")
    return ServiceSettings(
        **_common(get, base_dir),
        certificate_arn=str(get.get("certificate_arn") or ""),
        ecr_repository_name=str(get.get("ecr_repository") or "mcp-bastion"),
        image_tag=str(get.get("image_tag") or "latest"),
        existing_vpc=_existing_vpc(_mapping(get.get("vpc"), "vpc")),
        shared_state=cast(SharedStateMode, str(get.get("shared_state") or "create")),
        existing_state=ExistingState(**state) if state else None,
        desired_count=int(get.get("desired_count") or 2),
        max_count=int(get.get("max_count") or 6),
        ingress_cidrs=_strings(get.get("ingress_cidrs"), "ingress_cidrs") or ("0.0.0.0/0",),
        ip_allowlist=_strings(get.get("ip_allowlist"), "ip_allowlist"),
    )


def lambda_settings_from_context(get: ContextReader, base_dir: Path) -> LambdaSettings:
    """Build the Lambda settings from CDK context values."""
    asset_dir = Path(str(get.get("lambda_asset_dir") or "build/lambda"))
    return LambdaSettings(
        **_common(get, base_dir),
        lambda_asset_dir=asset_dir if asset_dir.is_absolute() else base_dir / asset_dir,
        certificate_arn=_optional(get.get("certificate_arn")),
        cognito=_flag(get.get("lambda_cognito", True)),
        cognito_domain_prefix=_optional(get.get("cognito_domain_prefix")),
        in_vpc=_flag(get.get("lambda_in_vpc", False)),
        existing_vpc=_existing_vpc(_mapping(get.get("vpc"), "vpc")),
        create_apigateway_log_role=_flag(get.get("create_apigateway_log_role", False)),
    )
