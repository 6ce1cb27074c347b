"""Doctor checks of what the server talks to: audit sinks, secrets, the identity provider's clock, the
rate-limit store."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from bastion.aws.clients import aws_client
from bastion.config import Settings
from bastion.doctor.local import check_database
from bastion.doctor.result import CLOCK_SKEW_LIMIT_SECONDS, CheckResult, error_text, fail_result, ok_result, skip_result
from bastion.errors import BastionError

# -- audit ----------------------------------------------------------------------------------------------------------


def check_audit(settings: Settings, timeout: float) -> list[CheckResult]:
    from bastion.audit.setup import chain_key, postgresql_url

    results: list[CheckResult] = []
    spool = settings.audit_spool_dir
    existing = _nearest_existing(spool)
    if os.access(existing, os.W_OK):
        results.append(ok_result("audit spool", f"{spool} writable"))
    else:
        results.append(fail_result("audit spool", f"{existing} is not writable", "give the server's user write access"))
    try:
        key = chain_key(settings)
    except BastionError as exc:
        results.append(
            fail_result("audit HMAC key", error_text(exc), "provide the secret BASTION_AUDIT__HMAC_KEY_SECRET names")
        )
    else:
        results.append(ok_result("audit HMAC key", "set" if key else "not set: plain SHA-256 chain"))
    for sink in dict.fromkeys(settings.audit.sinks):
        check = f"audit sink {sink}"
        try:
            if sink == "sqlite":
                results.append(_check_sqlite_audit(settings))
            elif sink == "jsonl":
                folder = _nearest_existing(settings.audit_jsonl.parent)
                results.append(
                    ok_result(check, f"{settings.audit_jsonl} writable")
                    if os.access(folder, os.W_OK)
                    else fail_result(check, f"{folder} is not writable", "give the server's user write access")
                )
            elif sink == "postgresql":
                results.append(check_database(check, postgresql_url(settings), settings, timeout))
            else:
                results.append(_check_cloudwatch(settings, timeout))
        except BastionError as exc:
            results.append(fail_result(check, error_text(exc), "set what the message names"))
    return results


def _nearest_existing(path: Path) -> Path:
    """`path`, or the closest ancestor that exists (the server creates the rest)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_sqlite_audit(settings: Settings) -> CheckResult:
    import sqlite3

    path = settings.audit_db
    if not path.exists():
        return ok_result("audit sink sqlite", f"{path} not created yet (the server creates it)")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return fail_result(
            "audit sink sqlite", f"{path}: {exc}", "check the file; `bastion audit verify --sink sqlite`"
        )
    return ok_result("audit sink sqlite", f"{path} readable")


def _check_cloudwatch(settings: Settings, timeout: float) -> CheckResult:
    cloudwatch = settings.audit.cloudwatch
    check = "audit sink cloudwatch"
    if not cloudwatch.log_group:
        return fail_result(check, "no log group configured", "set BASTION_AUDIT__CLOUDWATCH__LOG_GROUP")
    try:
        client = aws_client(
            "logs",
            region=cloudwatch.region,
            endpoint_url=cloudwatch.endpoint_url,
            attempts=1,
            connect_timeout=timeout,
            read_timeout=timeout,
        )
        client.describe_log_streams(logGroupName=cloudwatch.log_group, limit=1)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return fail_result(
                check,
                f"log group {cloudwatch.log_group} does not exist",
                "create it (the infrastructure stack does) or set BASTION_AUDIT__CLOUDWATCH__CREATE_LOG_GROUP=true",
            )
        return fail_result(check, f"{cloudwatch.log_group}: {error_text(exc)}", "check AWS credentials, region and IAM")
    return ok_result(check, f"log group {cloudwatch.log_group} reachable")


# -- secrets, clock, rate limits ------------------------------------------------------------------------------------


def check_secrets(settings: Settings, timeout: float) -> list[CheckResult]:
    """Each configured secret name can be read (its value is never shown)."""
    secrets_settings = getattr(settings, "secrets", None)
    github = getattr(settings, "github", None)
    names = [
        name
        for name in (
            getattr(github, "private_key_secret", None),
            getattr(github, "pat_secret", None),
            getattr(github, "webhook_secret_name", None),
        )
        if name
    ]
    if secrets_settings is None:
        return [skip_result("secrets", "no secrets provider in this version")]
    try:
        setup: Any = importlib.import_module("bastion.secrets.setup")
    except ModuleNotFoundError:
        return [skip_result("secrets", "no secrets provider in this version")]
    provider = setup.build_secrets_provider(settings)
    if not names:
        return [skip_result("secrets", f"{provider.describe()}: no secret names configured")]

    async def fetch(name: str) -> CheckResult:
        try:
            await asyncio.wait_for(provider.fetch(name), timeout)
        except TimeoutError:
            return fail_result(
                f"secret {name}", f"{provider.describe()} did not answer in {timeout:.0f} s", "check the network path"
            )
        except BastionError as exc:
            return fail_result(f"secret {name}", error_text(exc), f"create the secret {name} in {provider.describe()}")
        return ok_result(f"secret {name}", f"readable from {provider.describe()}")

    async def fetch_all() -> list[CheckResult]:
        return [await fetch(name) for name in names]

    return asyncio.run(fetch_all())


def check_clock(settings: Settings, timeout: float) -> list[CheckResult]:
    """Compare the local clock with the Date header of a configured server (token expiry and audit time order
    depend on it)."""
    import httpx2

    github = getattr(settings, "github", None)
    candidates = [
        settings.auth.oidc.issuer,
        getattr(github, "api_url", None) if getattr(github, "app_id", None) else None,
    ]
    url = next((candidate for candidate in candidates if candidate), None)
    if url is None:
        return [skip_result("clock", "no OIDC issuer or GitHub App configured to compare with")]
    try:
        started = time.time()
        response = httpx2.get(url, timeout=timeout, follow_redirects=False)
        local = (started + time.time()) / 2
    except Exception as exc:
        return [fail_result("clock", f"{url}: {error_text(exc)}", "check the network path to it")]
    date = response.headers.get("date")
    if not date:
        return [skip_result("clock", f"{url} sent no Date header")]
    remote = parsedate_to_datetime(date).timestamp()
    skew = local - remote
    # The Date header has whole seconds: anything under ~1 s is noise.
    if abs(skew) > CLOCK_SKEW_LIMIT_SECONDS:
        return [
            fail_result(
                "clock",
                f"{skew:+.0f} s against {url}",
                "run time synchronisation (chrony / systemd-timesyncd); token expiry checks allow 60 s",
            )
        ]
    return [ok_result("clock", f"{skew:+.1f} s against {url}")]


def check_rate_limit_store(settings: Settings, timeout: float) -> list[CheckResult]:
    rate_limit = settings.rate_limit
    if not rate_limit.enabled:
        return [skip_result("rate-limit store", "rate limits are off")]
    url = rate_limit.storage_url
    if url.startswith("memory://"):
        return [ok_result("rate-limit store", "in memory (one instance)")]
    from bastion.ratelimit.limiter import redacted_url

    try:
        import redis

        client: Any = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return [
            fail_result(
                "rate-limit store", f"{redacted_url(url)}: {error_text(exc)}", "check the Redis endpoint and TLS"
            )
        ]
    return [ok_result("rate-limit store", f"{redacted_url(url)} answers")]
