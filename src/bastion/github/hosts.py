"""Where GitHub is: the REST API root and the host git talks to, for github.com and GitHub Enterprise Server."""

from __future__ import annotations

from urllib.parse import urlsplit

from bastion.config import GitHubSettings
from bastion.errors import ConfigError

__all__ = ["api_root", "git_web_url", "owner_of_url"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _secure(scheme: str, hostname: str | None) -> bool:
    """HTTPS, or plain HTTP to this machine only (local stand-ins): a token never crosses a network in clear."""
    return scheme == "https" or (scheme == "http" and (hostname or "").lower() in _LOOPBACK)


def api_root(api_url: str) -> str:
    """The API URL without a trailing slash; ConfigError unless it is an https URL with a host."""
    parts = urlsplit(api_url.strip())
    if not _secure(parts.scheme, parts.hostname) or not parts.hostname:
        raise ConfigError(
            f"github.api_url {api_url!r} is not an https URL (https://api.github.com or https://HOST/api/v3)"
        )
    return api_url.strip().rstrip("/")


def git_web_url(settings: GitHubSettings) -> str:
    """`scheme://host[:port]` git clones from: `web_url` when set, else derived from the API URL:
    api.github.com -> github.com, api.<tenant>.ghe.com -> <tenant>.ghe.com, GHES https://HOST/api/v3 -> HOST."""
    if settings.web_url:
        parts = urlsplit(settings.web_url.strip())
        if not _secure(parts.scheme, parts.hostname) or not parts.netloc:
            raise ConfigError(f"github.web_url {settings.web_url!r} is not an https URL such as https://github.com")
        return f"{parts.scheme}://{parts.netloc}".lower()
    parts = urlsplit(api_root(settings.api_url))
    netloc = parts.netloc.lower()
    if netloc.startswith("api.") and parts.path in ("", "/"):
        netloc = netloc.removeprefix("api.")
    return f"{parts.scheme}://{netloc}"


def owner_of_url(url: str, web_url: str) -> str | None:
    """The organisation (lower-cased) of a repository URL on `web_url`'s host, else None (another host, another
    scheme, credentials in the URL, or no owner/repo path): only such URLs ever get a GitHub token."""
    parts = urlsplit(url)
    web = urlsplit(web_url)
    if parts.scheme.lower() != web.scheme or parts.netloc.lower() != web.netloc or parts.username is not None:
        return None
    segments = [segment for segment in parts.path.split("/") if segment]
    if len(segments) != 2:
        return None
    return segments[0].lower()
