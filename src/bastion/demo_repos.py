"""The three demo repositories, built locally with real git so the demo needs no network.

acme/handbook   fully open: several branches and tags, a credential-looking file, a binary, a file over the size limit
acme/payments   readable on main only: other branches hold commits the demo user may not see
acme/vault      denied to everyone by an explicit deny rule
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["DEMO_REPOS", "build_demo_repositories"]

DEMO_REPOS = ("acme/handbook", "acme/payments", "acme/vault")
_PEOPLE = (
    ("Ada Lovelace", "ada@acme.example"),
    ("Grace Hopper", "grace@acme.example"),
    ("Alan Turing", "alan@acme.example"),
)


class _Repo:
    """A throwaway working repository; every commit gets a fixed author and a date `days_ago` before now."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.now = datetime.now(UTC).replace(microsecond=0)
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        base = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }
        done = subprocess.run(
            ["git", "-C", str(self.path), *args],
            check=True,
            capture_output=True,
            text=True,
            env={**base, **(env or {})},
        )
        return done.stdout.strip()

    def write(self, relative: str, content: str | bytes) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)

    def commit(self, message: str, days_ago: float, person: int = 0) -> None:
        name, email = _PEOPLE[person % len(_PEOPLE)]
        when = (self.now - timedelta(days=days_ago)).isoformat()
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_AUTHOR_DATE": when,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": when,
        }
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", message, env=env)

    def tag(self, name: str, message: str | None = None) -> None:
        if message is None:
            self.git("tag", name)
        else:
            env = {"GIT_COMMITTER_NAME": _PEOPLE[0][0], "GIT_COMMITTER_EMAIL": _PEOPLE[0][1]}
            self.git("tag", "-a", name, "-m", message, env=env)


def _png(width: int = 8, height: int = 8) -> bytes:
    """A tiny valid PNG (a binary file for the demo), made without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes([40, 90, 160]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _handbook(path: Path) -> None:
    repo = _Repo(path)
    repo.write(
        "README.md", "# ACME handbook\n\nHow we build, ship and run software at ACME.\n\nSee docs/onboarding.md.\n"
    )
    repo.write(
        "docs/onboarding.md",
        "# Onboarding\n\n1. Get a laptop.\n2. Ask for repository access in #it.\n3. Read the style guide.\n",
    )
    repo.write(
        "src/handbook/search.py",
        '"""Full-text search over the handbook."""\n\n\ndef search(pages: dict[str, str], term: str) -> list[str]:\n'
        '    """Names of the pages that mention `term` (case-insensitive)."""\n'
        "    needle = term.lower()\n"
        "    return sorted(name for name, text in pages.items() if needle in text.lower())\n",
    )
    repo.write("src/handbook/__init__.py", '"""ACME handbook tools."""\n')
    repo.commit("Start the handbook", days_ago=75, person=0)
    repo.tag("v1.0", "First published handbook")
    repo.write(
        "web/render.ts",
        "export function render(markdown: string): string {\n"
        "  return markdown.replace(/^# (.*)$/gm, '<h1>$1</h1>');\n}\n",
    )
    repo.write("assets/logo.png", _png())
    repo.write(
        "config/.env",
        "# demo only: these look like credentials so you can watch policy hide them\n"
        "DATABASE_URL=postgres://handbook:not-a-real-password@db.internal:5432/handbook\n"
        "AWS_ACCESS_KEY_ID=AKIADEMO000000000000\n",
    )
    repo.write("docs/style.md", "# Style guide\n\n- Write short sentences.\n- Name things for what they hold.\n")
    os.symlink("onboarding.md", path / "docs" / "start-here.md")
    repo.commit("Add renderer, logo, style guide and local config", days_ago=40, person=1)
    rows = "".join(f"{i},employee-{i:06d},{(i * 7919) % 100000}\n" for i in range(60_000))
    repo.write("data/large-export.csv", "id,name,score\n" + rows)
    repo.commit("Add the yearly export (large)", days_ago=20, person=2)
    repo.tag("v1.1")
    repo.git("checkout", "--quiet", "-b", "dev")
    repo.write(
        "docs/onboarding.md",
        "# Onboarding\n\n1. Get a laptop.\n2. Ask for access in #it.\n3. Read the style guide.\n"
        "4. Pair with a buddy for a week.\n",
    )
    repo.commit("Onboarding: add the buddy week", days_ago=5, person=0)
    repo.git("checkout", "--quiet", "-b", "feature/search-ranking")
    repo.write(
        "src/handbook/search.py",
        '"""Full-text search over the handbook."""\n\n\ndef search(pages: dict[str, str], term: str) -> list[str]:\n'
        '    """Names of the pages that mention `term`, most mentions first."""\n'
        "    needle = term.lower()\n    counts = {name: text.lower().count(needle) for name, text in pages.items()}\n"
        "    return sorted((n for n, c in counts.items() if c), key=lambda n: (-counts[n], n))\n",
    )
    repo.commit("Search: rank pages by number of mentions", days_ago=2, person=1)
    repo.git("checkout", "--quiet", "main")


def _payments(path: Path) -> None:
    repo = _Repo(path)
    repo.write("README.md", "# payments\n\nCard and invoice processing. Owned by the payments team.\n")
    repo.write(
        "service/ledger.go",
        "package service\n\n// Balance sums the amounts of a ledger, in cents.\nfunc Balance(amounts []int64) int64 {\n"
        "\tvar total int64\n\tfor _, a := range amounts {\n\t\ttotal += a\n\t}\n\treturn total\n}\n",
    )
    repo.commit("Ledger service skeleton", days_ago=50, person=2)
    repo.write(
        "service/refund.go",
        "package service\n\n// MaxRefund is the largest refund, in cents, that needs no approval.\n"
        "const MaxRefund = 50_00\n",
    )
    repo.commit("Refunds: approval threshold", days_ago=30, person=0)
    repo.git("branch", "release/2026.10")
    repo.tag("v2026.10.0", "October release")
    repo.git("checkout", "--quiet", "-b", "dev")
    repo.write(
        "service/refund.go",
        "package service\n\n// MaxRefund is the largest refund, in cents, that needs no approval.\n"
        "// Experimental: raised for the pilot.\nconst MaxRefund = 500_00\n",
    )
    repo.commit("Experiment: raise the refund threshold (not released)", days_ago=3, person=1)
    repo.git("checkout", "--quiet", "main")


def _vault(path: Path) -> None:
    repo = _Repo(path)
    repo.write("README.md", "# vault\n\nProduction credentials. Access only through the security team.\n")
    repo.write("prod/api-keys.txt", "stripe=sk_live_demo_not_real\n")
    repo.commit("Initial vault", days_ago=10, person=2)


def build_demo_repositories(origin: Path) -> dict[str, Path]:
    """Create any missing demo repository under `origin/<owner>/<repo>`; return name -> path."""
    builders = {"acme/handbook": _handbook, "acme/payments": _payments, "acme/vault": _vault}
    made: dict[str, Path] = {}
    for name, build in builders.items():
        path = origin / name
        if not (path / ".git").exists():
            build(path)
        made[name] = path
    return made
