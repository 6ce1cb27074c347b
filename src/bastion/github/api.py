"""A minimal GitHub REST caller for the credential endpoints (installations, access tokens).

One short-lived httpx2 client per request: these calls happen about once an hour per organisation, and a client
kept between them would tie its pool to one event loop (Lambda runs one per invocation). Bodies are capped,
redirects are not followed, and neither requests nor responses are ever logged: they carry tokens.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

from bastion import __version__
from bastion.errors import Unavailable
from bastion.github.hosts import api_root

__all__ = ["ApiResponse", "GitHubApi", "RateLimit"]

log = logging.getLogger(__name__)

_MAX_BODY = 1_048_576
_API_VERSION = "2022-11-28"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """GitHub's x-ratelimit-* headers of the last answer."""

    limit: int
    remaining: int
    reset: int  # POSIX seconds
    resource: str = "core"


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: Any
    headers: Mapping[str, str] = field(repr=False)

    def message(self) -> str:
        """GitHub's own error message (`{"message": ...}`), or the status."""
        if isinstance(self.body, dict):
            text = self.body.get("message")
            if isinstance(text, str) and text:
                return f"{self.status} {text[:300]}"
        return f"HTTP {self.status}"


class GitHubApi:
    """`request(method, path, bearer=...)` against `api_url`; raises Unavailable when GitHub cannot be reached."""

    def __init__(self, api_url: str, *, timeout: float = 10.0) -> None:
        self.api_url = api_root(api_url)
        self.timeout = timeout
        self.rate_limit: RateLimit | None = None

    async def request(self, method: str, path: str, *, bearer: str) -> ApiResponse:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": _API_VERSION,
            "User-Agent": f"mcp-bastion/{__version__}",
            "Authorization": f"Bearer {bearer}",
        }
        url = f"{self.api_url}{path}"
        try:
            async with (
                httpx2.AsyncClient(timeout=self.timeout, follow_redirects=False) as client,
                client.stream(method, url, headers=headers) as response,
            ):
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > _MAX_BODY:
                        raise Unavailable(f"GitHub answered {method} {path} with more than {_MAX_BODY} bytes")
                    chunks.append(chunk)
                answer_headers = {key.lower(): value for key, value in response.headers.items()}
                status = response.status_code
        except httpx2.HTTPError as exc:
            raise Unavailable(f"cannot reach GitHub at {self.api_url}: {type(exc).__name__}: {exc}") from None
        self._note_rate_limit(answer_headers)
        body: Any = None
        raw = b"".join(chunks)
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        return ApiResponse(status, body, answer_headers)

    def _note_rate_limit(self, headers: Mapping[str, str]) -> None:
        try:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
            reset = int(headers.get("x-ratelimit-reset", "0"))
        except (KeyError, ValueError):
            return
        self.rate_limit = RateLimit(limit, remaining, reset, headers.get("x-ratelimit-resource", "core"))
        if limit and remaining < limit // 10:
            log.warning("GitHub rate limit low: %d of %d left until %d", remaining, limit, reset)
