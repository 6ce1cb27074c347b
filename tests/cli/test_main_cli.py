"""The root command: settings problems are reported by variable name, never by value."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app


def test_invalid_settings_name_the_variable_and_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_PORT", "hunter2-secret-looking")
    monkeypatch.setenv("BASTION_AUDIT__BATCH_SIZE", "-1")
    result = CliRunner().invoke(app, ["keys", "list"])
    assert result.exit_code == 2
    assert "BASTION_PORT: Input should be a valid integer" in result.output
    assert "BASTION_AUDIT__BATCH_SIZE: Input should be greater than 0" in result.output
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["keys", "list"], ["doctor"]])
def test_a_variable_that_is_not_the_json_it_should_be_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """pydantic-settings raised its own SettingsError out of every command, doctor included (found by a probe)."""
    monkeypatch.setenv("BASTION_SERVER__ALLOWED_HOSTS", "hunter2-host")
    result = CliRunner().invoke(app, command)
    assert result.exit_code in (1, 2)
    assert "BASTION_SERVER or one of the BASTION_SERVER__* variables could not be read" in result.output
    assert "are JSON" in result.output
    assert "hunter2" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_doctor_reports_invalid_settings_as_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_PORT", "not-a-port")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "FAIL" in result.output
    assert "BASTION_PORT: Input should be a valid integer" in result.output
    assert "not-a-port" not in result.output


def test_every_command_is_registered() -> None:
    result = CliRunner().invoke(app, ["--help"])
    for command in ("serve", "repo", "keys", "policy", "audit", "client-config", "token", "doctor"):
        assert command in result.output


def test_a_data_directory_that_is_a_file_is_refused_by_name(tmp_path: Path) -> None:
    """It gave NotADirectoryError or FileExistsError tracebacks from every command (found by a probe)."""
    afile = tmp_path / "afile"
    afile.write_text("")
    result = CliRunner().invoke(app, ["--data-dir", str(afile), "keys", "list"])
    assert result.exit_code == 2
    assert f"{afile} is a file, not a directory: point BASTION_DATA_DIR (--data-dir) at one" in result.output
