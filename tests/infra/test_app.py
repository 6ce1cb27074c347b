"""infra/cdk/app.py as the CDK CLI runs it (`python3 app.py` in infra/cdk, context and outdir from the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from tests.infra.conftest import CDK_DIR, REGION, cdk_json_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run_app(outdir: Path, context: Mapping[str, object]) -> subprocess.CompletedProcess[str]:
    # These two variables are how the CDK CLI hands context and the output directory to the app.
    environment = os.environ | {"CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context)}
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=CDK_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )


def test_app_synthesizes_the_service_stack_with_nag(tmp_path: Path) -> None:
    result = _run_app(tmp_path, cdk_json_context() | {"region": REGION, "environment": "cli"})
    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((tmp_path / "BastionService-cli.template.json").read_text())
    assert any(r["Type"] == "AWS::ECS::Service" for r in template["Resources"].values())
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert [r["conclusion"] for r in report["pluginReports"]] == ["success"]
    assert not list(tmp_path.glob("BastionLambda-*")), "variant=service builds only the service stack"


def test_app_refuses_to_run_without_a_region(tmp_path: Path) -> None:
    if "CDK_DEFAULT_REGION" in os.environ:
        pytest.fail("CDK_DEFAULT_REGION is set in the test environment; unset it for this test")
    result = _run_app(tmp_path, cdk_json_context() | {"region": ""})
    assert result.returncode != 0
    assert "region: pass -c region=<aws-region>" in result.stderr
