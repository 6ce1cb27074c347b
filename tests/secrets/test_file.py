"""FileSecretsProvider: paths below the root, versions that change on replacement, refused names, failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.errors import InvalidInput, Unavailable
from bastion.secrets import SecretNotFound
from bastion.secrets.file import FileSecretsProvider


@pytest.mark.anyio
async def test_reads_a_file_below_the_root_and_an_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "mcp" / "github").mkdir(parents=True)
    (tmp_path / "mcp" / "github" / "acme").write_text("ghp_acme\n")
    outside = tmp_path / "elsewhere.pem"
    outside.write_text("-----BEGIN KEY-----\nabc\n-----END KEY-----\n")
    provider = FileSecretsProvider(tmp_path)
    assert (await provider.fetch("mcp/github/acme")).value.get_secret_value() == "ghp_acme"
    assert (await provider.fetch(str(outside))).value.get_secret_value().endswith("-----END KEY-----")


@pytest.mark.anyio
async def test_replacing_the_file_changes_the_version(tmp_path: Path) -> None:
    target = tmp_path / "token"
    target.write_text("one")
    provider = FileSecretsProvider(tmp_path)
    first = await provider.fetch("token")
    replacement = tmp_path / "token.new"
    replacement.write_text("two")
    os.replace(replacement, target)  # how Kubernetes and editors update: a new inode
    second = await provider.fetch("token")
    assert (first.value.get_secret_value(), second.value.get_secret_value()) == ("one", "two")
    assert first.version != second.version


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["../etc/passwd", "a/../../b", "..", "", "a\x00b"])
async def test_names_that_leave_the_root_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match=r"'\.' or '\.\.'|empty or contains NUL"):
        await FileSecretsProvider(tmp_path).fetch(name)


@pytest.mark.anyio
async def test_missing_empty_and_unreadable(tmp_path: Path) -> None:
    provider = FileSecretsProvider(tmp_path)
    with pytest.raises(SecretNotFound, match="does not exist"):
        await provider.fetch("nope")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretNotFound, match="is empty"):
        await provider.fetch("empty")
    (tmp_path / "dir").mkdir()
    with pytest.raises(Unavailable, match="cannot read"):
        await provider.fetch("dir")
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    with pytest.raises(Unavailable, match="not UTF-8"):
        await provider.fetch("binary")
