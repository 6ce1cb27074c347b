"""What one doctor check found: ok, fail (with a fix) or skip (with the reason)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bastion.errors import BastionError

__all__ = ["CLOCK_SKEW_LIMIT_SECONDS", "CheckResult", "Status", "error_text", "fail_result", "ok_result", "skip_result"]

Status = Literal["ok", "fail", "skip"]
CLOCK_SKEW_LIMIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str  # which check ("audit sink sqlite", "mirror acme/api")
    status: Status
    detail: str  # what was found
    fix: str | None = None  # what to do about it (failures)


def ok_result(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "ok", detail)


def fail_result(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, "fail", detail, fix)


def skip_result(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "skip", detail)


def error_text(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, BastionError) else str(exc) or type(exc).__name__
    return text.splitlines()[0][:300] if text else type(exc).__name__
