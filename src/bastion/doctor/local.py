"""Doctor checks of this host: settings, data directory, policy, state store, mirrors, git and ripgrep."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import stat
import subprocess
import tempfile
from datetime import UTC, datetime
from typing import Any

from bastion.config import Settings
from bastion.doctor.result import CheckResult, error_text, fail_result, ok_result, skip_result
from bastion.errors import BastionError, ConfigError, Unavailable

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
        results.append(fail_result("settings", error_text(exc), "correct the BASTION_* variable the message names"))
    else:
        results.append(
            ok_result("settings", f"parsed; data dir {settings.data_dir}, public URL {settings.resource_url}")
        )
    if settings.tracing.enabled and importlib.util.find_spec("opentelemetry.sdk") is None:
        results.append(
            fail_result(
                "tracing", "tracing is on but the OpenTelemetry SDK is not installed", "pip install 'mcp-bastion[otel]'"
            )
        )
    results.append(_check_metrics_exposure(settings))
    return results


def _check_metrics_exposure(settings: Settings) -> CheckResult:
    metrics = settings.metrics
    if not metrics.enabled:
        return skip_result("metrics", "/metrics is off")
    where = f"on port {metrics.port}" if metrics.port else "on the main port"
    if metrics.token is not None:
        access = "bearer token required"
    elif metrics.port is None:
        access = "loopback callers only (set BASTION_METRICS__TOKEN or __PORT for a remote Prometheus)"
    else:
        access = "open on that port"
    return ok_result("metrics", f"/metrics {where}, {access}; EMF {'on' if metrics.emf else 'off'}")


# -- data directory -------------------------------------------------------------------------------------------------


def check_data_dir(settings: Settings, timeout: float) -> list[CheckResult]:
    path = settings.data_dir
    name = "data directory"
    if not path.is_dir():
        return [
            fail_result(name, f"{path} does not exist", f"create it: mkdir -m 700 -p {path} (or set BASTION_DATA_DIR)")
        ]
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return [fail_result(name, f"{path} is not writable: {exc.strerror}", "chown it to the user that runs bastion")]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return [fail_result(name, f"{path} is open to other users (mode {mode:04o})", f"chmod 700 {path}")]
    results = [ok_result(name, f"{path} writable, mode {mode:04o}")]
    state = settings.state_db
    if state.exists() and stat.S_IMODE(state.stat().st_mode) & 0o077:
        state_mode = stat.S_IMODE(state.stat().st_mode)
        results.append(
            fail_result("state file", f"{state} is open to other users (mode {state_mode:04o})", f"chmod 600 {state}")
        )
    return results


# -- policy ---------------------------------------------------------------------------------------------------------


def check_policy(settings: Settings, timeout: float) -> list[CheckResult]:
    """The policy the server would load (the file, or `policy.url`'s parameter or object) loads, with its lint."""
    from bastion.policy.lint import lint_policy
    from bastion.policy.remote import read_configured_policy
    from bastion.repos.registry import Registry

    if not settings.policy.url and not settings.policy_file.exists():
        return [
            fail_result(
                "policy",
                f"{settings.policy_file} does not exist",
                "write a policy (docs/policy.md) or set BASTION_POLICY__FILE",
            )
        ]
    try:
        text, source = read_configured_policy(settings)
    except Unavailable as exc:
        return [fail_result("policy", exc.message, _REMOTE_POLICY_FIX)]
    except ConfigError as exc:
        return [fail_result("policy", exc.message, "fix BASTION_POLICY__URL or the policy file (docs/policy.md)")]
    try:
        known = [record.name for record in Registry(settings.data_dir).records()]
    except BastionError:
        known = None
    findings = lint_policy(text, known_repos=known, source=source)
    errors = [finding for finding in findings if finding.level == "error"]
    warnings = len(findings) - len(errors)
    if errors:
        first = errors[0]
        where = f"line {first.line}: " if first.line else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return [fail_result("policy", f"{source}: {where}{first.message}{more}", "fix it; see: bastion policy lint")]
    note = f"; {warnings} warning(s): bastion policy lint" if warnings else ""
    return [ok_result("policy", f"{source} loads{note}")]


_REMOTE_POLICY_FIX = (
    "check that the parameter or object exists and that this role may read it (ssm:GetParameter with kms:Decrypt "
    "for a SecureString, or s3:GetObject); AWS_REGION and credentials come from the environment"
)


# -- state store ----------------------------------------------------------------------------------------------------


def check_state_store(settings: Settings, timeout: float) -> list[CheckResult]:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from bastion.store.db import SCHEMA_HEAD, schema_revision

    results: list[CheckResult] = []
    path = settings.state_db
    if not path.exists():
        results.append(
            ok_result("state store", f"{path} not created yet (the server creates and migrates it at start)")
        )
    else:
        engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
        try:
            with engine.connect() as connection:
                revision = schema_revision(connection)
        except SQLAlchemyError as exc:
            results.append(
                fail_result("state store", f"{path}: {error_text(exc)}", "check the file; restore it from backup")
            )
        else:
            if revision == SCHEMA_HEAD:
                results.append(ok_result("state store", f"{path} at schema {revision}"))
            else:
                results.append(
                    fail_result(
                        "state store",
                        f"{path} at schema {revision!r}, this version needs {SCHEMA_HEAD!r}",
                        "run any `bastion keys list` (it migrates on open) or start the server once",
                    )
                )
        finally:
            engine.dispose()
    if settings.state_url:
        results.append(check_database("state database", settings.state_url, settings, timeout))
    return results


def check_database(check: str, url_text: str, settings: Settings, timeout: float) -> CheckResult:
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
        return fail_result(
            check, f"{shown}: {error_text(exc)}", "check the host, port, credentials and security groups"
        )
    finally:
        engine.dispose()
    return ok_result(check, f"{shown} reachable")


# -- repositories ---------------------------------------------------------------------------------------------------


def check_mirrors(settings: Settings, timeout: float) -> list[CheckResult]:
    from bastion.repos.registry import Registry, mirror_path

    if getattr(settings.repos, "backend", "mirror") != "mirror":
        return [skip_result("mirrors", "repos.backend is not 'mirror': repositories are read through the GitHub API")]
    try:
        records = Registry(settings.data_dir).records()
    except BastionError as exc:
        return [fail_result("mirrors", error_text(exc), "repair or remove repositories.json, then `bastion repo add`")]
    if not records:
        return [skip_result("mirrors", "no repositories registered (bastion repo add <url>)")]
    git = shutil.which("git")
    interval = settings.repos.sync_interval_seconds
    now = datetime.now(UTC)
    results: list[CheckResult] = []
    for record in records:
        check = f"mirror {record.name}"
        path = mirror_path(settings.data_dir, record.name)
        if not path.is_dir():
            results.append(fail_result(check, f"{path} is missing", f"bastion repo sync {record.name}"))
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
                    fail_result(
                        check, f"refs unreadable: {done.stderr.strip()[:200]}", f"bastion repo sync {record.name}"
                    )
                )
                continue
        age = (now - record.last_sync_at).total_seconds() if record.last_sync_at else None
        shown = f"last sync {_age(age)} ago" if age is not None else "never synced"
        if record.last_sync_error:
            results.append(
                fail_result(
                    check,
                    f"{shown}; last attempt failed: {record.last_sync_error[:200]}",
                    f"bastion repo sync {record.name}",
                )
            )
        elif interval > 0 and (age is None or age > 3 * interval):
            results.append(
                fail_result(
                    check, f"{shown}, the schedule is every {_age(interval)}", "check the server's log for sync errors"
                )
            )
        else:
            results.append(ok_result(check, shown))
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
            results.append(fail_result(name, "not found", fix))
            continue
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=timeout, check=False)
        version = done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else "version unknown"
        results.append(ok_result(name, f"{path}: {version}"))
    return results
