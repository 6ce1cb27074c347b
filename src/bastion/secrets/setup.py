"""Building the configured secrets provider and its cache from Settings."""

from __future__ import annotations

from bastion.config import SecretsSettings, Settings
from bastion.secrets.base import SecretsProvider
from bastion.secrets.cache import SecretsCache

__all__ = ["build_secrets", "build_secrets_provider", "org_secret_names"]


def build_secrets_provider(settings: Settings) -> SecretsProvider:
    config = settings.secrets
    if config.provider == "aws":
        from bastion.secrets.aws import AwsSecretsProvider

        return AwsSecretsProvider(config.region, config.endpoint_url)
    if config.provider == "file":
        from bastion.secrets.file import FileSecretsProvider

        return FileSecretsProvider((config.directory or settings.data_dir / "secrets").expanduser().resolve())
    from bastion.secrets.env import EnvSecretsProvider

    return EnvSecretsProvider()


def build_secrets(settings: Settings) -> SecretsCache:
    """The process's one secrets cache (share it: every holder of a separate cache reads the store again)."""
    config = settings.secrets
    return SecretsCache(
        build_secrets_provider(settings), ttl=config.cache_seconds, stale_grace=config.stale_grace_seconds
    )


def org_secret_names(config: SecretsSettings, org: str) -> list[str]:
    """Seed 000's scheme: `mcp/github/{org}` for the organisation (lower-cased: GitHub names are
    case-insensitive, secret names are not), then `mcp/github/default`."""
    return [config.name_template.replace("{org}", org.lower()), config.default_name]
