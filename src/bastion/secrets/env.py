"""Secrets from environment variables (the default: what ECS and Lambda inject, and what a developer exports)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from bastion.secrets.base import Secret, SecretNotFound

__all__ = ["EnvSecretsProvider", "env_var_name"]

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_]")


def env_var_name(name: str) -> str:
    """A secret name as an environment variable: kept when it already is one (`GITHUB_TOKEN`), else upper-cased
    with every other character as `_`, so the per-organisation name `mcp/github/acme` reads MCP_GITHUB_ACME."""
    if _VARIABLE.match(name):
        return name
    variable = _NOT_ALLOWED.sub("_", name).upper()
    return variable if not variable[:1].isdigit() else f"_{variable}"


class EnvSecretsProvider:
    """Reads secrets from the process environment (or from `environ`, for tests)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def describe(self) -> str:
        return "environment variables"

    async def fetch(self, name: str) -> Secret:
        variable = env_var_name(name)
        value = self._environ.get(variable)
        if value is None or not value.strip():
            raise SecretNotFound(f"secret {name!r}: environment variable {variable} is not set")
        return Secret.from_text(name, value.strip())
