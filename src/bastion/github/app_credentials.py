"""GitHubCredentials for a GitHub App: an installation token per organisation, PATs where the App is absent.

Per organisation: the installation id (configured, or GET /orgs/{org}/installation, then /users/{owner}/...),
then POST /app/installations/{id}/access_tokens with the App JWT. The token (one hour) is cached and replaced
when less than `refresh_margin` (15 min) is left, one refresh per organisation at a time; `refresh_due()` does
that in the background too, so an idle organisation's token is renewed before the expiry alarm (600 s). When a
refresh fails (GitHub or the secrets store down) a token that is still valid keeps being served until its own
expiry; GitHub is asked again every 30 s meanwhile. A 401 on the App JWT means the private key changed: its
secret is read again and the call retried once. `invalidate(org)` (GitHub rejected the token) drops the cached
token, or the PAT's secret. Where the App is not configured or not installed, the PAT source answers
(docs/github-app.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from bastion.errors import BastionError, ConfigError, InvalidInput, Unavailable
from bastion.github.api import ApiResponse, GitHubApi
from bastion.github.app_jwt import app_jwt, load_private_key
from bastion.github.credentials import GitHubToken, NoCredentials
from bastion.github.pat import PatSource
from bastion.secrets import KeyedLocks, SecretsCache

__all__ = ["GitHubAppCredentials", "Installation", "NoInstallation"]

log = logging.getLogger(__name__)

_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_MIN_USEFUL_SECONDS = 60.0  # a token closer to its expiry than this is not handed out, even during an outage
_RETRY_SECONDS = 30.0  # while refreshes fail, GitHub is asked again this often per organisation
_NO_INSTALLATION_SECONDS = 300.0  # "not installed" is remembered this long (the PAT answers meanwhile)


class NoInstallation(NoCredentials):
    """The App is not installed on this organisation (or user)."""


class _JwtRejected(Unavailable):
    """GitHub answered 401 to the App JWT: wrong or rotated private key, or a wrong App id."""


@dataclass(frozen=True, slots=True)
class Installation:
    id: int
    account: str


@dataclass(slots=True)
class _Cached:
    token: GitHubToken
    expires_at: float  # POSIX seconds
    installation_id: int
    retry_at: float = 0.0  # after a failed refresh: serve this token, do not ask GitHub before then


def _parse_time(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _pem(text: str) -> str:
    # A PEM squeezed onto one line for an environment variable (`\n` written literally) is still the key.
    return text.replace("\\n", "\n") if "\\n" in text and "\n" not in text.strip() else text


class GitHubAppCredentials:
    """Installation tokens (and PAT fallback) per organisation; implements `GitHubCredentials`."""

    def __init__(
        self,
        *,
        secrets: SecretsCache,
        api: GitHubApi,
        app_id: str | None = None,
        private_key_secret: str | None = None,
        pat: PatSource | None = None,
        installation_ids: Mapping[str, int] | None = None,
        org_allowlist: Sequence[str] = (),
        refresh_margin: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (app_id is None) != (private_key_secret is None):
            raise ConfigError(
                "a GitHub App needs both BASTION_GITHUB__APP_ID and BASTION_GITHUB__PRIVATE_KEY_SECRET (one is unset)"
            )
        self.app_id = app_id
        self.private_key_secret = private_key_secret
        self._secrets = secrets
        self._api = api
        self._pat = pat
        self._configured_ids = {org.lower(): number for org, number in (installation_ids or {}).items()}
        self._allowlist = frozenset(org.lower() for org in org_allowlist)
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._locks = KeyedLocks()
        self._tokens: dict[str, _Cached] = {}
        self._pat_tokens: dict[str, GitHubToken] = {}
        self._installation_ids: dict[str, int] = {}
        self._no_installation_until: dict[str, float] = {}
        self._key: tuple[str | None, rsa.RSAPrivateKey] | None = None  # (secret version, parsed key)
        self.mints = 0  # installation tokens obtained (tests, diagnostics)

    @property
    def app_enabled(self) -> bool:
        return self.app_id is not None

    # -- GitHubCredentials ---------------------------------------------------------------------------------------

    async def token_for(self, owner: str) -> GitHubToken:
        org = self._check_owner(owner)
        cached = self._tokens.get(org)
        if cached is not None and self._servable(cached):
            return cached.token
        async with self._locks(org):  # one refresh per organisation; the others wait for it
            cached = self._tokens.get(org)
            if cached is not None and self._servable(cached):
                return cached.token
            if not self.app_enabled:
                return await self._pat_token(org, None)
            try:
                minted = await self._mint(org)
            except NoInstallation as exc:
                return await self._pat_token(org, exc)
            except (Unavailable, ConfigError) as exc:
                return self._stale_or_raise(org, cached, exc)
            self._tokens[org] = minted
            self._pat_tokens.pop(org, None)
            return minted.token

    def invalidate(self, owner: str) -> None:
        org = owner.lower()
        if self._tokens.pop(org, None) is not None:
            log.info("GitHub rejected the installation token of %s; the next use mints a new one", org)
        if self._pat_tokens.pop(org, None) is not None and self._pat is not None:
            log.info("GitHub rejected the token of %s; its secret is read again at the next use", org)
            self._pat.invalidate(org)

    async def refresh_due(self) -> None:
        """Refresh every held installation token that is due, used or not (run every minute in the background,
        so a token is renewed on time and its expiry metric only drops when refreshing fails)."""
        for org in list(self._tokens):
            cached = self._tokens.get(org)
            if cached is None or self._servable(cached):
                continue
            try:
                await self.token_for(org)
            except BastionError as exc:
                log.warning("background refresh of the token of %s failed: %s", org, exc.message)

    # -- for metrics and diagnostics ------------------------------------------------------------------------------

    def seconds_to_expiry(self, owner: str) -> float | None:
        """Seconds until the token handed out for `owner` expires (None: no token yet, or one that never
        expires). Exported as UpstreamTokenSecondsToExpiry{Organization}."""
        org = owner.lower()
        cached = self._tokens.get(org)
        if cached is not None:
            return cached.expires_at - self._clock()
        pat = self._pat_tokens.get(org)
        if pat is not None and pat.expires_at is not None:
            return pat.expires_at.timestamp() - self._clock()
        return None

    def organizations(self) -> list[str]:
        """Organisations a token has been handed out for."""
        return sorted({*self._tokens, *self._pat_tokens})

    async def installations(self) -> list[Installation]:
        """Every installation of the App (GET /app/installations, first 100): for `doctor`-style checks."""
        response = await self._app_request("GET", "/app/installations?per_page=100")
        if response.status != 200 or not isinstance(response.body, list):
            raise Unavailable(f"GitHub did not list the App's installations: {response.message()}")
        found: list[Installation] = []
        for item in response.body:
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                account = item.get("account")
                login = account.get("login") if isinstance(account, dict) else None
                found.append(Installation(item["id"], str(login or "")))
        return found

    # -- internals -----------------------------------------------------------------------------------------------

    def _check_owner(self, owner: str) -> str:
        if not _OWNER.match(owner):
            raise InvalidInput(f"{owner!r} is not a GitHub organisation or user name")
        org = owner.lower()
        if self._allowlist and org not in self._allowlist:
            raise Unavailable(
                f"no GitHub credentials for {owner!r}: it is not in BASTION_GITHUB__ORG_ALLOWLIST "
                f"({', '.join(sorted(self._allowlist))})"
            )
        return org

    def _servable(self, cached: _Cached) -> bool:
        left = cached.expires_at - self._clock()
        if left > self.refresh_margin:
            return True
        # Refreshing failed a moment ago: keep serving what still works rather than hammer GitHub.
        return self._clock() < cached.retry_at and left > _MIN_USEFUL_SECONDS

    def _stale_or_raise(self, org: str, cached: _Cached | None, exc: Unavailable | ConfigError) -> GitHubToken:
        now = self._clock()
        if cached is None or cached.expires_at - now <= _MIN_USEFUL_SECONDS:
            raise Unavailable(f"no GitHub installation token for {org}: {exc.message}") from exc
        cached.retry_at = now + _RETRY_SECONDS
        log.warning(
            "refreshing the installation token of %s failed (%s); serving the current one, valid for %d s more",
            org,
            exc.message,
            int(cached.expires_at - now),
        )
        return cached.token

    async def _pat_token(self, org: str, app_problem: NoCredentials | None) -> GitHubToken:
        if self._pat is None:
            raise app_problem or NoCredentials(f"no GitHub App or token is configured for {org!r}")
        try:
            token = await self._pat.token_for(org)
        except NoCredentials as exc:
            if app_problem is None:
                raise
            raise NoCredentials(f"{app_problem.message}; {exc.message}") from None
        self._pat_tokens[org] = token
        return token

    async def _private_key(self) -> rsa.RSAPrivateKey:
        assert self.private_key_secret is not None
        secret = await self._secrets.get(self.private_key_secret)
        if self._key is None or self._key[0] != secret.version or secret.version is None:
            key = load_private_key(_pem(secret.value.get_secret_value()), f"secret {self.private_key_secret!r}")
            self._key = (secret.version, key)
        return self._key[1]

    async def _app_request(self, method: str, path: str) -> ApiResponse:
        """A request authenticated as the App; on 401 the key is read again from its secret and tried once more."""
        if self.app_id is None or self.private_key_secret is None:
            raise NoCredentials("no GitHub App is configured (BASTION_GITHUB__APP_ID)")
        for attempt in (1, 2):
            # Real time, not self._clock: GitHub checks iat/exp against its own clock.
            bearer = app_jwt(self.app_id, await self._private_key())
            response = await self._api.request(method, path, bearer=bearer)
            if response.status != 401:
                return response
            if attempt == 1:
                log.warning("GitHub rejected the App JWT (app %s); reading the private key again", self.app_id)
                self._secrets.invalidate(self.private_key_secret)
        raise _JwtRejected(
            f"GitHub rejects the App JWT for app id {self.app_id}: check BASTION_GITHUB__APP_ID and that secret "
            f"{self.private_key_secret!r} holds a current private key of that App"
        )

    async def _installation_id(self, org: str) -> int:
        known = self._configured_ids.get(org) or self._installation_ids.get(org)
        if known is not None:
            return known
        if self._no_installation_until.get(org, 0.0) > self._clock():
            raise NoInstallation(f"the GitHub App {self.app_id} is not installed on {org!r}")
        for path in (f"/orgs/{org}/installation", f"/users/{org}/installation"):
            response = await self._app_request("GET", path)
            if response.status == 200 and isinstance(response.body, dict) and isinstance(response.body.get("id"), int):
                self._installation_ids[org] = response.body["id"]
                return response.body["id"]
            if response.status != 404:
                raise Unavailable(f"GitHub did not name the App's installation on {org!r}: {response.message()}")
        self._no_installation_until[org] = self._clock() + _NO_INSTALLATION_SECONDS
        raise NoInstallation(f"the GitHub App {self.app_id} is not installed on {org!r}")

    async def _mint(self, org: str) -> _Cached:
        for attempt in (1, 2):
            installation_id = await self._installation_id(org)
            response = await self._app_request("POST", f"/app/installations/{installation_id}/access_tokens")
            if response.status == 201 and isinstance(response.body, dict):
                return self._accept(org, installation_id, response.body)
            if response.status == 404 and attempt == 1 and org not in self._configured_ids:
                self._installation_ids.pop(org, None)  # uninstalled and installed again: look the id up anew
                continue
            raise Unavailable(
                f"GitHub refused an installation token for {org!r} (installation {installation_id}): "
                f"{response.message()}"
            )
        raise AssertionError("unreachable")

    def _accept(self, org: str, installation_id: int, body: dict[str, Any]) -> _Cached:
        token = body.get("token")
        try:
            expires = _parse_time(str(body.get("expires_at")))
        except ValueError:
            raise Unavailable(f"GitHub's installation token answer for {org!r} has no valid expires_at") from None
        if not isinstance(token, str) or not token:
            raise Unavailable(f"GitHub's installation token answer for {org!r} has no token")
        self.mints += 1
        left = expires.timestamp() - self._clock()
        log.info("new installation token for %s (installation %d), valid for %d s", org, installation_id, int(left))
        return _Cached(GitHubToken(SecretStr(token), expires, "installation"), expires.timestamp(), installation_id)
