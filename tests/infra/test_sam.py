"""infra/sam/template.yaml: transformed by aws-sam-translator (as `sam deploy` would) and linted with cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.infra.conftest import REPO_ROOT
from tests.infra.helpers import allows, audit_hmac_key_secret, env_of, iam_statements, only, resources
from tests.infra.sam import transform_sam

TEMPLATE = REPO_ROOT / "infra" / "sam" / "template.yaml"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return transform_sam(TEMPLATE)


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CFN_LINT), "--", str(path)], capture_output=True, text=True, timeout=120, check=False)


def test_transformed_template_is_cfn_lint_clean(transformed: dict[str, Any], tmp_path: Path) -> None:
    output = tmp_path / "sam-transformed.json"
    output.write_text(json.dumps(transformed))
    result = _lint(output)
    assert result.returncode == 0, result.stdout + result.stderr
    source = _lint(TEMPLATE)
    assert source.returncode == 0, source.stdout + source.stderr


def test_function_is_the_contract_handler_in_json_mode(transformed: dict[str, Any]) -> None:
    function = only(transformed, "AWS::Lambda::Function")["Properties"]
    assert (function["Runtime"], function["Handler"], function["Timeout"]) == (
        "python3.11",
        "bastion.aws.lambda_handler.handler",
        29,
    )
    assert function["Code"]["S3Key"] == "lambda.zip", "CodeUri points at build/lambda"
    environment = env_of(function)
    assert environment["BASTION_SERVER__JSON_RESPONSE"] == "true"
    assert environment["BASTION_REPOS__BACKEND"] == "github"
    assert environment["BASTION_AUTH__TRUST_GATEWAY_AUTHORIZER"] == "true"
    assert environment["BASTION_PUBLIC_URL"] == {"Fn::Sub": "https://${DomainName}/mcp"}


def test_audit_chain_is_sealed_with_a_generated_retained_key_the_function_may_read(
    transformed: dict[str, Any],
) -> None:
    secret = audit_hmac_key_secret(transformed)
    function = only(transformed, "AWS::Lambda::Function")["Properties"]
    assert env_of(function)["BASTION_AUDIT__HMAC_KEY_SECRET"] == {"Ref": secret}
    role = function["Role"]["Fn::GetAtt"][0]
    statements = [statement for owner, statement in iam_statements(transformed) if owner == role]
    assert allows(statements, "secretsmanager:GetSecretValue", {"Ref": secret})
    assert transformed["Outputs"]["AuditHmacKeySecretArn"]["Value"] == {"Ref": secret}


def test_mcp_route_requires_the_cognito_scope_unlike_seed_001(transformed: dict[str, Any]) -> None:
    body = only(transformed, "AWS::ApiGateway::RestApi")["Properties"]["Body"]
    assert body["paths"]["/mcp"]["post"]["security"] == [{"CognitoAuthorizer": ["mcp-bastion/read"]}]
    assert body["paths"]["/health"]["get"]["security"] == [{"NONE": []}]
    authorizer = body["securityDefinitions"]["CognitoAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "cognito_user_pools"
    assert "resource_metadata" in json.dumps(body["x-amazon-apigateway-gateway-responses"])
    # The custom domain is the only entry (it maps the stage at its root, so /mcp and /.well-known line up).
    assert body["x-amazon-apigateway-endpoint-configuration"] == {"disableExecuteApiEndpoint": True}
    mapping = only(transformed, "AWS::ApiGateway::BasePathMapping")["Properties"]
    assert mapping.get("BasePath", "") in ("", "/")


def test_stage_throttles_and_logs(transformed: dict[str, Any]) -> None:
    stage = only(transformed, "AWS::ApiGateway::Stage")["Properties"]
    settings = stage["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottleRate"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurst"}
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}


def test_the_stage_has_a_rate_limiting_web_acl(transformed: dict[str, Any]) -> None:
    association = transformed["Resources"]["WebAclAssociation"]
    assert association["DependsOn"] == "McpApiStage"
    assert "restapis/${McpApi}/stages/${Environment}" in association["Properties"]["ResourceArn"]["Fn::Sub"]
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": ["WebAcl", "Arn"]}
    rules = {rule["Name"]: rule for rule in only(transformed, "AWS::WAFv2::WebACL")["Properties"]["Rules"]}
    assert set(rules) == {"AmazonIpReputation", "RatePerSourceAddress"}
    assert rules["RatePerSourceAddress"]["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"


def test_alarms_and_dashboard_use_the_contract_metrics(transformed: dict[str, Any]) -> None:
    alarms = json.dumps(resources(transformed, "AWS::CloudWatch::Alarm"))
    for needle in ("Denials", "SUM(ToolCalls)", "MIN(UpstreamTokenSecondsToExpiry)", "SUM(Errors)", "5XXError",
                   "MAX(AuditSinkLagSeconds)", "AWS/Lambda"):  # fmt: skip
        assert needle in alarms, needle
    assert len(resources(transformed, "AWS::CloudWatch::Alarm")) == 7
    dashboard = json.dumps(only(transformed, "AWS::CloudWatch::Dashboard"))
    for metric in ("ToolCalls", "Denials", "Errors", "Latency", "RepositoryAccess"):
        assert metric in dashboard, metric


def test_the_harness_catches_errors_inside_serverless_resources(tmp_path: Path) -> None:
    from samtranslator.model.exceptions import InvalidDocumentException

    broken = TEMPLATE.read_text().replace("          Type: Api\n", "          Type: Apii\n", 1)
    assert broken != TEMPLATE.read_text()
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    with pytest.raises(InvalidDocumentException, match="Apii"):
        transform_sam(path)
