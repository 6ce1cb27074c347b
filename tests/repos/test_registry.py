"""The repository registry file: URLs, atomic concurrent writes, case-insensitive lookup, reload on change."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.errors import ConfigError, InvalidInput, NotFound
from bastion.repos.registry import (
    Registry,
    mirror_path,
    name_from_url,
    new_record,
    validate_remote_url,
    worktree_root,
)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/widgets.git",
        "http://127.0.0.1:8080/acme/widgets.git",
        "ssh://git@github.com/acme/widgets.git",
        "git://127.0.0.1/acme/widgets.git",
        "file:///srv/git/acme/widgets.git",
        "git@github.com:acme/widgets.git",
    ],
)
def test_remote_url_accepts(url: str) -> None:
    assert validate_remote_url(url) == url


def test_local_path_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert validate_remote_url("remotes/acme/widgets.git") == str(tmp_path / "remotes/acme/widgets.git")
    assert validate_remote_url(str(tmp_path / "x.git")) == str(tmp_path / "x.git")


@pytest.mark.parametrize(
    "url",
    [
        "https://user:token@github.com/acme/widgets.git",
        "https://ghp_abcdef@github.com/acme/widgets.git",
        "http://x-access-token:abc@127.0.0.1/acme/widgets.git",
        "ssh://git:password@github.com/acme/widgets.git",
    ],
)
def test_remote_url_refuses_credentials(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_remote_url(url)
    assert "credentials come from the configured credential helper" in caught.value.message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::sh", "remote helper, which is not allowed"),
        ("fd::17", "remote helper"),
        ("ftp://example.com/x.git", "scheme 'ftp' is not allowed"),
        ("--upload-pack=touch /tmp/x", "whitespace"),
        ("--upload-pack=touch", "starts with '-'"),
        ("https:///acme/widgets.git", "has no host"),
        ("ssh://-oProxyCommand=x/acme/w.git", "host starting with '-'"),
        ("git@-oProxyCommand:acme/w.git", "host starting with '-'"),
        ("", "URL is empty"),
    ],
)
def test_remote_url_refuses(url: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_remote_url(url)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/acme/widgets.git", "acme/widgets"),
        ("https://github.com/acme/widgets", "acme/widgets"),
        ("git@github.com:acme/widgets.git", "acme/widgets"),
        ("/srv/git/remotes/acme/widgets.git/", "acme/widgets"),
        ("https://gitlab.example.com/group/sub/repo.git", "sub/repo"),
    ],
)
def test_name_from_url(url: str, name: str) -> None:
    assert name_from_url(url) == name


def test_name_from_url_needs_two_segments() -> None:
    with pytest.raises(InvalidInput) as caught:
        name_from_url("https://example.com/widgets.git")
    assert "pass --name owner/repo" in caught.value.message


def test_paths_are_lowercased(tmp_path: Path) -> None:
    assert mirror_path(tmp_path, "Acme/Widgets") == tmp_path / "mirrors" / "acme" / "widgets.git"
    assert mirror_path(tmp_path, "group/Sub/Repo") == tmp_path / "mirrors" / "group" / "sub" / "repo.git"
    assert worktree_root(tmp_path, "Acme/Widgets") == tmp_path / "worktrees" / "acme" / "widgets"
    with pytest.raises(InvalidInput):
        mirror_path(tmp_path, "acme/../../etc")


def test_add_get_update_case_insensitive(tmp_path: Path) -> None:
    registry = Registry(tmp_path, check_interval=0)
    registry.add(new_record("Acme/Widgets", "https://example.com/Acme/Widgets.git", "main"))
    found = registry.get("acme/WIDGETS")
    assert found.name == "Acme/Widgets"  # the canonical name comes back
    assert found.default_branch == "main"
    with pytest.raises(InvalidInput) as caught:
        registry.add(new_record("acme/widgets", "https://example.com/other.git", "main"))
    assert "'Acme/Widgets' is already registered" in caught.value.message
    when = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    registry.update("acme/widgets", last_sync_at=when, head_sha="a" * 40, last_sync_error=None)
    reread = Registry(tmp_path).get("ACME/widgets")
    assert (reread.last_sync_at, reread.head_sha) == (when, "a" * 40)
    with pytest.raises(NotFound) as missing:
        registry.get("acme/gadgets")
    assert "repository 'acme/gadgets' is not registered" in missing.value.message


def test_file_format_and_sorting(tmp_path: Path) -> None:
    registry = Registry(tmp_path, check_interval=0)
    for name in ("zeta/b", "Alpha/a", "mid/c"):
        registry.add(new_record(name, f"https://example.com/{name}.git", None))
    assert [record.name for record in registry.records()] == ["Alpha/a", "mid/c", "zeta/b"]
    data = json.loads((tmp_path / "repositories.json").read_text())
    assert data["version"] == 1
    first = data["repositories"][0]
    assert set(first) == {
        "name",
        "url",
        "default_branch",
        "added_at",
        "last_sync_at",
        "last_sync_error",
        "head_sha",
    }
    assert not list(tmp_path.glob(".repositories.*.tmp"))  # the temp file was renamed, not left behind


def test_reload_when_another_process_writes(tmp_path: Path) -> None:
    server_view = Registry(tmp_path, check_interval=0)
    assert server_view.records() == []
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from bastion.repos.registry import Registry, new_record
        Registry(Path({str(tmp_path)!r})).add(new_record("other/proc", "https://example.com/o/p.git", "dev"))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert [record.name for record in server_view.records()] == ["other/proc"]
    assert server_view.get("OTHER/PROC").default_branch == "dev"


def test_stat_is_throttled(tmp_path: Path) -> None:
    """With a long check interval, a change made by someone else is not seen until the next check."""
    server_view = Registry(tmp_path, check_interval=3600)
    assert server_view.records() == []
    Registry(tmp_path).add(new_record("late/comer", "https://example.com/l/c.git", None))
    assert server_view.records() == []
    server_view._next_check = 0.0  # the interval has passed
    assert [record.name for record in server_view.records()] == ["late/comer"]


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from bastion.repos.registry import Registry, new_record
        registry = Registry(Path(sys.argv[1]))
        for index in range(10):
            registry.add(new_record(f"w{sys.argv[2]}/r{index}", "https://example.com/x.git", None))
        """
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(n)]) for n in range(4)]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0, 0]
    assert len(Registry(tmp_path).records()) == 40


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "repositories.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"repository registry .* is unreadable"):
        Registry(tmp_path).records()


def test_malformed_entry_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "repositories.json").write_text('{"version": 1, "repositories": [{"url": "x"}]}')
    with pytest.raises(ConfigError, match="has a malformed entry: KeyError"):
        Registry(tmp_path).records()
