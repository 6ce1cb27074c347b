"""BastionLambdaStack: Cognito client credentials (from cdk.json), a private variant in a VPC, a plain variant."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.infra.conftest import Synthesized, cdk_json_context
from tests.infra.helpers import allows, audit_hmac_key_secret, env_of, iam_statements, only, resources

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cognito(default_app: Synthesized) -> dict[str, Any]:
    return default_app.templates["BastionLambda-prod"]


@pytest.fixture(scope="module")
def plain(variants_app: Synthesized) -> dict[str, Any]:
    return variants_app.templates["LambdaPlain"]


@pytest.fixture(scope="module")
def private(variants_app: Synthesized) -> dict[str, Any]:
    return variants_app.templates["LambdaPrivate"]


def _function(template: dict[str, Any]) -> dict[str, Any]:
    return only(template, "AWS::Lambda::Function")["Properties"]


def _methods(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """'POST mcp' -> method properties (resource path part from the resource's PathPart)."""
    found: dict[str, dict[str, Any]] = {}
    for method in resources(template, "AWS::ApiGateway::Method").values():
        properties = method["Properties"]
        part = template["Resources"][properties["ResourceId"]["Ref"]]["Properties"]["PathPart"]
        found[f"{properties['HttpMethod']} {part}"] = properties
    return found


def test_function_runs_the_contract_handler_in_stateless_json_mode(cognito: dict[str, Any]) -> None:
    function = _function(cognito)
    assert (function["Runtime"], function["Handler"], function["Timeout"]) == (
        "python3.11",
        "bastion.aws.lambda_handler.handler",
        29,
    )
    environment = env_of(function)
    assert environment["BASTION_SERVER__JSON_RESPONSE"] == "true"
    assert environment["BASTION_SERVER__TRUSTED_PROXIES"] == "0"
    assert environment["BASTION_REPOS__BACKEND"] == "github"
    assert environment["BASTION_DATA_DIR"] == "/tmp/bastion"
    assert environment["BASTION_PUBLIC_URL"] == f"https://{cdk_json_context()['domain_name']}/mcp"
    assert environment["BASTION_AUTH__TRUST_GATEWAY_AUTHORIZER"] == "true"
    assert environment["BASTION_AUTH__OIDC__ISSUER"]["Fn::Join"][1][0] == "https://cognito-idp."
    assert json.loads(environment["BASTION_AUTH__OIDC__REQUIRED_SCOPES"]) == ["mcp-bastion/read"]
    assert environment["BASTION_AUDIT__CLOUDWATCH__LOG_GROUP"] == {
        "Ref": next(
            k
            for k, v in resources(cognito, "AWS::Logs::LogGroup").items()
            if v["Properties"]["LogGroupName"] == "/mcp-bastion/prod/lambda/audit"
        )
    }
    assert "VpcConfig" not in function
    domain = only(cognito, "AWS::ApiGateway::DomainName")["Properties"]
    assert domain["DomainName"] == cdk_json_context()["domain_name"]
    assert domain["RegionalCertificateArn"] == cdk_json_context()["certificate_arn"]
    assert only(cognito, "AWS::ApiGateway::BasePathMapping")["Properties"].get("BasePath", "") in ("", "/")
    assert only(cognito, "AWS::ApiGateway::RestApi")["Properties"]["DisableExecuteApiEndpoint"] is True


def test_mcp_needs_a_cognito_token_with_the_read_scope_and_health_is_public(cognito: dict[str, Any]) -> None:
    methods = _methods(cognito)
    assert set(methods) == {"POST mcp", "GET health", "GET {proxy+}"}
    mcp = methods["POST mcp"]
    assert mcp["AuthorizationType"] == "COGNITO_USER_POOLS"
    assert mcp["AuthorizationScopes"] == ["mcp-bastion/read"]
    assert methods["GET health"]["AuthorizationType"] == "NONE"
    assert only(cognito, "AWS::ApiGateway::Authorizer")["Properties"]["Type"] == "COGNITO_USER_POOLS"
    header = only(cognito, "AWS::ApiGateway::GatewayResponse")["Properties"]["ResponseParameters"]
    assert "resource_metadata" in json.dumps(header["gatewayresponse.header.WWW-Authenticate"])


def test_cognito_issues_client_credentials_for_the_resource_server(cognito: dict[str, Any]) -> None:
    client = only(cognito, "AWS::Cognito::UserPoolClient")["Properties"]
    assert client["AllowedOAuthFlows"] == ["client_credentials"]
    assert client["GenerateSecret"] is True
    server_id, server = next(iter(resources(cognito, "AWS::Cognito::UserPoolResourceServer").items()))
    assert server["Properties"]["Identifier"] == "mcp-bastion"
    assert client["AllowedOAuthScopes"] == [{"Fn::Join": ["", [{"Ref": server_id}, "/read"]]}]
    pool = only(cognito, "AWS::Cognito::UserPool")["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    domain = only(cognito, "AWS::Cognito::UserPoolDomain")["Properties"]
    assert domain["Domain"] == cdk_json_context()["cognito_domain_prefix"]
    assert {"TokenUrl", "ClientId", "UserPoolId"} <= set(cognito["Outputs"])


def test_stage_throttles_and_writes_access_logs(cognito: dict[str, Any]) -> None:
    stage = only(cognito, "AWS::ApiGateway::Stage")["Properties"]
    settings = stage["MethodSettings"][0]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (50, 100)
    assert settings["DataTraceEnabled"] is False
    access_logs = next(
        k
        for k, v in resources(cognito, "AWS::Logs::LogGroup").items()
        if v["Properties"]["LogGroupName"] == "/mcp-bastion/prod/lambda/api-access"
    )
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": [access_logs, "Arn"]}
    assert "$context.identity.sourceIp" in stage["AccessLogSetting"]["Format"]
    association = only(cognito, "AWS::WAFv2::WebACLAssociation")["Properties"]
    assert "Fn::GetAtt" in association["WebACLArn"]
    rules = {rule["Name"] for rule in only(cognito, "AWS::WAFv2::WebACL")["Properties"]["Rules"]}
    assert rules == {"AmazonIpReputation", "RatePerSourceAddress"}


def test_function_role_is_least_privilege(cognito: dict[str, Any], private: dict[str, Any]) -> None:
    for template in (cognito, private):
        statements = iam_statements(template)
        sids = {statement.get("Sid") for owner, statement in statements if "FunctionRole" in owner}
        assert sids == {
            "WriteFunctionAndAuditLogs",
            "ReadBackAuditLog",
            "ReadGitHubAppPrivateKey",
            "ReadAuditHmacKey",
            "DecryptSecretsWithDeploymentKey",
            "ReadPolicy",
        }
        for owner, statement in statements:
            assert statement["Resource"] != "*", f"{owner}: {statement}"
            assert "cloudwatch:PutMetricData" not in json.dumps(statement["Action"])
        read_back = next(statement for _owner, statement in statements if statement.get("Sid") == "ReadBackAuditLog")
        assert read_back["Action"] == "logs:GetLogEvents"  # the audit sink's read-back before re-sending
    role = next(v for k, v in resources(cognito, "AWS::IAM::Role").items() if k.startswith("FunctionRole"))
    assert "ManagedPolicyArns" not in role["Properties"]


def test_audit_chain_is_sealed_with_a_generated_retained_key_the_function_may_read(
    cognito: dict[str, Any], plain: dict[str, Any]
) -> None:
    for template in (cognito, plain):
        secret = audit_hmac_key_secret(template)
        function = _function(template)
        assert env_of(function)["BASTION_AUDIT__HMAC_KEY_SECRET"] == {"Ref": secret}
        role = function["Role"]["Fn::GetAtt"][0]
        statements = [statement for owner, statement in iam_statements(template) if owner == role]
        assert allows(statements, "secretsmanager:GetSecretValue", {"Ref": secret})
        assert template["Outputs"]["AuditHmacKeySecretArn"]["Value"] == {"Ref": secret}


def test_private_variant_runs_in_private_subnets_with_nat_egress(private: dict[str, Any]) -> None:
    function = _function(private)
    subnets = [subnet["Ref"] for subnet in function["VpcConfig"]["SubnetIds"]]
    assert len(subnets) == 2
    for subnet in subnets:
        assert private["Resources"][subnet]["Properties"]["MapPublicIpOnLaunch"] is False
        assert "tasks" in subnet
    role = next(v for k, v in resources(private, "AWS::IAM::Role").items() if k.startswith("FunctionRole"))
    assert "AWSLambdaVPCAccessExecutionRole" in json.dumps(role["Properties"]["ManagedPolicyArns"])
    assert "NatEgressIps" in private["Outputs"]
    assert only(private, "AWS::EC2::FlowLog")["Properties"]["LogDestinationType"] == "cloud-watch-logs"
    assert not resources(private, "AWS::ApiGateway::DomainName")
    public_url = env_of(function)["BASTION_PUBLIC_URL"]
    assert public_url["Fn::Join"][1][-1] == "/private/mcp", "no domain: the execute-api URL with the stage"


def test_plain_variant_leaves_authentication_to_the_function(plain: dict[str, Any]) -> None:
    assert not resources(plain, "AWS::Cognito::UserPool")
    assert _methods(plain)["POST mcp"]["AuthorizationType"] == "NONE"
    environment = env_of(_function(plain))
    assert "BASTION_AUTH__TRUST_GATEWAY_AUTHORIZER" not in environment
    assert "VpcConfig" not in _function(plain)


def test_alarms_include_function_errors_and_api_5xx(cognito: dict[str, Any]) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"] for a in resources(cognito, "AWS::CloudWatch::Alarm").values()
    }
    prefix = "mcp-bastion-prod-lambda-"
    assert set(alarms) == {
        prefix + name
        for name in (
            "UnauthorizedAccessAttempts",
            "ExcessiveApiCalls",
            "UpstreamTokenExpiring",
            "SystemErrors",
            "Http5xx",
            "AuditSinkLag",
            "FunctionErrors",
        )
    }
    assert alarms[prefix + "Http5xx"]["MetricName"] == "5XXError"
    assert alarms[prefix + "FunctionErrors"]["Namespace"] == "AWS/Lambda"
