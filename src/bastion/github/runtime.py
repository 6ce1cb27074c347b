"""The GitHub side of a running server, built once from Settings: the secrets cache, the credentials (App
installation tokens, PATs), git's use of them for mirror syncs, the start-up mirroring of
`BASTION_REPOS__BOOTSTRAP`, and `POST /webhooks/github` with its debounced syncs. `bastion.app` mounts `routes`,
adds `readiness()` to /ready and calls `start()` / `aclose()` from its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.routing import BaseRoute, Route

from bastion.config import Settings
from bastion.github.app_credentials import GitHubAppCredentials
from bastion.github.git_auth import GitRemoteAuth
from bastion.github.hosts import git_web_url
from bastion.github.push_sync import PushSync
from bastion.github.setup import build_github_credentials
from bastion.github.webhooks import WebhookReceiver
from bastion.repos.bootstrap import Bootstrap, bootstrap_entries
from bastion.repos.registry import Registry
from bastion.repos.sync import sync_repository
from bastion.secrets import SecretsCache, build_secrets
from bastion.transport.health import ReadinessCheck

__all__ = ["WEBHOOK_PATH", "GitHubRuntime"]

log = logging.getLogger(__name__)

_RENEW_CHECK_SECONDS = 60.0  # tokens are renewed at most this late after they become due

WEBHOOK_PATH = "/webhooks/github"


class GitHubRuntime:
    """Long-lived GitHub parts. With the github repository backend only the credentials matter (no mirrors)."""

    def __init__(self, settings: Settings, *, secrets: SecretsCache | None = None) -> None:
        self.settings = settings
        self.secrets = secrets or build_secrets(settings)
        self.credentials: GitHubAppCredentials = build_github_credentials(settings, self.secrets)
        mirrors = settings.repos.backend == "mirror"
        self.git_auth = GitRemoteAuth(self.credentials, git_web_url(settings.github)) if mirrors else None
        entries = bootstrap_entries(settings) if mirrors else []
        self.bootstrap = Bootstrap(settings, entries, auth=self.git_auth) if entries else None
        self.push_sync: PushSync | None = None
        if mirrors and settings.github.webhook_secret_name:
            self.push_sync = PushSync(self._sync_one, delay=settings.github.webhook_sync_delay_seconds)
        self._tasks: list[asyncio.Task[None]] = []

    async def _sync_one(self, name: str) -> None:
        await sync_repository(self.settings, name, auth=self.git_auth)

    @property
    def routes(self) -> list[BaseRoute]:
        """`POST /webhooks/github` when a webhook secret is configured (signature-checked, no bearer token)."""
        if self.push_sync is None or self.settings.github.webhook_secret_name is None:
            return []
        receiver = WebhookReceiver(
            secrets=self.secrets,
            secret_name=self.settings.github.webhook_secret_name,
            registry=Registry(self.settings.data_dir),
            on_push=self.push_sync.request,
        )
        return [Route(WEBHOOK_PATH, receiver.endpoint, methods=["POST"])]

    def readiness(self) -> list[ReadinessCheck]:
        bootstrap = self.bootstrap
        if bootstrap is None:
            return []

        async def mirrored_at_start() -> str | None:
            return bootstrap.problem()

        return [ReadinessCheck("bootstrap", mirrored_at_start)]

    def token_expiries(self) -> dict[str, float | None]:
        """{organisation: seconds until its token expires}: the source of UpstreamTokenSecondsToExpiry
        (`Metrics.add_token_expiry_source`); read from the scrape's thread, so only dictionary reads."""
        credentials = self.credentials
        return {org: credentials.seconds_to_expiry(org) for org in credentials.organizations()}

    def start(self) -> None:
        """From the lifespan: mirror the bootstrap list, and keep installation tokens renewed, in the background."""
        if self.bootstrap is not None:
            self._tasks.append(asyncio.create_task(self.bootstrap.run(), name="bootstrap mirrors"))
        if self.credentials.app_enabled:
            self._tasks.append(asyncio.create_task(self._renew_tokens(), name="github token renewal"))

    async def _renew_tokens(self) -> None:
        while True:
            await asyncio.sleep(_RENEW_CHECK_SECONDS)
            await self.credentials.refresh_due()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:
                    log.exception("background task %s failed", task.get_name())
        self._tasks.clear()
        if self.push_sync is not None:
            await self.push_sync.aclose()
