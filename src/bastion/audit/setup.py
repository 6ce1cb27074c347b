"""Building the audit pipeline and its sinks from Settings (the server) and opening one sink (the CLI)."""

from __future__ import annotations

import os
from pathlib import Path

from bastion.audit.pipeline import AuditLog
from bastion.audit.sink import QueryableSink
from bastion.audit.spool import Spool
from bastion.config import Settings
from bastion.errors import BastionError, ConfigError

__all__ = ["SINK_NAMES", "build_audit_log", "chain_key", "open_sink", "postgresql_url"]

SINK_NAMES = ("sqlite", "jsonl", "postgresql", "cloudwatch")


def chain_key(settings: Settings) -> bytes | None:
    """The HMAC key for the hash chain, or None for plain SHA-256.

    `audit.hmac_key_secret` names the secret: `file:/path` reads a file; a Secrets Manager ARN
    (`arn:aws:secretsmanager:...`, what the AWS stacks set; read in the ARN's region) or `secretsmanager:<name>`
    (in `secrets.region`, else the SDK's default) reads that secret; anything else is an environment variable. The key
    is read once, at start-up (docs/audit.md); a store that cannot be read stops the start with the reason.
    """
    name = settings.audit.hmac_key_secret
    if not name:
        return None
    if name.startswith("file:"):
        path = Path(name.removeprefix("file:")).expanduser()
        try:
            value = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"audit.hmac_key_secret: cannot read {path}: {exc.strerror}") from exc
    elif _is_secrets_manager(name):
        value = _secrets_manager_key(settings, name)
    else:
        text = os.environ.get(name)
        if text is None:
            raise ConfigError(f"audit.hmac_key_secret names the environment variable {name}, which is not set")
        value = text.strip().encode("utf-8")
    if len(value) < 16:
        raise ConfigError("the audit HMAC key must be at least 16 bytes")
    return value


def _is_secrets_manager(name: str) -> bool:
    return name.startswith("secretsmanager:") or (name.startswith("arn:") and ":secretsmanager:" in name)


def _secrets_manager_key(settings: Settings, name: str) -> bytes:
    from bastion.secrets.aws import AwsSecretsProvider

    secret_id = name.removeprefix("secretsmanager:")
    parts = secret_id.split(":")
    arn_region = parts[3] if secret_id.startswith("arn:") and len(parts) > 3 and parts[3] else None
    provider = AwsSecretsProvider(arn_region or settings.secrets.region, settings.secrets.endpoint_url)
    try:
        secret = provider.read(secret_id)
    except BastionError as exc:  # SecretNotFound, Unavailable: both name the secret and the reason
        raise ConfigError(f"audit.hmac_key_secret: {exc.message}") from None
    return secret.value.get_secret_value().encode("utf-8")


def postgresql_url(settings: Settings) -> str:
    """`audit.postgresql_url`, else the shared state database (`state_url`), with `state_password` filled in."""
    import sqlalchemy as sa

    text = settings.audit.postgresql_url or settings.state_url
    if not text:
        raise ConfigError(
            "the postgresql audit sink needs a database: set BASTION_AUDIT__POSTGRESQL_URL or BASTION_STATE_URL"
        )
    url = sa.make_url(text)
    if url.get_backend_name() != "postgresql":
        raise ConfigError(f"the postgresql audit sink needs a postgresql+psycopg:// URL, got {url.drivername}://")
    if url.password is None and settings.state_password is not None:
        url = url.set(password=settings.state_password.get_secret_value())
    return url.render_as_string(hide_password=False)


def open_sink(settings: Settings, name: str) -> QueryableSink:
    """One sink by name, configured from `settings` (every sink is queryable)."""
    if name == "sqlite":
        from bastion.audit.sqlite import SqliteAuditSink

        return SqliteAuditSink(settings.audit_db)
    if name == "jsonl":
        from bastion.audit.jsonl import JsonlAuditSink

        jsonl = settings.audit.jsonl
        return JsonlAuditSink(settings.audit_jsonl, max_bytes=jsonl.max_bytes, keep=jsonl.keep)
    if name == "postgresql":
        from bastion.audit.postgres import PostgresAuditSink

        return PostgresAuditSink(postgresql_url(settings))
    if name == "cloudwatch":
        from bastion.audit.cloudwatch import CloudWatchAuditSink

        cloudwatch = settings.audit.cloudwatch
        if not cloudwatch.log_group:
            raise ConfigError("the cloudwatch audit sink needs BASTION_AUDIT__CLOUDWATCH__LOG_GROUP")
        return CloudWatchAuditSink(
            cloudwatch.log_group,
            stream_prefix=cloudwatch.log_stream_prefix,
            region=cloudwatch.region,
            endpoint_url=cloudwatch.endpoint_url,
            create_log_group=cloudwatch.create_log_group,
        )
    raise ConfigError(f"unknown audit sink {name!r}: choose from {', '.join(SINK_NAMES)}")


def build_audit_log(settings: Settings) -> AuditLog:
    """The spool (claiming a free slot under the spool directory) and every configured sink."""
    audit = settings.audit
    key = chain_key(settings)
    sinks = [open_sink(settings, name) for name in dict.fromkeys(audit.sinks)]
    spool = Spool(
        settings.audit_spool_dir, key=key, fsync_ms=audit.spool_fsync_ms, retain_events=audit.spool_retain_events
    )
    return AuditLog(
        spool,
        sinks,
        batch_size=audit.batch_size,
        retry_max_seconds=audit.retry_max_seconds,
        wait_for_spool=audit.wait_for_spool,
    )
