"""The built-in secret-file deny list covers what it promises, at any depth and in any case."""

from __future__ import annotations

import pytest

from bastion.policy.defaults import DEFAULT_DENY_PATHS, DEFAULT_MAX_FILE_SIZE, DEFAULT_REDACTION
from bastion.policy.globs import PathGlobSet, compile_path_glob

DENY = PathGlobSet([compile_path_glob(pattern) for pattern in DEFAULT_DENY_PATHS], case_sensitive=False)


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        (".env", ".env"),
        ("services/api/.env", ".env"),
        ("services/api/.ENV", ".env"),
        ("app/.env.production", ".env.*"),
        ("certs/server.pem", "*.pem"),
        ("tls/private.key", "*.key"),
        ("home/.ssh/id_rsa", "id_rsa"),
        ("id_dsa", "id_dsa"),
        ("keys/id_ecdsa", "id_ecdsa"),
        ("keys/id_ed25519", "id_ed25519"),
        ("win/putty.ppk", "*.ppk"),
        ("certs/client.p12", "*.p12"),
        ("certs/client.PFX", "*.pfx"),
        ("android/release.jks", "*.jks"),
        ("android/debug.keystore", "*.keystore"),
        ("frontend/.npmrc", ".npmrc"),
        (".pypirc", ".pypirc"),
        ("ci/.netrc", ".netrc"),
        (".git-credentials", ".git-credentials"),
        ("db/.pgpass", ".pgpass"),
        (".aws/credentials", "**/.aws/credentials"),
        ("ops/home/.aws/credentials", "**/.aws/credentials"),
        ("infra/terraform.tfstate", "*.tfstate"),
        ("infra/terraform.tfstate.backup", "*.tfstate.*"),
        ("web/.htpasswd", ".htpasswd"),
        ("team/passwords.kdbx", "*.kdbx"),
        ("gcp/credentials.json", "credentials.json"),
        ("ci/.docker/config.json", "**/.docker/config.json"),
    ],
)
def test_default_deny_list_covers(path: str, pattern: str) -> None:
    hit = DENY.first_match(path)
    assert hit is not None, path
    assert hit.pattern == pattern


@pytest.mark.parametrize(
    "path",
    ["src/main.py", "README.md", "docs/env.md", "config/settings.json", ".aws/config", "app/.envrc", "keys.py"],
)
def test_default_deny_list_leaves_ordinary_files_alone(path: str) -> None:
    assert DENY.first_match(path) is None


def test_default_limits() -> None:
    assert DEFAULT_MAX_FILE_SIZE == 1024 * 1024
    assert DEFAULT_REDACTION == "mask"
