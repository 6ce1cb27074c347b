"""Where GitHub is: git hosts derived from API URLs (github.com, GHE.com, GHES), and which URLs get a token."""

from __future__ import annotations

import pytest

from bastion.config import GitHubSettings
from bastion.errors import ConfigError
from bastion.github.hosts import git_web_url, owner_of_url


@pytest.mark.parametrize(
    ("api_url", "web_url"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://api.github.com/", "https://github.com"),
        ("https://api.acme.ghe.com", "https://acme.ghe.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("https://GHE.example.com:8443/api/v3/", "https://ghe.example.com:8443"),
    ],
)
def test_the_git_host_is_derived_from_the_api_url(api_url: str, web_url: str) -> None:
    assert git_web_url(GitHubSettings(api_url=api_url)) == web_url


def test_web_url_overrides_and_bad_urls_are_config_errors() -> None:
    assert git_web_url(GitHubSettings(web_url="http://127.0.0.1:9000/")) == "http://127.0.0.1:9000"
    with pytest.raises(ConfigError, match=r"github\.api_url 'ftp://x' is not an https URL"):
        git_web_url(GitHubSettings(api_url="ftp://x"))
    with pytest.raises(ConfigError, match=r"github\.web_url"):
        git_web_url(GitHubSettings(web_url="github.com"))
    with pytest.raises(ConfigError, match=r"github\.web_url 'http://ghe\.example\.com' is not an https URL"):
        git_web_url(GitHubSettings(web_url="http://ghe.example.com"))  # a token would cross the network in clear
    with pytest.raises(ConfigError, match=r"github\.api_url 'http://ghe\.example\.com/api/v3' is not an https"):
        git_web_url(GitHubSettings(api_url="http://ghe.example.com/api/v3"))


@pytest.mark.parametrize(
    ("url", "owner"),
    [
        ("https://github.com/Acme/api.git", "acme"),
        ("https://github.com/acme/api", "acme"),
        ("https://GITHUB.COM/acme/api.git", "acme"),
        ("http://github.com/acme/api.git", None),  # another scheme: no token over plain HTTP
        ("https://gitlab.com/acme/api.git", None),
        ("https://github.com.evil.example/acme/api.git", None),
        ("https://user@github.com/acme/api.git", None),
        ("https://github.com/acme/group/api.git", None),
        ("git@github.com:acme/api.git", None),
        ("/srv/git/acme/api.git", None),
    ],
)
def test_only_repository_urls_on_the_github_host_get_a_token(url: str, owner: str | None) -> None:
    assert owner_of_url(url, "https://github.com") == owner
