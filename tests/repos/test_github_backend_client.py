"""The github backend's HTTP client against the local stand-in: rate-limit headers recorded and respected,
secondary limits (403/429 + retry-after) waited out once or refused with the time to retry, a rejected token
renewed once, ETag revalidation answered 304 at no rate-limit cost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from tests.repos.conftest import REPO, Mirrored
from tests.support.github_api import GitHubApi, Scripted, github_api, github_settings

from bastion.errors import Unavailable
from bastion.github.credentials import GitHubToken, StaticToken
from bastion.repos.github_backend import GitHubBackend, GitHubClient

pytestmark = pytest.mark.anyio

SECONDARY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
}


@pytest.fixture
def api(mirrored: Mirrored, git_http_root: Path) -> Iterator[GitHubApi]:
    # One stand-in per test: these tests change its limits and scripts.
    with github_api(git_http_root) as served:
        yield served


class RecordingSleep:
    """Stands in for asyncio.sleep so a test can see how long the client chose to wait, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class RotatingTokens:
    """A credential source whose cached token went stale: the first token is refused until invalidated."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.invalidated: list[str] = []

    async def token_for(self, owner: str) -> GitHubToken:
        return GitHubToken(SecretStr(self.tokens[0]), kind="installation")

    def invalidate(self, owner: str) -> None:
        self.invalidated.append(owner)
        if len(self.tokens) > 1:
            self.tokens.pop(0)


def _backend(
    api: GitHubApi, tmp_path: Path, credentials: object = None, **github: object
) -> tuple[GitHubBackend, RecordingSleep]:
    settings = github_settings(api.url, tmp_path, [REPO], **github)
    sleep = RecordingSleep()
    token = credentials or StaticToken("test-token")
    client = GitHubClient(settings.github, token, sleep=sleep)  # type: ignore[arg-type]
    return GitHubBackend(settings, token, client=client), sleep  # type: ignore[arg-type]


async def test_rate_limit_headers_are_recorded(api: GitHubApi, tmp_path: Path) -> None:
    github, _ = _backend(api, tmp_path)
    async with github:
        await github.refs(REPO)
        core = github.client.rate_limits()["core"]
    assert (core.limit, core.remaining, core.used, core.reset_at) == (
        5000,
        api.core_remaining,
        5000 - api.core_remaining,
        api.reset_at,
    )


async def test_etag_revalidation_costs_no_rate_limit(api: GitHubApi, tmp_path: Path) -> None:
    github, _ = _backend(api, tmp_path, refs_cache_seconds=0)  # revalidate on every call
    async with github:
        first = await github.refs(REPO)
        spent = api.core_remaining
        again = await github.refs(REPO)
    assert again == first
    assert api.core_remaining == spent  # every revalidation was a 304
    revalidations = [h for p, h in api.requests if p.endswith("/git/matching-refs/heads")][1:]
    assert revalidations
    assert all(h.get("if-none-match", "").startswith('W/"') for h in revalidations)


async def test_secondary_limit_is_waited_out_once(api: GitHubApi, tmp_path: Path, mirrored: Mirrored) -> None:
    github, sleep = _backend(api, tmp_path)
    api.scripted.append(Scripted(r"/git/trees/", 403, SECONDARY, {"retry-after": "3"}))
    async with github:
        listed = await github.list_tree(REPO, mirrored.commits["c5"], "", False)
    assert "README.md" in {entry.path for entry in listed}
    assert sleep.waits == [3.0]
    assert len(api.paths("/git/trees/")) == 2  # refused once, then answered


async def test_a_long_secondary_limit_is_refused_with_the_time_to_retry(
    api: GitHubApi, tmp_path: Path, mirrored: Mirrored
) -> None:
    github, sleep = _backend(api, tmp_path)
    api.scripted.append(Scripted(r"/git/trees/", 403, SECONDARY, {"retry-after": "120"}))
    async with github:
        with pytest.raises(Unavailable) as caught:
            await github.list_tree(REPO, mirrored.commits["c5"], "", False)
        assert caught.value.details["retry_after"] == 120
        assert caught.value.message.startswith("GitHub's rate limit for core requests is reached (You have exceeded")
        assert caught.value.message.endswith("retry in 120 s")
        asked = len(api.requests)
        with pytest.raises(
            Unavailable, match=r"core rate limit is used up; .* was not requested\. Retry in 1[12][0-9] s"
        ):
            await github.read_blob(REPO, mirrored.commits["c5"], "README.md", 10)
        assert len(api.requests) == asked  # blocked here: GitHub was not asked again
    assert sleep.waits == []


async def test_429_without_retry_after_waits_a_minute(api: GitHubApi, tmp_path: Path, mirrored: Mirrored) -> None:
    github, _ = _backend(api, tmp_path, max_retry_wait_seconds=5)
    api.scripted.append(Scripted(r"/git/trees/", 429, {"message": "Too many requests"}))
    async with github:
        with pytest.raises(Unavailable) as caught:
            await github.list_tree(REPO, mirrored.commits["c5"], "", False)
    assert caught.value.details["retry_after"] == 60


async def test_a_used_up_primary_limit_is_not_called(api: GitHubApi, tmp_path: Path, mirrored: Mirrored) -> None:
    github, _ = _backend(api, tmp_path)
    async with github:
        await github.refs(REPO)
        api.core_remaining = 1  # the next answer says 0 remain
        await github.list_tree(REPO, mirrored.commits["c5"], "", False)
        asked = len(api.requests)
        with pytest.raises(Unavailable) as caught:
            await github.read_blob(REPO, mirrored.commits["c4"], "README.md", 10)
        assert len(api.requests) == asked
    assert caught.value.message.startswith("GitHub's core rate limit is used up;")
    assert 3500 <= caught.value.details["retry_after"] <= 3601  # until x-ratelimit-reset


async def test_a_rejected_token_is_renewed_once(api: GitHubApi, tmp_path: Path) -> None:
    tokens = RotatingTokens("revoked-token", "test-token")
    github, _ = _backend(api, tmp_path, credentials=tokens)
    async with github:
        assert (await github.refs(REPO)).default_branch == "main"
    assert tokens.invalidated == ["acme"]


async def test_a_token_refused_after_renewal_is_unavailable(api: GitHubApi, tmp_path: Path) -> None:
    tokens = RotatingTokens("revoked-token")
    github, _ = _backend(api, tmp_path, credentials=tokens)
    async with github:
        with pytest.raises(Unavailable) as caught:
            await github.get_repository(REPO)
    assert tokens.invalidated == ["acme"]
    assert caught.value.message.startswith("GitHub refuses the server's credentials for acme even after renewing")
    assert "Bad credentials" in caught.value.message


async def test_an_outage_is_unavailable_with_githubs_message(
    api: GitHubApi, tmp_path: Path, mirrored: Mirrored
) -> None:
    github, _ = _backend(api, tmp_path)
    api.scripted.append(Scripted(r"/git/trees/", 502, {"message": "Server Error"}))
    async with github:
        with pytest.raises(Unavailable) as caught:
            await github.list_tree(REPO, mirrored.commits["c5"], "", False)
    assert caught.value.message == (
        f"GitHub answered 502 for /repos/{REPO}/git/trees/{mirrored.commits['c5']}: Server Error; retry later"
    )


async def test_links_outside_the_api_are_not_followed(api: GitHubApi, tmp_path: Path) -> None:
    github, _ = _backend(api, tmp_path)
    async with github:
        with pytest.raises(Unavailable, match=r"outside http://127\.0\.0\.1:[0-9]+; refusing to follow it"):
            await github.client.json("acme", "https://evil.example/steal")


async def test_a_low_rate_limit_is_logged_once_per_window(
    api: GitHubApi, tmp_path: Path, mirrored: Mirrored, caplog: pytest.LogCaptureFixture
) -> None:
    github, _ = _backend(api, tmp_path)
    api.core_remaining = 400  # below a tenth of 5000
    with caplog.at_level("WARNING", logger="bastion.repos.github_backend.limits"):
        async with github:
            await github.refs(REPO)
            await github.list_tree(REPO, mirrored.commits["c5"], "", False)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith("GitHub core rate limit low: 399 of 5000 left until ")
