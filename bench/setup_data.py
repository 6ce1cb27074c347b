"""A fresh data directory for the governed server, built the way an operator would build one.

One git repository made locally, mirrored with `bastion repo add <file:// url> --name bench/repo`, holding a ~10 KB
text file; a policy that allows the benchmark's caller to read it on main; an API key from `bastion keys create
--output`. Audit is the default SQLite sink. Everything goes through the real CLI, so the benchmark serves exactly
what production would.

    python bench/setup_data.py /tmp/bench-data     # prints what it made
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BENCH_OWNER",
    "BENCH_PATH",
    "BENCH_REPO",
    "BENCH_SUBJECT",
    "BenchData",
    "file_text",
    "prepare",
]

BENCH_OWNER = "bench"
BENCH_REPO = "repo"
BENCH_PATH = "src/bench/payload.py"
BENCH_SUBJECT = "bench-user"
TARGET_BYTES = 10_240

POLICY = f"""\
version: 1
rules:
  - name: bench-read
    description: The benchmark caller may read the benchmark repository on main
    repositories: ["{BENCH_OWNER}/{BENCH_REPO}"]
    subjects: {{users: ["{BENCH_SUBJECT}"]}}
    operations: [read]
    refs: [main]
"""

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True, slots=True)
class BenchData:
    data_dir: Path
    file: Path  # the same bytes outside the repository, for the bare server
    content: bytes
    commit_sha: str
    key: str


def file_text(target_bytes: int = TARGET_BYTES) -> str:
    """Deterministic, plausible source text of about `target_bytes` bytes (whole lines, ASCII, no secrets)."""
    lines = ['"""Benchmark payload: generated text shaped like a small Python module."""', ""]
    number = 0
    while sum(len(line) + 1 for line in lines) < target_bytes:
        number += 1
        lines += [
            f"def handler_{number:03d}(request, limit={number % 7 + 1}):",
            f'    """Answer request {number} within {number % 5 + 1} retries."""',
            f"    values = [item * {number} for item in range(limit)]",
            "    return {'id': request.id, 'values': values, 'ok': True}",
            "",
        ]
    return "\n".join(lines) + "\n"


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **_GIT_ENV}, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def _bastion(bastion: Path, data_dir: Path, *args: str) -> None:
    done = subprocess.run(
        [str(bastion), "--data-dir", str(data_dir), *args],
        env={**os.environ, "BASTION_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bastion {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def prepare(root: Path, bastion: Path) -> BenchData:
    """Build origin repository, mirror, policy and key under `root` (which must not exist yet)."""
    root.mkdir(parents=True)
    content = file_text().encode("utf-8")
    origin = root / "origin" / "repo"
    (origin / Path(BENCH_PATH).parent).mkdir(parents=True)
    (origin / BENCH_PATH).write_bytes(content)
    (origin / "README.md").write_text("Benchmark repository for mcp-bastion.\n")
    _git("init", "--quiet", "--initial-branch=main", cwd=origin)
    _git("add", ".", cwd=origin)
    _git("commit", "--quiet", "-m", "Benchmark payload", cwd=origin)
    commit_sha = _git("rev-parse", "HEAD", cwd=origin)

    data_dir = root / "data"
    data_dir.mkdir(mode=0o700)
    _bastion(bastion, data_dir, "repo", "add", origin.resolve().as_uri(), "--name", f"{BENCH_OWNER}/{BENCH_REPO}")
    (data_dir / "policy.yaml").write_text(POLICY)
    key_file = data_dir / "api-key"
    _bastion(
        bastion, data_dir, "keys", "create", "--subject", BENCH_SUBJECT, "--expires", "1d", "--output", str(key_file)
    )
    plain = root / "payload.txt"
    plain.write_bytes(content)
    return BenchData(data_dir, plain, content, commit_sha, key_file.read_text().strip())


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python bench/setup_data.py NEW_DIRECTORY")
    bastion = Path(sys.executable).parent / "bastion"
    data = prepare(Path(sys.argv[1]).resolve(), bastion)
    print(f"data dir  {data.data_dir}\nfile      {BENCH_OWNER}/{BENCH_REPO}:{BENCH_PATH} ({len(data.content)} bytes)")
    print(f"commit    {data.commit_sha}\nkey file  {data.data_dir / 'api-key'}")


if __name__ == "__main__":
    main()
