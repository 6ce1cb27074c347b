"""The GitHub Actions workflow: GitHub's workflow schema, test -> build -> deploy, OIDC, actions pinned to commits."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.infra.conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
DEPLOY = REPO_ROOT / ".github" / "workflows" / "deploy.yml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded  # pyright: ignore[reportUnknownVariableType]


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def test_workflows_match_githubs_schema() -> None:
    assert WORKFLOWS, "no workflow files"
    # The schema ships inside check-jsonschema (vendored from SchemaStore): no network.
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    uses = re.findall(r"uses:\s*(\S+)", path.read_text())
    assert uses
    for reference in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", reference), f"{path.name}: {reference} is not pinned"


def test_jobs_test_then_build_then_deploy_with_oidc() -> None:
    workflow = _load(DEPLOY)
    jobs = workflow["jobs"]
    assert set(jobs) == {"test", "build", "deploy"}
    assert workflow["permissions"] == {"contents": "read"}
    assert any(step.get("run") == "make test" for step in _steps(jobs["test"]))
    assert "permissions" not in jobs["test"], "the test job gets no cloud credentials"
    assert jobs["build"]["needs"] == "test"
    assert jobs["deploy"]["needs"] == "build"
    assert "refs/heads/main" in jobs["build"]["if"]
    for name in ("build", "deploy"):
        assert jobs[name]["permissions"] == {"contents": "read", "id-token": "write"}
        credentials = [s for s in _steps(jobs[name]) if "configure-aws-credentials" in s.get("uses", "")]
        assert len(credentials) == 1
        assert "role-to-assume" in credentials[0]["with"]
        assert not {"aws-access-key-id", "aws-secret-access-key"} & set(credentials[0]["with"])
    build = "\n".join(step.get("run", "") for step in _steps(jobs["build"]))
    assert "docker push" in build
    assert any("amazon-ecr-login" in step.get("uses", "") for step in _steps(jobs["build"]))
    deploy = "\n".join(step.get("run", "") for step in _steps(jobs["deploy"]))
    assert "aws-cdk@2." in deploy
    assert " deploy " in deploy
    assert "image_tag=$TAG" in deploy
    assert jobs["deploy"]["environment"] == "production"
