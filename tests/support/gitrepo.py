"""Build test repositories with real git: fixed authors and dates (so history is reproducible), branches,
annotated and lightweight tags, a binary file, a symlink, a submodule entry, nested directories, large files
and a secret-looking `.env`; push them to a bare remote and add commits later.

`build_sample_repository()` makes the repository most data-plane tests use and returns its facts (SHAs are
read from git, never written into tests by hand).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "ALICE",
    "BOB",
    "CAROL",
    "SampleRepository",
    "WorkRepo",
    "build_sample_repository",
    "git",
    "make_bare_remote",
]

ALICE = ("Alice Example", "alice@example.com")
BOB = ("Bob Builder", "bob@example.com")
CAROL = ("Carol Coder", "carol@example.com")

_BASE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(_BASE_ENV)
    if extra:
        env.update(extra)
    return env


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    """Run git in `cwd` and return stdout (stripped); raises with git's stderr on failure."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=_env(env), input=stdin, capture_output=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode().strip()


def make_bare_remote(root: Path, name: str, *, default_branch: str = "main") -> Path:
    """An empty bare repository at `root/<name>.git` whose HEAD is `default_branch`."""
    path = root / f"{name}.git"
    path.mkdir(parents=True)
    git(path, "init", "--bare", "--quiet", f"--initial-branch={default_branch}")
    git(path, "config", "http.receivepack", "true")
    return path


class WorkRepo:
    """A non-bare repository to author commits in, with `origin` pointing at a remote."""

    def __init__(self, path: Path, remote: str | Path | None = None, *, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "--quiet", f"--initial-branch={branch}")
        git(path, "config", "core.symlinks", "true")
        if remote is not None:
            git(path, "remote", "add", "origin", str(remote))

    def write(self, relative: str, content: str | bytes, *, executable: bool = False) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        target.chmod(0o755 if executable else 0o644)

    def symlink(self, relative: str, points_to: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        os.symlink(points_to, target)

    def remove(self, relative: str) -> None:
        git(self.path, "rm", "--quiet", "-r", "--", relative)

    def move(self, old: str, new: str) -> None:
        git(self.path, "mv", "--", old, new)

    def embedded_repository(self, relative: str, *, when: datetime) -> str:
        """A nested repository with one commit; the next `commit()` records it as a submodule entry (a gitlink,
        mode 160000), which is all a mirror sees of a submodule. Returns the nested commit's SHA."""
        nested = WorkRepo(self.path / relative)
        nested.write("lib.txt", "vendored library\n")
        return nested.commit("Vendored library", when=when)

    def commit(self, message: str, *, author: tuple[str, str] = ALICE, when: datetime | str) -> str:
        """Stage everything and commit with a fixed author/committer and date; returns the new SHA."""
        stamp = when if isinstance(when, str) else when.isoformat()
        env = {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_NAME": author[0],
            "GIT_COMMITTER_EMAIL": author[1],
            "GIT_COMMITTER_DATE": stamp,
        }
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "--allow-empty", "-m", message, env=env)
        return self.rev("HEAD")

    def branch(self, name: str, start: str = "HEAD") -> None:
        git(self.path, "branch", name, start)

    def checkout(self, name: str) -> None:
        git(self.path, "checkout", "--quiet", name)

    def tag(self, name: str, target: str = "HEAD", *, message: str | None = None, when: str | None = None) -> None:
        """Annotated when `message` is given, lightweight otherwise."""
        if message is None:
            git(self.path, "tag", name, target)
            return
        env = {"GIT_COMMITTER_NAME": ALICE[0], "GIT_COMMITTER_EMAIL": ALICE[1]}
        if when is not None:
            env["GIT_COMMITTER_DATE"] = when
        git(self.path, "tag", "-a", name, "-m", message, target, env=env)

    def rev(self, ref: str) -> str:
        return git(self.path, "rev-parse", "--verify", f"{ref}^{{commit}}")

    def object_id(self, spec: str) -> str:
        return git(self.path, "rev-parse", "--verify", spec)

    def push(self, *refspecs: str, force: bool = False) -> None:
        args = ["push", "--quiet", "origin", *(refspecs or ("--all",))]
        if force:
            args.insert(2, "--force")
        git(self.path, *args)

    def push_everything(self) -> None:
        git(self.path, "push", "--quiet", "origin", "--all")
        git(self.path, "push", "--quiet", "origin", "--tags")


@dataclass
class SampleRepository:
    """Facts about the sample repository, for exact assertions."""

    work: WorkRepo
    remote: Path
    commits: dict[str, str] = field(default_factory=dict)  # label -> SHA
    dates: dict[str, datetime] = field(default_factory=dict)  # label -> author date
    authors: dict[str, tuple[str, str]] = field(default_factory=dict)
    big_size: int = 0
    medium_size: int = 0


def _at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, 0, 0, tzinfo=UTC)


def build_sample_repository(base: Path, *, remote_root: Path, name: str = "acme/widgets") -> SampleRepository:
    """The shared fixture repository, pushed to a bare remote under `remote_root`.

    main:    c1 (2024-01-10 Alice) -> c2 (2024-02-10 Bob) -> c3 (2024-03-10 Alice) -> c4 (now-40d Bob)
             -> c5 (now-3d Carol)
    feature: c2 -> f1 (2024-02-20 Carol)
    tags:    v0.1 lightweight at c1, v1.0 annotated at c2
    """
    remote = make_bare_remote(remote_root, name)
    work = WorkRepo(base / "work", remote)
    sample = SampleRepository(work=work, remote=remote)
    now = datetime.now(UTC).replace(microsecond=0)

    def commit(label: str, message: str, author: tuple[str, str], when: datetime) -> None:
        sample.commits[label] = work.commit(message, author=author, when=when)
        sample.dates[label] = when
        sample.authors[label] = author

    work.write("README.md", "# Widgets\n\nA sample repository with a needle in it.\n")
    work.write("src/app.py", 'def main():\n    print("hello needle")\n')
    work.write("src/util/helpers.py", "def helper():\n    return 42\n")
    work.write("docs/guide.md", "Guide\n=====\n\nStep one.\nStep two.\nStep three.\n")
    commit("c1", "Initial commit\n\nSets up the widgets project.", ALICE, _at(2024, 1, 10))
    work.tag("v0.1")

    work.write("src/app.py", 'def main():\n    print("hello needle")\n    print("goodbye")\n')
    work.write("assets/logo.png", bytes(range(256)) * 4)
    work.symlink("link-to-readme", "README.md")
    work.write(".env", "API_TOKEN=needle-secret-value\n")
    work.write("scripts/run.sh", "#!/bin/sh\necho needle --upload-pack\n", executable=True)
    big = ("0123456789abcdef" * 4 + "\n") * 10_000  # 650,000 bytes: beyond max_bytes + slack
    medium = "m" * 9_999 + "\n"  # 10,000 bytes: the "~10 KB file"
    work.write("data/big.txt", big)
    work.write("data/medium.txt", medium)
    work.write("web/app.min.js", "var a='" + "x" * 3000 + "';needle();var b='" + "y" * 3000 + "';\n")
    sample.big_size, sample.medium_size = len(big), len(medium)
    commit("c2", "Add assets, scripts and data", BOB, _at(2024, 2, 10))
    work.tag("v1.0", message="Release 1.0", when=_at(2024, 2, 11).isoformat())

    work.branch("feature")
    work.checkout("feature")
    work.write("src/feature.py", "FEATURE = 'needle in feature'\n")
    commit("f1", "Add feature module", CAROL, _at(2024, 2, 20))
    work.checkout("main")

    work.move("docs/guide.md", "docs/manual.md")
    work.write("docs/manual.md", "Guide\n=====\n\nStep one.\nStep two.\nStep three.\nStep four.\n")
    work.write(".hidden/config.txt", "hidden needle\n")
    sample.commits["vendor"] = work.embedded_repository("vendor/lib", when=_at(2024, 3, 1))
    commit("c3", "Rename guide to manual, add vendor/lib", ALICE, _at(2024, 3, 10))

    work.write("src/util/helpers.py", "def helper():\n    return 43\n")
    commit("c4", "Bump helper", BOB, now - timedelta(days=40))

    work.write("src/app.py", 'def main():\n    print("hello needle")\n    print("goodbye needle")\n')
    commit("c5", "Say goodbye with a needle", CAROL, now - timedelta(days=3))

    work.push("main", "feature")
    git(work.path, "push", "--quiet", "origin", "--tags")
    return sample
