"""Git over HTTPS with GitHub tokens, without the token in any argument list, config file or log.

For a remote on the GitHub host (`github.web_url`), `for_url` gets the organisation's token and returns what one
git command needs: `-c credential.helper=` (dropping any helper the repository or machine configured, so no
`store` helper ever receives the token) then `-c credential.helper=!<python> -I <git_credential_helper.py>`, and
an environment carrying the token for that process only. The argument list names the helper, never the token;
`/proc/<pid>/cmdline` is world-readable, while `/proc/<pid>/environ` is readable only by the same user (who could
read this server's memory anyway) and root. Nothing is written: the mirror's config keeps the plain URL.

`run(url, attempt)` retries once with a new token when git reports an authentication failure (GitHub answered
401 with the token): the credentials drop it and mint or read a new one.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from bastion.errors import Unavailable
from bastion.github.credentials import GitHubCredentials, NoCredentials
from bastion.github.hosts import owner_of_url

__all__ = ["HELPER_SCRIPT", "GitAuth", "GitRemoteAuth", "helper_config", "is_auth_failure"]

log = logging.getLogger(__name__)

T = TypeVar("T")

HELPER_SCRIPT = Path(__file__).with_name("git_credential_helper.py")
_GIT_USERNAME = "x-access-token"  # GitHub's user name for installation tokens; any name works with a PAT
_AUTH_FAILURES = ("Authentication failed", "returned error: 401")


def helper_config() -> tuple[str, ...]:
    """`-c` values: reset the helper list, then ours (git runs `!` helpers through the shell, hence the quoting)."""
    command = f"!{shlex.quote(sys.executable)} -I {shlex.quote(str(HELPER_SCRIPT))}"
    return ("credential.helper=", f"credential.helper={command}", "credential.useHttpPath=false")


def is_auth_failure(message: str) -> bool:
    """git's words for "the server rejected the credential" (a 401 after the helper answered)."""
    return any(marker in message for marker in _AUTH_FAILURES)


@dataclass(frozen=True, slots=True)
class GitAuth:
    """`config` and `env` for one git command against a GitHub remote of `owner`. The repr leaves `env` out."""

    owner: str
    config: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)


class GitRemoteAuth:
    """Credentials for git remotes on one GitHub host (`web_url`, e.g. https://github.com)."""

    def __init__(self, credentials: GitHubCredentials, web_url: str) -> None:
        self.credentials = credentials
        parts = urlsplit(web_url)
        self.web_url = f"{parts.scheme}://{parts.netloc}".lower()
        self._protocol = parts.scheme.lower()
        self._host = parts.netloc.lower()

    def owner_of(self, url: str) -> str | None:
        return owner_of_url(url, self.web_url)

    async def for_url(self, url: str) -> GitAuth | None:
        """What git needs to fetch `url`, or None when it is not a GitHub remote or nothing is configured for its
        organisation (git then tries anonymously: public repositories still work). Raises Unavailable when
        credentials exist but cannot be obtained now."""
        owner = self.owner_of(url)
        if owner is None:
            return None
        try:
            token = await self.credentials.token_for(owner)
        except NoCredentials as exc:
            log.debug("no GitHub credentials for %s, fetching anonymously: %s", owner, exc.message)
            return None
        env = {
            "BASTION_GIT_TOKEN": token.value.get_secret_value(),
            "BASTION_GIT_USERNAME": _GIT_USERNAME,
            "BASTION_GIT_PROTOCOL": self._protocol,
            "BASTION_GIT_HOST": self._host,
        }
        return GitAuth(owner, helper_config(), env)

    async def run(self, url: str, attempt: Callable[[GitAuth | None], Awaitable[T]]) -> T:
        """`attempt(auth)`, and once more with a fresh token if git says the token was rejected."""
        auth = await self.for_url(url)
        try:
            return await attempt(auth)
        except Unavailable as exc:
            if auth is None or not is_auth_failure(exc.message):
                raise
            log.warning("GitHub rejected the token of %s for git; getting a new one and retrying once", auth.owner)
            self.credentials.invalidate(auth.owner)
        return await attempt(await self.for_url(url))
