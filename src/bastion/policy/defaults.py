"""Built-in defaults: the secret-file deny list and the limits used when the policy file says nothing.

The deny list over-denies on purpose (`.env.example` is caught by `.env.*`): a template file that cannot be read
is an annoyance, a credential handed to a model is an incident. A policy replaces the list with
`defaults.deny_paths` or adds to it with `defaults.extra_deny_paths`.
"""

from __future__ import annotations

from typing import Final

from bastion.policy.types import RedactionMode

__all__ = ["DEFAULT_DENY_PATHS", "DEFAULT_MAX_FILE_SIZE", "DEFAULT_REDACTION"]

# Patterns without a `/` match a file or directory of that name at any depth; `**/a/b` matches `a/b` at any
# depth. Deny matching ignores case (`.ENV` is still an env file).
DEFAULT_DENY_PATHS: Final[tuple[str, ...]] = (
    ".env",  # dotenv files: database URLs, API keys, cloud credentials for local runs
    ".env.*",  # .env.production, .env.local ... (also .env.example: over-deny on purpose)
    "*.pem",  # PEM private keys and certificate bundles with keys
    "*.key",  # private keys (TLS, signing keys)
    "id_rsa",  # SSH private keys by their default names
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "*.ppk",  # PuTTY private keys
    "*.p12",  # PKCS#12 bundles: certificate plus private key
    "*.pfx",  # the same under its Windows name
    "*.jks",  # Java keystores
    "*.keystore",  # Java/Android keystores (signing keys)
    ".npmrc",  # npm registry tokens (_authToken)
    ".pypirc",  # PyPI upload passwords/tokens
    ".netrc",  # machine/login/password triples used by curl, git, ftp
    ".git-credentials",  # git's credential-store file: URLs with tokens in clear
    ".pgpass",  # PostgreSQL passwords
    "**/.aws/credentials",  # AWS access keys; `**/` so it matches at any depth, not only at the root
    "*.tfstate",  # Terraform state holds every secret the configuration touched, in clear
    "*.tfstate.*",  # tfstate backups (terraform.tfstate.backup)
    ".htpasswd",  # web server password hashes (crackable offline)
    "*.kdbx",  # KeePass databases
    "credentials.json",  # Google service-account / OAuth client secrets by their usual name
    "**/.docker/config.json",  # registry auth tokens; `**/` for any depth
)

# 1 MiB: large enough for nearly every source file, small enough that one call cannot ship a data dump.
DEFAULT_MAX_FILE_SIZE: Final[int] = 1024 * 1024

DEFAULT_REDACTION: Final[RedactionMode] = "mask"
