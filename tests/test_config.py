"""Settings: BASTION_* environment variables (nested with __), data_dir resolution, derived paths and URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.config import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BASTION_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir == tmp_path / ".bastion"
    assert (settings.host, settings.port, settings.public_url) == ("127.0.0.1", 8000, None)
    assert settings.audit.batch_size == 500
    assert settings.server.trusted_proxies == 0
    assert settings.server.max_body_bytes == 1_048_576


def test_top_level_and_nested_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_PORT", "9001")
    monkeypatch.setenv("BASTION_AUDIT__BATCH_SIZE", "2000")
    monkeypatch.setenv("BASTION_SERVER__TRUSTED_PROXIES", "2")
    monkeypatch.setenv("BASTION_SERVER__ALLOWED_HOSTS", '["mcp.example.com", "mcp.internal:8443"]')
    monkeypatch.setenv("BASTION_SERVER__JSON_RESPONSE", "true")
    monkeypatch.setenv("BASTION_LOG__LEVEL", "DEBUG")
    monkeypatch.setenv("BASTION_REPOS__SEARCH_TIMEOUT_SECONDS", "2.5")
    settings = Settings()
    assert settings.port == 9001
    assert settings.audit.batch_size == 2000
    assert settings.server.max_body_bytes == 1_048_576  # a nested model keeps the defaults it was not given
    assert settings.server.trusted_proxies == 2
    assert settings.server.allowed_hosts == ["mcp.example.com", "mcp.internal:8443"]
    assert settings.server.json_response is True
    assert settings.log.level == "DEBUG"
    assert settings.repos.search_timeout_seconds == 2.5


def test_an_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_AUDIT__BATCH_SIZE", "0")
    with pytest.raises(ValidationError) as caught:
        Settings()
    [error] = caught.value.errors()
    assert error["loc"] == ("audit", "batch_size")
    assert "greater than 0" in error["msg"]


def test_an_unknown_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_LOG__LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="DEBUG"):
        Settings()


def test_unknown_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_NO_SUCH_SETTING", "1")
    monkeypatch.setenv("BASTION_AUDIT__NO_SUCH_FIELD", "1")
    assert Settings().audit.batch_size == 500


# -- data_dir ------------------------------------------------------------------------------------------------


def test_the_default_data_dir_is_absolute_but_not_marked_as_chosen(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir.is_absolute()
    assert settings.data_dir == tmp_path / ".bastion"
    assert "data_dir" not in settings.model_fields_set  # `serve --demo` relies on this


def test_a_relative_data_dir_is_resolved_against_the_working_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=Path("state/../data"))
    assert settings.data_dir == tmp_path / "data"
    assert "data_dir" in settings.model_fields_set


def test_a_home_relative_data_dir_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings(data_dir=Path("~/bastion")).data_dir == tmp_path / "home" / "bastion"


def test_a_data_dir_from_the_environment_counts_as_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BASTION_DATA_DIR", "from-env")
    settings = Settings()
    assert settings.data_dir == tmp_path / "from-env"
    assert "data_dir" in settings.model_fields_set


def test_paths_derive_from_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    assert settings.state_db == tmp_path / "d" / "state.db"
    assert settings.mirrors_dir == tmp_path / "d" / "mirrors"
    assert settings.worktrees_dir == tmp_path / "d" / "worktrees"
    assert settings.policy_file == tmp_path / "d" / "policy.yaml"
    assert settings.audit_db == tmp_path / "d" / "audit.db"


def test_policy_and_audit_files_can_live_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BASTION_POLICY__FILE", "conf/policy.yaml")
    monkeypatch.setenv("BASTION_AUDIT__SQLITE_PATH", str(tmp_path / "logs" / "audit.db"))
    settings = Settings(data_dir=tmp_path / "d")
    assert settings.policy_file == tmp_path / "conf" / "policy.yaml"
    assert settings.audit_db == tmp_path / "logs" / "audit.db"


# -- resource_url --------------------------------------------------------------------------------------------


def test_resource_url_defaults_to_host_and_port() -> None:
    assert Settings().resource_url == "http://127.0.0.1:8000/mcp"
    assert Settings(host="mcp.internal", port=9000).resource_url == "http://mcp.internal:9000/mcp"


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_wildcard_bind_address_is_reached_through_loopback(wildcard: str) -> None:
    assert Settings(host=wildcard, port=8443).resource_url == "http://127.0.0.1:8443/mcp"


def test_an_ipv6_host_is_bracketed_in_the_url() -> None:
    assert Settings(host="::1", port=8000).resource_url == "http://[::1]:8000/mcp"
    assert Settings(host="fd00::5", port=80).resource_url == "http://[fd00::5]:80/mcp"
    assert Settings(host="[::1]", port=8000).resource_url == "http://[::1]:8000/mcp"


def test_public_url_wins_without_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_PUBLIC_URL", "https://mcp.example.com/mcp/")
    settings = Settings(host="0.0.0.0", port=9000)
    assert settings.resource_url == "https://mcp.example.com/mcp"
