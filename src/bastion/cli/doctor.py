"""`bastion doctor`: check what a server needs (configuration, data directory, policy, state store, audit sinks,
mirrors, binaries, secrets, clock, rate-limit store, metrics exposure) and say what is wrong and how to fix it.

Read-only: it migrates nothing, creates nothing it did not find (except a probe file it removes again), and never
prints a secret. Every network check has a short timeout. Exit status 0 when every check passed or was skipped,
1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from bastion.cli.common import SETTINGS_ERROR_KEY, console, settings_from
from bastion.config import Settings
from bastion.errors import BastionError

__all__ = ["CheckResult", "register", "run_checks"]

Status = Literal["ok", "fail", "skip"]
CLOCK_SKEW_LIMIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str  # which check ("audit sink sqlite", "mirror acme/api")
    status: Status
    detail: str  # what was found
    fix: str | None = None  # what to do about it (failures)


def _ok(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "ok", detail)


def _fail(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, "fail", detail, fix)


def _skip(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "skip", detail)


def _error_text(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, BastionError) else str(exc) or type(exc).__name__
    return text.splitlines()[0][:300] if text else type(exc).__name__


# -- configuration --------------------------------------------------------------------------------------------------


def check_settings(settings: Settings, timeout: float) -> list[CheckResult]:
    """What create_app validates before it starts anything, without starting anything."""
    from bastion.ratelimit import RateLimitRules
    from bastion.server import TOOL_NAMES
    from bastion.transport.network import IpAllowlist

    results: list[CheckResult] = []
    try:
        IpAllowlist.parse(settings.server.ip_allowlist)
        if settings.rate_limit.enabled:
            RateLimitRules(settings.rate_limit, TOOL_NAMES)
    except BastionError as exc:
        results.append(_fail("settings", _error_text(exc), "correct the BASTION_* variable the message names"))
    else:
        results.append(_ok("settings", f"parsed; data dir {settings.data_dir}, serving {settings.resource_url}"))
    if settings.tracing.enabled and importlib.util.find_spec("opentelemetry.sdk") is None:
        results.append(
            _fail(
                "tracing", "tracing is on but the OpenTelemetry SDK is not installed", "pip install 'mcp-bastion[otel]'"
            )
        )
    results.append(_check_metrics_exposure(settings))
    return results


def _check_metrics_exposure(settings: Settings) -> CheckResult:
    metrics = settings.metrics
    if not metrics.enabled:
        return _skip("metrics", "/metrics is off")
    where = f"on port {metrics.port}" if metrics.port else "on the main port"
    if metrics.token is not None:
        access = "bearer token required"
    elif metrics.port is None:
        access = "loopback callers only (set BASTION_METRICS__TOKEN or __PORT for a remote Prometheus)"
    else:
        access = "open on that port"
    return _ok("metrics", f"/metrics {where}, {access}; EMF {'on' if metrics.emf else 'off'}")


# -- data directory -------------------------------------------------------------------------------------------------


def check_data_dir(settings: Settings, timeout: float) -> list[CheckResult]:
    path = settings.data_dir
    name = "data directory"
    if not path.is_dir():
        return [_fail(name, f"{path} does not exist", f"create it: mkdir -m 700 -p {path} (or set BASTION_DATA_DIR)")]
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return [_fail(name, f"{path} is not writable: {exc.strerror}", "chown it to the user that runs bastion")]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return [_fail(name, f"{path} is open to other users (mode {mode:04o})", f"chmod 700 {path}")]
    results = [_ok(name, f"{path} writable, mode {mode:04o}")]
    state = settings.state_db
    if state.exists() and stat.S_IMODE(state.stat().st_mode) & 0o077:
        state_mode = stat.S_IMODE(state.stat().st_mode)
        results.append(
            _fail("state file", f"{state} is open to other users (mode {state_mode:04o})", f"chmod 600 {state}")
        )
    return results


# -- policy ---------------------------------------------------------------------------------------------------------


def check_policy(settings: Settings, timeout: float) -> list[CheckResult]:
    from bastion.policy.lint import lint_policy
    from bastion.repos.registry import Registry

    url = getattr(settings.policy, "url", None)
    if url:
        return [_skip("policy", f"read from {url} at start (not fetched by doctor)")]
    path = settings.policy_file
    if not path.exists():
        return [
            _fail("policy", f"{path} does not exist", "write a policy (docs/policy.md) or set BASTION_POLICY__FILE")
        ]
    try:
        known = [record.name for record in Registry(settings.data_dir).records()]
    except BastionError:
        known = None
    findings = lint_policy(path, known_repos=known)
    errors = [finding for finding in findings if finding.level == "error"]
    warnings = len(findings) - len(errors)
    if errors:
        first = errors[0]
        where = f"line {first.line}: " if first.line else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return [_fail("policy", f"{path}: {where}{first.message}{more}", f"fix it; see: bastion policy lint {path}")]
    note = f"; {warnings} warning(s): bastion policy lint" if warnings else ""
    return [_ok("policy", f"{path} loads{note}")]


# -- state store ----------------------------------------------------------------------------------------------------


def check_state_store(settings: Settings, timeout: float) -> list[CheckResult]:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from bastion.store.db import SCHEMA_HEAD, schema_revision

    results: list[CheckResult] = []
    path = settings.state_db
    if not path.exists():
        results.append(_ok("state store", f"{path} not created yet (the server creates and migrates it at start)"))
    else:
        engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
        try:
            with engine.connect() as connection:
                revision = schema_revision(connection)
        except SQLAlchemyError as exc:
            results.append(
                _fail("state store", f"{path}: {_error_text(exc)}", "check the file; restore it from backup")
            )
        else:
            if revision == SCHEMA_HEAD:
                results.append(_ok("state store", f"{path} at schema {revision}"))
            else:
                results.append(
                    _fail(
                        "state store",
                        f"{path} at schema {revision!r}, this version needs {SCHEMA_HEAD!r}",
                        "run any `bastion keys list` (it migrates on open) or start the server once",
                    )
                )
        finally:
            engine.dispose()
    if settings.state_url:
        results.append(_check_database("state database", settings.state_url, settings, timeout))
    return results


def _check_database(check: str, url_text: str, settings: Settings, timeout: float) -> CheckResult:
    import sqlalchemy as sa

    url = sa.make_url(url_text)
    if url.password is None and settings.state_password is not None:
        url = url.set(password=settings.state_password.get_secret_value())
    shown = url.render_as_string(hide_password=True)
    connect_args: dict[str, Any] = (
        {"connect_timeout": max(1, int(timeout))} if url.get_backend_name() == "postgresql" else {}
    )
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return _fail(check, f"{shown}: {_error_text(exc)}", "check the host, port, credentials and security groups")
    finally:
        engine.dispose()
    return _ok(check, f"{shown} reachable")


# -- audit ----------------------------------------------------------------------------------------------------------


def check_audit(settings: Settings, timeout: float) -> list[CheckResult]:
    from bastion.audit.setup import chain_key, postgresql_url

    results: list[CheckResult] = []
    spool = settings.audit_spool_dir
    existing = _nearest_existing(spool)
    if os.access(existing, os.W_OK):
        results.append(_ok("audit spool", f"{spool} writable"))
    else:
        results.append(_fail("audit spool", f"{existing} is not writable", "give the server's user write access"))
    try:
        key = chain_key(settings)
    except BastionError as exc:
        results.append(
            _fail("audit HMAC key", _error_text(exc), "provide the secret BASTION_AUDIT__HMAC_KEY_SECRET names")
        )
    else:
        results.append(_ok("audit HMAC key", "set" if key else "not set: plain SHA-256 chain"))
    for sink in dict.fromkeys(settings.audit.sinks):
        check = f"audit sink {sink}"
        try:
            if sink == "sqlite":
                results.append(_check_sqlite_audit(settings))
            elif sink == "jsonl":
                folder = _nearest_existing(settings.audit_jsonl.parent)
                results.append(
                    _ok(check, f"{settings.audit_jsonl} writable")
                    if os.access(folder, os.W_OK)
                    else _fail(check, f"{folder} is not writable", "give the server's user write access")
                )
            elif sink == "postgresql":
                results.append(_check_database(check, postgresql_url(settings), settings, timeout))
            else:
                results.append(_check_cloudwatch(settings, timeout))
        except BastionError as exc:
            results.append(_fail(check, _error_text(exc), "set what the message names"))
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
        return _ok("audit sink sqlite", f"{path} not created yet (the server creates it)")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return _fail("audit sink sqlite", f"{path}: {exc}", "check the file; `bastion audit verify --sink sqlite`")
    return _ok("audit sink sqlite", f"{path} readable")


def _check_cloudwatch(settings: Settings, timeout: float) -> CheckResult:
    import boto3
    from botocore.config import Config

    cloudwatch = settings.audit.cloudwatch
    check = "audit sink cloudwatch"
    if not cloudwatch.log_group:
        return _fail(check, "no log group configured", "set BASTION_AUDIT__CLOUDWATCH__LOG_GROUP")
    config = Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1, "mode": "standard"}
    )
    try:
        client = boto3.client(
            "logs", region_name=cloudwatch.region, endpoint_url=cloudwatch.endpoint_url, config=config
        )
        client.describe_log_streams(logGroupName=cloudwatch.log_group, limit=1)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return _fail(
                check,
                f"log group {cloudwatch.log_group} does not exist",
                "create it (the infrastructure stack does) or set BASTION_AUDIT__CLOUDWATCH__CREATE_LOG_GROUP=true",
            )
        return _fail(check, f"{cloudwatch.log_group}: {_error_text(exc)}", "check AWS credentials, region and IAM")
    return _ok(check, f"log group {cloudwatch.log_group} reachable")


# -- repositories ---------------------------------------------------------------------------------------------------


def check_mirrors(settings: Settings, timeout: float) -> list[CheckResult]:
    from bastion.repos.registry import Registry, mirror_path

    if getattr(settings.repos, "backend", "mirror") != "mirror":
        return [_skip("mirrors", "repos.backend is not 'mirror': repositories are read through the GitHub API")]
    try:
        records = Registry(settings.data_dir).records()
    except BastionError as exc:
        return [_fail("mirrors", _error_text(exc), "repair or remove repositories.json, then `bastion repo add`")]
    if not records:
        return [_skip("mirrors", "no repositories registered (bastion repo add <url>)")]
    git = shutil.which("git")
    interval = settings.repos.sync_interval_seconds
    now = datetime.now(UTC)
    results: list[CheckResult] = []
    for record in records:
        check = f"mirror {record.name}"
        path = mirror_path(settings.data_dir, record.name)
        if not path.is_dir():
            results.append(_fail(check, f"{path} is missing", f"bastion repo sync {record.name}"))
            continue
        if git is not None:
            done = subprocess.run(
                [git, "--git-dir", str(path), "for-each-ref", "--count=1", "--format=%(refname)"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                results.append(
                    _fail(check, f"refs unreadable: {done.stderr.strip()[:200]}", f"bastion repo sync {record.name}")
                )
                continue
        age = (now - record.last_sync_at).total_seconds() if record.last_sync_at else None
        shown = f"last sync {_age(age)} ago" if age is not None else "never synced"
        if record.last_sync_error:
            results.append(
                _fail(
                    check,
                    f"{shown}; last attempt failed: {record.last_sync_error[:200]}",
                    f"bastion repo sync {record.name}",
                )
            )
        elif interval > 0 and (age is None or age > 3 * interval):
            results.append(
                _fail(
                    check, f"{shown}, the schedule is every {_age(interval)}", "check the server's log for sync errors"
                )
            )
        else:
            results.append(_ok(check, shown))
    return results


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_binaries(settings: Settings, timeout: float) -> list[CheckResult]:
    from bastion.repos.search import ripgrep_executable

    results: list[CheckResult] = []
    for name, path, fix in (
        ("git", shutil.which("git"), "install git (apt-get install git)"),
        ("rg", ripgrep_executable(), "pip install mcp-bastion (the ripgrep wheel ships rg) or apt-get install ripgrep"),
    ):
        if path is None:
            results.append(_fail(name, "not found", fix))
            continue
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=timeout, check=False)
        version = done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else "version unknown"
        results.append(_ok(name, f"{path}: {version}"))
    return results


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
        return [_skip("secrets", "no secrets provider in this version")]
    try:
        setup: Any = importlib.import_module("bastion.secrets.setup")
    except ModuleNotFoundError:
        return [_skip("secrets", "no secrets provider in this version")]
    provider = setup.build_secrets_provider(settings)
    if not names:
        return [_skip("secrets", f"{provider.describe()}: no secret names configured")]

    async def fetch(name: str) -> CheckResult:
        try:
            await asyncio.wait_for(provider.fetch(name), timeout)
        except TimeoutError:
            return _fail(
                f"secret {name}", f"{provider.describe()} did not answer in {timeout:.0f} s", "check the network path"
            )
        except BastionError as exc:
            return _fail(f"secret {name}", _error_text(exc), f"create the secret {name} in {provider.describe()}")
        return _ok(f"secret {name}", f"readable from {provider.describe()}")

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
        return [_skip("clock", "no OIDC issuer or GitHub App configured to compare with")]
    try:
        started = time.time()
        response = httpx2.get(url, timeout=timeout, follow_redirects=False)
        local = (started + time.time()) / 2
    except Exception as exc:
        return [_fail("clock", f"{url}: {_error_text(exc)}", "check the network path to it")]
    date = response.headers.get("date")
    if not date:
        return [_skip("clock", f"{url} sent no Date header")]
    remote = parsedate_to_datetime(date).timestamp()
    skew = local - remote
    # The Date header has whole seconds: anything under ~1 s is noise.
    if abs(skew) > CLOCK_SKEW_LIMIT_SECONDS:
        return [
            _fail(
                "clock",
                f"{skew:+.0f} s against {url}",
                "run time synchronisation (chrony / systemd-timesyncd); token expiry checks allow 60 s",
            )
        ]
    return [_ok("clock", f"{skew:+.1f} s against {url}")]


def check_rate_limit_store(settings: Settings, timeout: float) -> list[CheckResult]:
    rate_limit = settings.rate_limit
    if not rate_limit.enabled:
        return [_skip("rate-limit store", "rate limits are off")]
    url = rate_limit.storage_url
    if url.startswith("memory://"):
        return [_ok("rate-limit store", "in memory (one instance)")]
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
            _fail("rate-limit store", f"{redacted_url(url)}: {_error_text(exc)}", "check the Redis endpoint and TLS")
        ]
    return [_ok("rate-limit store", f"{redacted_url(url)} answers")]


CHECKS: tuple[Callable[[Settings, float], list[CheckResult]], ...] = (
    check_settings,
    check_data_dir,
    check_policy,
    check_state_store,
    check_audit,
    check_mirrors,
    check_binaries,
    check_secrets,
    check_clock,
    check_rate_limit_store,
)


def run_checks(settings: Settings, timeout: float = 5.0) -> list[CheckResult]:
    results: list[CheckResult] = []
    for check in CHECKS:
        try:
            results.extend(check(settings, timeout))
        except Exception as exc:  # a check that breaks is itself a finding, never a traceback
            name = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(_fail(name, f"the check itself failed: {_error_text(exc)}", "report this with the output"))
    return results


_LABELS = {"ok": "[green]OK  [/]", "fail": "[bold red]FAIL[/]", "skip": "[dim]SKIP[/]"}


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.5, help="Seconds per network check.")] = 5.0,
) -> None:
    """Check configuration, data directory, policy, state store, audit sinks, mirrors, git/rg, secrets, clock and
    the rate-limit store; print what is wrong and how to fix it. Exit status 1 when anything failed."""
    settings_error = ctx.find_root().meta.get(SETTINGS_ERROR_KEY)
    if settings_error:
        results = [_fail("settings", settings_error, "fix the BASTION_* variables named above (docs/configuration.md)")]
    else:
        results = run_checks(settings_from(ctx), timeout)
    if as_json:
        for result in results:
            typer.echo(json.dumps(asdict(result)))
    else:
        width = max(len(result.check) for result in results)
        for result in results:
            label = _LABELS[result.status]
            console.print(f"{label}  {result.check:<{width}}  {result.detail}", highlight=False, soft_wrap=True)
            if result.fix:
                console.print(f"      {'':<{width}}  fix: {result.fix}", highlight=False, soft_wrap=True)
        failed = sum(result.status == "fail" for result in results)
        console.print(
            f"{failed} problem(s)" if failed else "everything checked is fine", highlight=False, soft_wrap=True
        )
    if any(result.status == "fail" for result in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
