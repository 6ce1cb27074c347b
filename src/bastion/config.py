"""Configuration: a few nested settings models read from `BASTION_*` environment variables.

Nested fields use a double underscore: `BASTION_AUDIT__BATCH_SIZE=1000`. The policy itself lives in
its own YAML file (see docs/policy.md); this module only says where that file is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AuditCloudWatchSettings",
    "AuditJsonlSettings",
    "AuditSettings",
    "AuthSettings",
    "GitHubSettings",
    "GuardSettings",
    "LogSettings",
    "MetricsSettings",
    "OidcSettings",
    "PolicySettings",
    "RateLimitSettings",
    "RepoBootstrapEntry",
    "RepoSettings",
    "SecretsSettings",
    "ServerSettings",
    "Settings",
    "TracingSettings",
]


class ServerSettings(BaseModel):
    """The HTTP edge."""

    json_response: bool = Field(
        default=False,
        description="Answer every POST with plain JSON, never SSE (API Gateway and Lambda cannot stream).",
    )
    stateless: bool = Field(
        default=True,
        description=(
            "Keep no legacy-session state between requests, so any instance can serve any request behind a "
            "plain load balancer. Modern (2026-07-28) clients are always stateless."
        ),
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host headers accepted on /mcp besides the loopback names and the public URL's host "
            "(DNS-rebinding protection)."
        ),
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origin headers accepted on /mcp besides loopback origins and the public URL's origin.",
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0, description="Largest request body accepted.")
    ip_allowlist: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to call /mcp (the client address after trusted proxies). Empty: any address.",
    )
    ready_details: Literal["loopback", "always", "never"] = Field(
        default="loopback",
        description=(
            "Who sees why /ready fails (its reasons name repositories and policy errors): callers on the host "
            "itself, everyone, or no one. Everyone sees which checks fail; the log has the reasons."
        ),
    )
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        description=(
            "How many reverse proxies (ALB, nginx) sit in front of the server. The client address is then taken "
            "from X-Forwarded-For that many hops from the right; 0 ignores the header, so it cannot be spoofed."
        ),
    )


class OidcSettings(BaseModel):
    """OAuth 2.1 / OIDC bearer tokens (JWTs) from the company's identity provider. Enabled by setting `issuer`."""

    issuer: str | None = Field(
        default=None,
        description=(
            "The issuer exactly as it appears in the tokens' `iss` claim (no normalisation: a trailing slash "
            "matters). Setting it turns OIDC on."
        ),
    )
    audiences: list[str] = Field(
        default_factory=list,
        description=(
            "Audiences accepted besides this server's canonical resource URL (RFC 8707), e.g. a Cognito app "
            "client id for tokens that carry no resource audience."
        ),
    )
    jwks_url: str | None = Field(
        default=None, description="Where the signing keys are. Default: discovered from the issuer's metadata."
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"],
        description="Accepted signature algorithms. Asymmetric only: 'none' and HMAC are always refused.",
    )
    subject_claim: str = Field(default="sub", description="Claim that names the caller (sub, email, ...).")
    groups_claim: str = Field(
        default="groups",
        description="Claim holding the caller's groups (groups, cognito:groups, roles; dots reach nested claims).",
    )
    scopes_claim: str = Field(default="scope", description="Claim holding granted scopes (scope or scp).")
    required_scopes: list[str] = Field(default_factory=list, description="Scopes every token must carry.")
    leeway_seconds: int = Field(default=60, ge=0, le=600, description="Clock skew allowed on exp/nbf/iat.")
    jwks_cache_seconds: float = Field(default=3600, gt=0, description="How long fetched signing keys are kept.")
    jwks_refetch_min_seconds: float = Field(
        default=30,
        ge=0,
        description="An unknown key id triggers at most one JWKS refetch per this many seconds (no refetch storm).",
    )
    http_timeout_seconds: float = Field(default=5, gt=0, description="Timeout for discovery and JWKS requests.")


class AuthSettings(BaseModel):
    """Who may call. API keys are always checked; OIDC bearer tokens too when `oidc.issuer` is set."""

    oidc: OidcSettings = Field(default_factory=OidcSettings)
    trust_gateway_authorizer: bool = Field(
        default=False,
        description=(
            "On AWS Lambda behind API Gateway: take the caller from the gateway authorizer's verified claims "
            "(REST API Cognito `claims`, HTTP API JWT `jwt.claims`), mapped with the oidc claim settings. Only the "
            "Lambda adapter can supply these claims; a request without them still needs its own bearer credential."
        ),
    )
    key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "How long a verified API key is trusted without re-reading the key store, for stores that cannot "
            "signal changes. The SQLite store signals revocations at once, so this only bounds other stores."
        ),
    )


class RateLimitSettings(BaseModel):
    """Per caller and per tool, with higher tiers per group. `limits` notation: '120/minute', '10/second'."""

    enabled: bool = Field(default=True, description="Apply rate limits.")
    storage_url: str = Field(
        default="memory://",
        description="Where counters live: memory:// (one instance) or redis://host:6379/0 (shared by every instance).",
    )
    default: str = Field(default="120/minute", description="Calls per caller across all tools.")
    tools: dict[str, str] = Field(
        default_factory=lambda: {"search_code": "30/minute", "analyze_repository": "20/minute"},
        description="Extra per-tool limits for each caller (JSON object: tool -> limit).",
    )
    groups: dict[str, str] = Field(
        default_factory=dict,
        description="Per-group replacement of `default` (JSON object: group -> limit); the most generous applies.",
    )
    protocol: str = Field(
        default="600/minute",
        description=(
            "Requests per caller other than tool calls (server/discover, initialize, tools/list, notifications): "
            "counted apart, so listing never spends the quota meant for work, yet a flood of them is bounded."
        ),
    )


class GuardSettings(BaseModel):
    """What leaves the server."""

    redact_secrets: bool = Field(
        default=True, description="Find credentials in file contents, search results and patches and mask them."
    )


class PolicySettings(BaseModel):
    file: Path | None = Field(default=None, description="Policy YAML. Default: <data_dir>/policy.yaml.")
    url: str | None = Field(
        default=None,
        description=(
            "Read the policy from AWS instead of a file: `ssm:<parameter-name>` or `s3://<bucket>/<key>`. Fetched at "
            "start (the server refuses to start without it) and re-checked every reload_check_seconds by parameter "
            "version / ETag; an unreachable store keeps the last good policy. Overrides `file`."
        ),
    )
    reload_check_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How often (at most) the file is stat()ed, or the remote policy re-checked, for changes.",
    )


class AuditJsonlSettings(BaseModel):
    """The JSON lines sink: one sealed event per line, rotated by size."""

    path: Path | None = Field(default=None, description="The active file. Default: <data_dir>/audit.jsonl.")
    max_bytes: int = Field(
        default=104_857_600, gt=0, description="Rotate to <path>.<n> (n = 000001, 000002, ...) beyond this size."
    )
    keep: int = Field(default=0, ge=0, description="Rotated files kept (the oldest are deleted); 0 keeps all.")


class AuditCloudWatchSettings(BaseModel):
    """The CloudWatch Logs sink: one log stream per instance in one log group."""

    log_group: str | None = Field(default=None, description="Log group (infrastructure creates it).")
    log_stream_prefix: str | None = Field(
        default=None, description="Stream name prefix; the stream is <prefix><instance_id>. Default: '<hostname>-'."
    )
    region: str | None = Field(default=None, description="AWS region. Default: AWS_REGION / the SDK's default.")
    endpoint_url: str | None = Field(default=None, description="Another endpoint (tests: a local moto_server).")
    create_log_group: bool = Field(default=False, description="Create the log group when it is missing.")


class AuditSettings(BaseModel):
    """Audit: every event goes through a local durable spool to every configured sink (docs/audit.md)."""

    sinks: list[Literal["sqlite", "jsonl", "postgresql", "cloudwatch"]] = Field(
        default_factory=lambda: ["sqlite"], min_length=1, description='Where events go, e.g. ["sqlite", "cloudwatch"].'
    )
    sqlite_path: Path | None = Field(default=None, description="Audit database. Default: <data_dir>/audit.db.")
    jsonl: AuditJsonlSettings = Field(default_factory=AuditJsonlSettings)
    postgresql_url: str | None = Field(
        default=None,
        description="PostgreSQL for the postgresql sink (postgresql+psycopg://user@host/db). Default: state_url.",
    )
    cloudwatch: AuditCloudWatchSettings = Field(default_factory=AuditCloudWatchSettings)
    spool_path: Path | None = Field(default=None, description="Spool directory. Default: <data_dir>/audit-spool.")
    spool_fsync_ms: int = Field(
        default=100,
        ge=0,
        description=(
            "0: fsync each group commit before the response (survives power loss; ~1-3 ms per request). N > 0: "
            "the spool is fsynced every N ms in the background (survives a crash; power loss may lose N ms)."
        ),
    )
    spool_retain_events: int = Field(
        default=10_000, ge=0, description="Events kept in the spool after every sink has stored them."
    )
    wait_for_spool: bool = Field(
        default=True,
        description="Answer a request only once its audit event is in the spool. false: for benchmarks only.",
    )
    batch_size: int = Field(default=500, gt=0, description="Events written per sink transaction.")
    retry_max_seconds: float = Field(default=30.0, gt=0, description="Longest pause between retries of a sink.")
    hmac_key_secret: str | None = Field(
        default=None,
        description=(
            "Secret holding the hash chain's HMAC key: an environment variable name, file:/path, or a Secrets "
            "Manager secret (its ARN, or secretsmanager:<name>). Read once at start-up. Unset: plain SHA-256 chain."
        ),
    )


class RepoBootstrapEntry(BaseModel):
    """One repository named in `BASTION_REPOS__BOOTSTRAP`."""

    url: str
    name: str | None = Field(default=None, description="owner/repo; default: from the URL.")


class RepoSettings(BaseModel):
    backend: Literal["mirror", "github"] = Field(
        default="mirror",
        description="Where repository data comes from: local bare mirrors, or GitHub's REST API (no disk: Lambda).",
    )
    bootstrap: list[RepoBootstrapEntry] = Field(
        default_factory=list,
        description=(
            'Repositories to serve, JSON: [{"url": "https://github.com/acme/api.git", "name": "acme/api"}]. '
            "With the github backend this list is the registry."
        ),
    )
    sync_interval_seconds: float = Field(
        default=0, ge=0, description="Fetch every mirror this often while serving; 0 disables the schedule."
    )
    git_timeout_seconds: float = Field(default=30.0, gt=0, description="Upper bound for one git command.")
    fetch_timeout_seconds: float = Field(default=600.0, gt=0, description="Upper bound for one clone or fetch.")
    search_timeout_seconds: float = Field(default=10.0, gt=0, description="Upper bound for one search.")
    max_search_results: int = Field(default=200, gt=0, description="Ceiling on `max_results` for search_code.")
    default_max_bytes: int = Field(
        default=262_144, gt=0, description="Bytes of file content returned when the caller does not ask."
    )
    max_read_bytes: int = Field(
        default=10_485_760,
        gt=0,
        description="Hard ceiling on bytes read from one file, whatever the policy or the caller asks.",
    )
    max_patch_bytes: int = Field(
        default=524_288, gt=0, description="Patch text returned by one get_commit / compare_refs call."
    )
    blob_cache_bytes: int = Field(
        default=67_108_864,
        ge=0,
        description="Memory for file contents kept after a read (files up to 256 KiB, all repositories); 0 disables.",
    )


class GitHubSettings(BaseModel):
    """GitHub's REST API (the github repository backend) and the credentials for it."""

    api_url: str = Field(
        default="https://api.github.com", description="REST API root; GitHub Enterprise Server: https://HOST/api/v3."
    )
    token: SecretStr | None = Field(
        default=None, description="A personal access token (read-only), when no GitHub App is configured."
    )
    org_allowlist: list[str] = Field(
        default_factory=list, description="Organisations the server may reach (empty: any the credentials reach)."
    )
    # The GitHub App and the token secrets (docs/github-app.md).
    app_id: str | None = Field(default=None, description="GitHub App id; with private_key_secret turns the App on.")
    private_key_secret: str | None = Field(
        default=None, description="Secret (see `secrets`) holding the App's PEM private key."
    )
    installation_ids: dict[str, int] = Field(
        default_factory=dict,
        description="Installation id per organisation (JSON object); others: GET /orgs/{org}/installation.",
    )
    pat_secret: str | None = Field(
        default=None,
        description=(
            "Secret holding one personal access token for organisations the App does not cover. Unset (and no "
            "`token`): per-organisation secrets, secrets.name_template then secrets.default_name."
        ),
    )
    web_url: str | None = Field(
        default=None,
        description="Where git clones from (https://github.com, https://HOST). Default: derived from api_url.",
    )
    webhook_secret_name: str | None = Field(
        default=None, description="Secret holding the webhook HMAC secret; setting it enables POST /webhooks/github."
    )
    webhook_sync_delay_seconds: float = Field(
        default=2.0, ge=0, description="Pushes arriving within this window after a webhook are fetched together."
    )
    token_refresh_seconds: float = Field(
        default=900,
        gt=0,
        lt=3000,
        description=(
            "Refresh an installation token (1 h) when less than this is left; above the 600 s expiry alarm, so the "
            "alarm means refreshes have been failing."
        ),
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0, description="Upper bound for one API request.")
    max_retry_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Longest wait honoured for a secondary rate limit (403/429 with retry-after) before one retry; a "
            "longer wait answers 'unavailable' with the time to retry instead."
        ),
    )
    refs_cache_seconds: float = Field(
        default=15.0,
        ge=0,
        description=(
            "How long branch/tag lists and repository metadata are reused before they are revalidated (an ETag "
            "revalidation answered 304 costs no rate limit)."
        ),
    )
    cache_bytes: int = Field(
        default=67_108_864, gt=0, description="Memory for cached file contents (by blob SHA) in the github backend."
    )


class SecretsSettings(BaseModel):
    """Where secrets (GitHub App key, tokens, webhook secret) come from, and how long they are cached."""

    provider: Literal["env", "file", "aws"] = Field(
        default="env",
        description=(
            "env: a secret name is an environment variable (`mcp/github/acme` is read from MCP_GITHUB_ACME); "
            "file: a file under `directory` (or an absolute path); aws: AWS Secrets Manager (name or ARN)."
        ),
    )
    cache_seconds: float = Field(default=300, ge=0, description="How long a fetched secret is used before re-reading.")
    stale_grace_seconds: float = Field(
        default=3600,
        ge=0,
        description=(
            "While the store cannot be reached, keep using a cached secret this long past its cache time (or until "
            "the credential's own expiry, when the secret states one)."
        ),
    )
    name_template: str = Field(
        default="mcp/github/{org}", description="Per-organisation GitHub token secret; {org} is the organisation."
    )
    default_name: str = Field(
        default="mcp/github/default", description="Token secret for organisations without their own."
    )
    directory: Path | None = Field(default=None, description="File provider root. Default: <data_dir>/secrets.")
    region: str | None = Field(default=None, description="AWS region. Default: AWS_REGION / the SDK's default.")
    endpoint_url: str | None = Field(default=None, description="Another endpoint (tests: a local moto_server).")


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, description="One JSON object per line (for CloudWatch / Loki).")


class MetricsSettings(BaseModel):
    """Prometheus `/metrics` and CloudWatch Embedded Metric Format (docs/observability.md)."""

    enabled: bool = Field(default=True, description="Serve Prometheus metrics at /metrics.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "Serve /metrics on this port only (on `host`), not on the main port. None: on the main port, where it "
            "needs `token` unless the caller is on loopback."
        ),
    )
    token: SecretStr | None = Field(
        default=None, description="When set, /metrics requires `Authorization: Bearer <token>`."
    )
    emf: bool = Field(
        default=False,
        description="Also print the figures as CloudWatch Embedded Metric Format lines on stdout (Lambda, ECS).",
    )
    emf_namespace: str = Field(default="McpBastion", min_length=1, max_length=255, description="EMF namespace.")
    emf_interval_seconds: float = Field(
        default=60.0, ge=1, description="Aggregate this long, then print one EMF line per dimension combination."
    )


class TracingSettings(BaseModel):
    """OpenTelemetry traces (needs the `otel` extra: pip install 'mcp-bastion[otel]')."""

    enabled: bool = Field(default=False, description="Record spans for each HTTP request and tool call.")
    exporter: Literal["otlp", "console"] = Field(
        default="otlp", description="otlp: OTLP over HTTP (OTEL_EXPORTER_OTLP_* variables apply); console: stdout."
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces. Default: the OTEL_* variables.",
    )
    service_name: str = Field(default="mcp-bastion", description="The service.name resource attribute.")
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="Share of new traces recorded; a caller's sampled flag is honoured."
    )


class Settings(BaseSettings):
    """Everything the server reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="BASTION_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(default=Path(".bastion"), description="Mirrors, state and audit databases live here.")
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None,
        description=(
            "The canonical URL clients use for the MCP endpoint (e.g. https://mcp.example.com/mcp). It is the "
            "OAuth resource identifier (RFC 8707) and appears in client configuration. Default: http://host:port/mcp."
        ),
    )
    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    state_url: str | None = Field(
        default=None,
        description="Shared database for many instances (postgresql+psycopg://user@host:5432/db). Default: SQLite.",
    )
    state_password: SecretStr | None = Field(default=None, description="Password for state_url (injected secret).")
    repos: RepoSettings = Field(default_factory=RepoSettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        # Written through __dict__ so the field does not count as "set": `serve --demo` picks its own data
        # directory only when the operator did not choose one.
        vars(self)["data_dir"] = self.data_dir.expanduser().resolve()
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ValueError(f"{self.data_dir} is a file, not a directory: point BASTION_DATA_DIR (--data-dir) at one")
        return self

    @property
    def state_db(self) -> Path:
        """Keys and the repository registry."""
        return self.data_dir / "state.db"

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / "mirrors"

    @property
    def worktrees_dir(self) -> Path:
        return self.data_dir / "worktrees"

    @property
    def policy_file(self) -> Path:
        return (self.policy.file or self.data_dir / "policy.yaml").expanduser().resolve()

    @property
    def audit_db(self) -> Path:
        return (self.audit.sqlite_path or self.data_dir / "audit.db").expanduser().resolve()

    @property
    def audit_spool_dir(self) -> Path:
        return (self.audit.spool_path or self.data_dir / "audit-spool").expanduser().resolve()

    @property
    def audit_jsonl(self) -> Path:
        return (self.audit.jsonl.path or self.data_dir / "audit.jsonl").expanduser().resolve()

    @property
    def resource_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104 - comparing, not binding
        if ":" in host and not host.startswith("["):  # an IPv6 address: a URL needs it in brackets (RFC 3986)
            host = f"[{host}]"
        return f"http://{host}:{self.port}/mcp"
