"""scripts/build-lambda.sh: shell syntax and what it promises the stacks (the package itself needs PyPI to build)."""

from __future__ import annotations

import subprocess

from tests.infra.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "build-lambda.sh"


def test_script_parses_and_builds_for_the_lambda_platform() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    text = SCRIPT.read_text()
    assert "--python-version 3.11" in text
    assert "--only-binary=:all:" in text
    assert "manylinux2014_x86_64" in text
    assert 'out="$root/build/lambda"' in text
    assert "bastion/aws/lambda_handler.py" in text, "the build checks for the handler the stacks name"
