"""The demo repositories: built with real git, with every feature the demo policy and README talk about."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from bastion.demo_repos import DEMO_REPOS, build_demo_repositories
from bastion.guard.content import describe_binary, detect_binary
from tests.support.gitrepo import git

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("origin")
    made = build_demo_repositories(root)
    assert made == {name: root / name for name in DEMO_REPOS}
    return root


def _refs(repo: Path, namespace: str) -> set[str]:
    return set(git(repo, "for-each-ref", "--format=%(refname:short)", f"refs/{namespace}/").splitlines())


def _blob(repo: Path, spec: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), "cat-file", "blob", spec], capture_output=True, check=True).stdout


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Chunks of a PNG, each CRC-checked; raises on anything malformed."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: list[tuple[bytes, bytes]] = []
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


# -- acme/handbook -------------------------------------------------------------------------------------------


def test_handbook_branches_and_tags(origin: Path) -> None:
    repo = origin / "acme/handbook"
    assert _refs(repo, "heads") == {"main", "dev", "feature/search-ranking"}
    assert _refs(repo, "tags") == {"v1.0", "v1.1"}
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"


def test_handbook_v1_0_is_annotated_and_v1_1_lightweight(origin: Path) -> None:
    repo = origin / "acme/handbook"
    assert git(repo, "cat-file", "-t", "refs/tags/v1.0") == "tag"
    assert git(repo, "tag", "-l", "--format=%(contents:subject)", "v1.0") == "First published handbook"
    assert git(repo, "cat-file", "-t", "refs/tags/v1.1") == "commit"
    assert git(repo, "rev-parse", "v1.1") == git(repo, "rev-parse", "main")
    assert git(repo, "merge-base", "--is-ancestor", "v1.0", "v1.1") == ""


def test_handbook_has_a_credential_looking_env_file(origin: Path) -> None:
    env = _blob(origin / "acme/handbook", "main:config/.env").decode()
    assert "AWS_ACCESS_KEY_ID=" in env
    assert "DATABASE_URL=postgres://" in env


def test_handbook_logo_is_a_valid_png(origin: Path) -> None:
    data = _blob(origin / "acme/handbook", "main:assets/logo.png")
    assert detect_binary(data) is True
    assert describe_binary(data) == "PNG image"
    chunks = _png_chunks(data)
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (width, height) == (8, 8)
    assert len(zlib.decompress(chunks[1][1])) == height * (1 + 3 * width)


def test_handbook_has_a_symlink(origin: Path) -> None:
    repo = origin / "acme/handbook"
    mode, kind, _ = git(repo, "ls-tree", "main", "docs/start-here.md").split("\t")[0].split()
    assert (mode, kind) == ("120000", "blob")
    assert _blob(repo, "main:docs/start-here.md") == b"onboarding.md"


def test_handbook_has_a_file_over_one_mib_in_release_v1_1(origin: Path) -> None:
    repo = origin / "acme/handbook"
    size = int(git(repo, "cat-file", "-s", "v1.1:data/large-export.csv"))
    assert size > MIB
    with pytest.raises(RuntimeError, match=r"cat-file -e v1\.0:data/large-export\.csv failed"):  # not yet in v1.0
        git(repo, "cat-file", "-e", "v1.0:data/large-export.csv")


def test_handbook_feature_branch_builds_on_dev(origin: Path) -> None:
    repo = origin / "acme/handbook"
    assert git(repo, "log", "--format=%s", "main..dev") == "Onboarding: add the buddy week"
    assert git(repo, "log", "--format=%s", "dev..feature/search-ranking") == "Search: rank pages by number of mentions"
    assert "most mentions first" in _blob(repo, "feature/search-ranking:src/handbook/search.py").decode()


def test_commits_have_fixed_authors(origin: Path) -> None:
    authors = set(git(origin / "acme/handbook", "log", "--all", "--format=%an <%ae>").splitlines())
    assert authors == {
        "Ada Lovelace <ada@acme.example>",
        "Grace Hopper <grace@acme.example>",
        "Alan Turing <alan@acme.example>",
    }


# -- acme/payments and acme/vault ----------------------------------------------------------------------------


def test_payments_has_a_commit_only_on_dev(origin: Path) -> None:
    repo = origin / "acme/payments"
    assert _refs(repo, "heads") == {"main", "dev", "release/2026.10"}
    assert _refs(repo, "tags") == {"v2026.10.0"}
    assert git(repo, "cat-file", "-t", "refs/tags/v2026.10.0") == "tag"
    assert git(repo, "log", "--format=%s", "main..dev") == "Experiment: raise the refund threshold (not released)"
    assert git(repo, "rev-list", "--count", "dev..main") == "0"
    assert git(repo, "rev-parse", "release/2026.10") == git(repo, "rev-parse", "main")
    assert b"const MaxRefund = 50_00\n" in _blob(repo, "main:service/refund.go")
    assert b"const MaxRefund = 500_00\n" in _blob(repo, "dev:service/refund.go")


def test_vault_holds_credentials(origin: Path) -> None:
    repo = origin / "acme/vault"
    assert _refs(repo, "heads") == {"main"}
    assert _blob(repo, "main:prod/api-keys.txt") == b"stripe=sk_live_demo_not_real\n"


# -- reuse ---------------------------------------------------------------------------------------------------


def test_existing_repositories_are_kept_and_a_missing_one_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "origin"
    build_demo_repositories(root)
    heads = {name: git(root / name, "rev-parse", "HEAD") for name in DEMO_REPOS}
    shutil.rmtree(root / "acme/vault")
    build_demo_repositories(root)
    assert git(root / "acme/handbook", "rev-parse", "HEAD") == heads["acme/handbook"]
    assert git(root / "acme/payments", "rev-parse", "HEAD") == heads["acme/payments"]
    assert _blob(root / "acme/vault", "main:README.md").startswith(b"# vault\n")
