"""cfn-lint on every synthesized CDK template (both apps)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.infra.conftest import Synthesized

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def _lint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    # W3005 (redundant DependsOn) is how CDK writes dependencies; it is style, not a defect.
    return subprocess.run(
        [str(CFN_LINT), "--ignore-checks", "W3005", "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("which", ["default_app", "variants_app"])
def test_every_synthesized_template_is_clean(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    app: Synthesized = request.getfixturevalue(which)
    paths: list[Path] = []
    for name, template in app.templates.items():
        path = tmp_path / f"{name}.template.json"
        path.write_text(json.dumps(template))
        paths.append(path)
    assert len(paths) >= 2
    result = _lint(paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_reports_a_broken_template(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"Colour": "red"}}}}))
    result = _lint([path])
    assert result.returncode != 0
    assert "Colour" in result.stdout
