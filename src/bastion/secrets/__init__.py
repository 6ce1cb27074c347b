"""Secrets: one interface over environment variables, files and AWS Secrets Manager, with a TTL cache on top.

Consumers (GitHub credentials, the webhook receiver) hold a `SecretsCache` and ask it by name; which store sits
behind it is a setting (`secrets.provider`). See docs/github-app.md.
"""

from bastion.secrets.base import Secret, SecretNotFound, SecretsProvider
from bastion.secrets.cache import KeyedLocks, SecretsCache
from bastion.secrets.setup import build_secrets, build_secrets_provider, org_secret_names

__all__ = [
    "KeyedLocks",
    "Secret",
    "SecretNotFound",
    "SecretsCache",
    "SecretsProvider",
    "build_secrets",
    "build_secrets_provider",
    "org_secret_names",
]
