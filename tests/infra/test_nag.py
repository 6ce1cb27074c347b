"""cdk-nag (AwsSolutions) over every stack: no unacknowledged finding, no stale acknowledgment, and the list of
acknowledged rules is a reviewed list (a new acknowledgment fails here until it is added below)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.infra.conftest import Synthesized

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# Every rule acknowledged anywhere, and why it is acceptable, is written next to the acknowledgment in
# infra/cdk/bastion_infra/*_stack.py; this is the list a reviewer sees change.
EXPECTED_RULES = {
    "AwsSolutions::AwsSolutions-S1",  # the access-log bucket itself
    "AwsSolutions::AwsSolutions-EC23",  # public HTTPS endpoint (narrowed by ingress_cidrs)
    "AwsSolutions::AwsSolutions-SMG4",  # GitHub App key (no rotation API); audit HMAC key; ECS-injected state creds
    "AwsSolutions::AwsSolutions-ECS2",  # non-secret settings in the environment (the deploy contract)
    "AwsSolutions::AwsSolutions-IAM5[Resource::*]",  # ecr:GetAuthorizationToken
    "AwsSolutions::AwsSolutions-L1",  # Python 3.11 package
    "AwsSolutions::AwsSolutions-APIG4",  # /health, RFC 9728 metadata; /mcp when the function authenticates
    "AwsSolutions::AwsSolutions-COG4",  # same methods
    "AwsSolutions::AwsSolutions-COG8",  # machine-only user pool
    "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSLambdaVPCAccessExecutionRole]",
    "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AmazonAPIGatewayPushToCloudWatchLogs]",
}


def _report(app: Synthesized) -> dict[str, Any]:
    reports = [r for r in app.report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert len(reports) == 1, "cdk-nag did not run (no AwsSolutions report)"
    return reports[0]


def _violations(report: dict[str, Any]) -> list[str]:
    return [
        f"{violation['ruleName']} at {construct['constructPath']}: {violation['description']}"
        for violation in report["violations"]
        for construct in violation["violatingConstructs"]
    ]


@pytest.mark.parametrize("which", ["default_app", "variants_app"])
def test_no_unacknowledged_finding(which: str, request: pytest.FixtureRequest) -> None:
    app: Synthesized = request.getfixturevalue(which)
    report = _report(app)
    assert _violations(report) == []
    assert report["conclusion"] == "success"
    assert app.error is None
    assert report["suppressedViolations"], "acknowledged findings are reported, so nag saw the resources"


@pytest.mark.parametrize("which", ["default_app", "variants_app"])
def test_every_acknowledgment_suppresses_a_finding(which: str, request: pytest.FixtureRequest) -> None:
    app: Synthesized = request.getfixturevalue(which)
    used = {
        (violation["acknowledgedAt"], violation["acknowledgedId"]) for violation in _report(app)["suppressedViolations"]
    }
    assert app.acknowledgments - used == set(), "stale acknowledgments: remove them"
    reasons = [violation["reason"] for violation in _report(app)["suppressedViolations"]]
    assert all(len(reason) >= 40 for reason in reasons), reasons


def test_acknowledged_rules_are_the_reviewed_list(default_app: Synthesized, variants_app: Synthesized) -> None:
    rules = {rule for _, rule in default_app.acknowledgments | variants_app.acknowledgments}
    assert rules == EXPECTED_RULES


def test_nag_fails_synthesis_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3
    from infra.cdk.bastion_infra.nag import acknowledge, add_nag_checks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Probe")
    bucket = s3.Bucket(stack, "Bucket", enforce_ssl=False)
    acknowledge(bucket, "AwsSolutions-S1", "A probe bucket that only exists to prove the rule pack runs here.")
    add_nag_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-S10" in report  # TLS-only bucket policy missing: not acknowledged, so it fails
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(bucket, "AwsSolutions-S2", "because")
