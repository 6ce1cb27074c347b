"""`bastion doctor`'s checks: what a server needs (configuration, data directory, policy, state store, audit sinks,
mirrors, binaries, secrets, clock, rate-limit store, metrics exposure), what is wrong and how to fix it.

Read-only: nothing is migrated, nothing is created that was not found (except a probe file removed again), and no
secret is ever printed. Every network check has a short timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from bastion.config import Settings
from bastion.doctor.local import (
    check_binaries,
    check_data_dir,
    check_mirrors,
    check_policy,
    check_settings,
    check_state_store,
)
from bastion.doctor.result import CheckResult, error_text, fail_result
from bastion.doctor.services import check_audit, check_clock, check_rate_limit_store, check_secrets

__all__ = ["CHECKS", "CheckResult", "run_checks"]

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
            results.append(
                fail_result(name, f"the check itself failed: {error_text(exc)}", "report this with the output")
            )
    return results
