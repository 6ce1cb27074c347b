"""GitHub fixtures: an App key, the App stand-in (real HTTP on 127.0.0.1, verifying RS256 JWTs with the App's
public key), the key in a file-backed secrets store, and credentials built over both."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.support.git_http import GitHTTPServer
from tests.support.github_stub import GitHubAppStub, github_app_stub, make_app_key

from bastion.config import Settings
from bastion.github.api import GitHubApi
from bastion.github.app_credentials import GitHubAppCredentials
from bastion.github.pat import PatSource
from bastion.secrets import SecretsCache
from bastion.secrets.file import FileSecretsProvider

APP_ID = "424242"
KEY_SECRET = "github-app.pem"


class Clock:
    """POSIX seconds that a test moves forward (the credentials' cache clock; JWTs use the real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class GatedGitServer(GitHTTPServer):
    """The smart-HTTP test remote, whose requests wait while `gate` is closed (a slow or unreachable remote)."""

    def __init__(self, root: Path, credentials: tuple[str, str]) -> None:
        super().__init__(root, credentials)
        self.gate = threading.Event()
        self.gate.set()

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.gate.wait(60)
        super().finish_request(request, client_address)


@contextlib.contextmanager
def git_server(root: Path, credentials: tuple[str, str]) -> Generator[GatedGitServer]:
    """The smart-HTTP test remote, handed over whole: a test changes the credentials it accepts, or its gate."""
    server = GatedGitServer(root, credentials)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def pem_of(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def app_key() -> rsa.RSAPrivateKey:
    return make_app_key()


@pytest.fixture
def stub(app_key: rsa.RSAPrivateKey) -> Generator[GitHubAppStub]:
    with github_app_stub(APP_ID, app_key.public_key(), installations={"acme": 1001, "globex": 1002}) as running:
        yield running


@pytest.fixture
def secrets_dir(tmp_path: Path, app_key: rsa.RSAPrivateKey) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / KEY_SECRET).write_text(pem_of(app_key))
    return directory


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeCredentials = Callable[..., GitHubAppCredentials]


@pytest.fixture
def make_credentials(stub: GitHubAppStub, secrets_dir: Path, clock: Clock) -> MakeCredentials:
    def make(**overrides: Any) -> GitHubAppCredentials:
        secrets = overrides.pop("secrets", None) or SecretsCache(FileSecretsProvider(secrets_dir), ttl=300, clock=clock)
        pat = overrides.pop("pat", PatSource(secrets, org_secret_names=lambda org: [f"tokens/{org}", "tokens/default"]))
        options: dict[str, Any] = {
            "secrets": secrets,
            "api": GitHubApi(stub.url, timeout=5),
            "app_id": APP_ID,
            "private_key_secret": KEY_SECRET,
            "pat": pat,
            "clock": clock,
        }
        options.update(overrides)
        return GitHubAppCredentials(**options)

    return make


def app_settings(
    data_dir: Path, secrets_dir: Path, api_url: str, web_url: str, *, github: dict[str, Any] | None = None, **other: Any
) -> Settings:
    """Settings of a server authenticating as the test GitHub App (key in the file secrets under `secrets_dir`),
    against the stand-in API at `api_url` and git at `web_url`; `github` adds App settings, `other` top-level ones."""
    app = {"app_id": APP_ID, "private_key_secret": KEY_SECRET, "api_url": api_url, "web_url": web_url, **(github or {})}
    return Settings.model_validate(
        {"data_dir": data_dir, "secrets": {"provider": "file", "directory": str(secrets_dir)}, "github": app, **other}
    )
