"""`GitHubClient`: GET requests to GitHub's REST API with the server's credentials, within GitHub's limits.

One `httpx2.AsyncClient` per backend, reused for every call (FACTS.md: a client built per call spent 40% of a
peer gateway's time in TLS setup). What one call does, in order:

- refuse at once, with the time to retry, when the resource (`core`, `code_search`, ...) is used up or blocked by
  an earlier secondary limit (GitHub may ban integrations that keep calling while limited);
- send with the organisation's token (`GitHubCredentials.token_for(owner)`); mutable resources (branch lists,
  repository metadata) go out with `If-None-Match`, and a 304 reuses the cached body at no rate-limit cost;
- record `x-ratelimit-*` (exported through `rate_limits()` and the `on_rate_limit` hook);
- 401: the token was revoked or expired early: `credentials.invalidate(owner)` and one retry with a fresh one;
- 403/429 rate limited: wait what GitHub asks (`retry-after`, else the reset time, else a minute) when that is at
  most `max_retry_wait_seconds`, then retry once; otherwise `Unavailable` with `retry_after`;
- 404 -> `GitHubNotFound`, 409 (empty repository) -> `NotFound`, 422 -> `GitHubUnprocessable`, anything else
  -> `Unavailable` with GitHub's own message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

from bastion import __version__
from bastion.config import GitHubSettings
from bastion.errors import NotFound, Unavailable
from bastion.github.credentials import GitHubCredentials
from bastion.repos.cache import LRU
from bastion.repos.github_backend.limits import RateLimits, RateLimitSnapshot, limited_wait, whole_seconds

__all__ = [
    "API_VERSION",
    "JSON_MEDIA",
    "RAW_MEDIA",
    "SHA_MEDIA",
    "TEXT_MATCH_MEDIA",
    "ApiResponse",
    "GitHubClient",
    "GitHubNotFound",
    "GitHubUnprocessable",
]

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
JSON_MEDIA = "application/vnd.github+json"
RAW_MEDIA = "application/vnd.github.raw+json"
SHA_MEDIA = "application/vnd.github.sha"  # GET /commits/{ref} answers only the full SHA
TEXT_MATCH_MEDIA = "application/vnd.github.text-match+json"
MAX_JSON_BYTES = 64 * 1024 * 1024  # a recursive tree of a very large repository is ~7 MB; this bounds a bad answer
_ETAG_ENTRIES = 1024


class GitHubNotFound(NotFound):
    """GitHub answered 404 (or 409 for an empty repository). Callers rewrite the message for their context."""


class GitHubUnprocessable(NotFound):
    """GitHub answered 422: usually "No commit found for SHA" or a search query it cannot parse."""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A successful answer: the parsed JSON body (or raw bytes), and the `Link` header's rel -> URL."""

    data: Any
    links: dict[str, str] = field(default_factory=dict[str, str])
    raw: bytes = b""


def _message(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])[:300]
    return ""


class GitHubClient:
    """GitHub REST calls for the github backend. `clock`, `sleep` and `transport` are injectable for tests."""

    def __init__(
        self,
        settings: GitHubSettings,
        credentials: GitHubCredentials,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx2.AsyncBaseTransport | None = None,
        on_rate_limit: Callable[[RateLimitSnapshot], None] | None = None,
    ) -> None:
        self.settings = settings
        self.api_url = settings.api_url.rstrip("/")
        self.credentials = credentials
        self.limits = RateLimits(clock=clock, on_update=on_rate_limit)
        self._clock = clock
        self._sleep = sleep
        self._transport = transport
        self._http: httpx2.AsyncClient | None = None
        self._etags: LRU[str, tuple[str, ApiResponse]] = LRU(_ETAG_ENTRIES)
        self.requests_sent = 0  # every HTTP request that left, retries and 304s included (tests, metrics)

    def rate_limits(self) -> dict[str, RateLimitSnapshot]:
        """The latest primary-limit numbers per resource, as GitHub reported them."""
        return self.limits.snapshots()

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            timeout = self.settings.request_timeout_seconds
            self._http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(timeout, connect=min(timeout, 5.0)),
                follow_redirects=False,  # a redirect would carry our token to wherever it points
                headers={"User-Agent": f"mcp-bastion/{__version__}", "X-GitHub-Api-Version": API_VERSION},
                transport=self._transport,
                trust_env=False,
            )
        return self._http

    def url(self, path_or_url: str) -> str:
        """An absolute API URL. Only URLs under `api_url` are accepted (pagination links come from GitHub, and
        our token must never go anywhere else)."""
        if path_or_url.startswith("/"):
            return self.api_url + path_or_url
        if path_or_url.startswith(self.api_url + "/"):
            return path_or_url
        raise Unavailable(f"GitHub sent a link outside {self.api_url}; refusing to follow it")

    async def json(
        self,
        owner: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        resource: str = "core",
        conditional: bool = False,
        accept: str = JSON_MEDIA,
    ) -> ApiResponse:
        """GET `path` (or a pagination URL) as JSON. `conditional`: revalidate a cached copy with its ETag."""
        url = self.url(path)
        return await self._get(owner, url, params or {}, resource=resource, accept=accept, conditional=conditional)

    async def raw(self, owner: str, path: str, *, max_bytes: int, accept: str = RAW_MEDIA) -> bytes:
        """GET `path` as raw bytes, reading at most `max_bytes` of the body (the connection is dropped after)."""
        url = self.url(path)
        response = await self._get(owner, url, {}, resource="core", accept=accept, max_bytes=max_bytes)
        return response.raw

    # -- one request, with its retries ---------------------------------------------------------------------

    async def _get(
        self,
        owner: str,
        url: str,
        params: Mapping[str, str | int],
        *,
        resource: str,
        accept: str,
        conditional: bool = False,
        max_bytes: int | None = None,
    ) -> ApiResponse:
        where = url.removeprefix(self.api_url)
        cache_key = url + "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())) + "#" + accept
        renewed_token = waited = False
        while True:
            if not waited:  # after waiting what GitHub asked, the retry goes out even if the clock is coarse
                self._check_limits(resource, where)
            token = await self.credentials.token_for(owner)
            headers = {"Accept": accept, "Authorization": f"Bearer {token.value.get_secret_value()}"}
            cached = self._etags.get(cache_key) if conditional else None
            if cached is not None:
                headers["If-None-Match"] = cached[0]
            status, response_headers, body = await self._send(url, params, headers, max_bytes, where)
            self.limits.record(response_headers)
            if status == 304 and cached is not None:
                return cached[1]
            if 200 <= status < 300:
                answer = self._answer(status, response_headers, body, max_bytes is not None, where)
                etag = response_headers.get("etag")
                if conditional and etag:
                    self._etags.put(cache_key, (etag, answer))
                return answer
            if status == 401 and not renewed_token:
                # Revoked, or an installation token that expired before its stated time: get a new one, once.
                self.credentials.invalidate(owner)
                renewed_token = True
                continue
            message = _message(body)
            wait = limited_wait(status, response_headers, message, self._clock())
            if wait is not None:
                self.limits.block(response_headers.get("x-ratelimit-resource", resource), wait)
                if not waited and wait <= self.settings.max_retry_wait_seconds:
                    logger.warning("GitHub rate-limited %s (%s); retrying in %.1f s", where, status, wait)
                    waited = True
                    await self._sleep(wait)
                    continue
                raise Unavailable(
                    f"GitHub's rate limit for {resource} requests is reached ({message or status}); "
                    f"retry in {whole_seconds(wait)} s",
                    retry_after=whole_seconds(wait),
                )
            raise self._failure(status, message, where, owner)

    def _check_limits(self, resource: str, where: str) -> None:
        wait = self.limits.wait_needed(resource)
        if wait > 0:
            raise Unavailable(
                f"GitHub's {resource} rate limit is used up; {where} was not requested. Retry in "
                f"{whole_seconds(wait)} s",
                retry_after=whole_seconds(wait),
            )

    async def _send(
        self,
        url: str,
        params: Mapping[str, str | int],
        headers: dict[str, str],
        max_bytes: int | None,
        where: str,
    ) -> tuple[int, httpx2.Headers, bytes]:
        client = self._client()
        self.requests_sent += 1
        try:
            request = client.build_request(
                "GET", url, params=dict(params) or None, headers=headers
            )  # None keeps a link's query
            response = await client.send(request, stream=True)
            try:
                limit = max_bytes if max_bytes is not None and response.status_code == 200 else MAX_JSON_BYTES
                body = await _read_at_most(response, limit)
            finally:
                await response.aclose()
        except httpx2.TimeoutException:
            raise Unavailable(
                f"GitHub did not answer {where} within {self.settings.request_timeout_seconds:g} s; retry later"
            ) from None
        except httpx2.HTTPError as exc:
            raise Unavailable(f"GitHub could not be reached for {where}: {type(exc).__name__}") from None
        return response.status_code, response.headers, body

    @staticmethod
    def _answer(status: int, headers: httpx2.Headers, body: bytes, raw: bool, where: str) -> ApiResponse:
        links = {str(rel): str(link["url"]) for rel, link in httpx2.Response(status, headers=headers).links.items()}
        if raw:
            return ApiResponse(data=None, links=links, raw=body)
        try:
            return ApiResponse(data=json.loads(body) if body else None, links=links)
        except ValueError:
            raise Unavailable(f"GitHub answered {where} with something that is not JSON") from None

    def _failure(self, status: int, message: str, where: str, owner: str) -> Exception:
        said = f": {message}" if message else ""
        if status == 404:
            return GitHubNotFound(f"GitHub has no {where} (or these credentials cannot see it){said}")
        if status == 409:
            return GitHubNotFound(f"GitHub answered 409 for {where}{said} (an empty repository has no commits)")
        if status == 422:
            return GitHubUnprocessable(f"GitHub could not process {where}{said}")
        if status == 401:
            return Unavailable(
                f"GitHub refuses the server's credentials for {owner} even after renewing them{said}; "
                "an administrator must check the GitHub App installation or token"
            )
        if status == 403:
            return Unavailable(
                f"GitHub refused {where}{said}; the GitHub App or token lacks access (an administrator can grant it)"
            )
        return Unavailable(f"GitHub answered {status} for {where}{said}; retry later")


async def _read_at_most(response: httpx2.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= limit:
            del body[limit:]
            break
    return bytes(body)
