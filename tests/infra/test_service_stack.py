"""BastionServiceStack as synthesized from cdk.json's context (and the existing-VPC variant): the properties the
security checklist of seed 000 and the deployment contract depend on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.infra.conftest import EXISTING_STATE, EXISTING_VPC, Synthesized, cdk_json_context
from tests.infra.helpers import allows, audit_hmac_key_secret, env_of, iam_statements, only, resources

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STACK = "BastionService-prod"


@pytest.fixture(scope="module")
def template(default_app: Synthesized) -> dict[str, Any]:
    return default_app.templates[STACK]


@pytest.fixture(scope="module")
def existing(variants_app: Synthesized) -> dict[str, Any]:
    return variants_app.templates["ServiceExistingVpc"]


def _container(template: dict[str, Any]) -> dict[str, Any]:
    return only(template, "AWS::ECS::TaskDefinition")["Properties"]["ContainerDefinitions"][0]


def _ref(value: Any) -> str:
    assert isinstance(value, dict), f"expected a Ref, got {value!r}"
    assert "Ref" in value, f"expected a Ref, got {value!r}"
    return str(value["Ref"])  # pyright: ignore[reportUnknownArgumentType]


def test_tasks_run_in_private_subnets_whose_default_route_is_a_nat_gateway(template: dict[str, Any]) -> None:
    network = only(template, "AWS::ECS::Service")["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    subnets = [_ref(subnet) for subnet in network["Subnets"]]
    assert len(subnets) == 2
    associations = resources(template, "AWS::EC2::SubnetRouteTableAssociation").values()
    routes = resources(template, "AWS::EC2::Route").values()
    for subnet in subnets:
        assert template["Resources"][subnet]["Properties"]["MapPublicIpOnLaunch"] is False
        table = next(
            _ref(a["Properties"]["RouteTableId"]) for a in associations if _ref(a["Properties"]["SubnetId"]) == subnet
        )
        default_routes = [
            r["Properties"]
            for r in routes
            if _ref(r["Properties"]["RouteTableId"]) == table and r["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0"
        ]
        assert len(default_routes) == 1, f"{subnet}: {default_routes}"
        assert "NatGatewayId" in default_routes[0], f"{subnet} routes to {default_routes[0]}, not a NAT gateway"
        assert "GatewayId" not in default_routes[0]


def test_nat_egress_addresses_are_the_stacks_own_eips_and_are_exported(template: dict[str, Any]) -> None:
    eips = resources(template, "AWS::EC2::EIP")
    assert len(eips) == 2
    allocations = {
        nat["Properties"]["AllocationId"]["Fn::GetAtt"][0]
        for nat in resources(template, "AWS::EC2::NatGateway").values()
    }
    assert allocations == set(eips)
    outputs = template["Outputs"]
    assert outputs["NatEgressIps"]["Value"] == {"Fn::Join": [",", [{"Ref": key} for key in sorted(eips)]]}
    assert "IP allow list" in outputs["NatEgressIps"]["Description"]
    assert {_ref(outputs[f"NatEgressIp{index}"]["Value"]) for index in (1, 2)} == set(eips)


def test_https_listener_with_the_certificate_and_http_redirects(template: dict[str, Any]) -> None:
    from aws_cdk.assertions import Match, Template

    assertions = Template.from_json(template)
    certificate = cdk_json_context()["certificate_arn"]
    assertions.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": certificate}],
            "SslPolicy": Match.string_like_regexp("TLS13"),
            "DefaultActions": [Match.object_like({"Type": "forward"})],
        },
    )
    assertions.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [
                {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}
            ],
        },
    )
    assertions.resource_count_is("AWS::ElasticLoadBalancingV2::Listener", 2)
    assertions.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {
            "Scheme": "internet-facing",
            "LoadBalancerAttributes": Match.array_with(
                [
                    {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
                    {"Key": "access_logs.s3.enabled", "Value": "true"},
                ]
            ),
        },
    )


def test_target_group_checks_health_on_slash_health(template: dict[str, Any]) -> None:
    group = only(template, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    assert (group["HealthCheckPath"], group["Port"], group["TargetType"], group["Matcher"]) == (
        "/health",
        8000,
        "ip",
        {"HttpCode": "200"},
    )


def test_a_web_acl_on_the_load_balancer_limits_each_source_address(template: dict[str, Any]) -> None:
    """The application's limits count per authenticated subject; unauthenticated floods stop at the WAF."""
    load_balancer = next(iter(resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")))
    association = only(template, "AWS::WAFv2::WebACLAssociation")["Properties"]
    assert association["ResourceArn"] == {"Ref": load_balancer}
    acl_id = next(iter(resources(template, "AWS::WAFv2::WebACL")))
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    acl = only(template, "AWS::WAFv2::WebACL")["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    assert set(rules) == {"AmazonIpReputation", "RatePerSourceAddress"}
    rate = rules["RatePerSourceAddress"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "EvaluationWindowSec": 300,
        "Limit": 2000,
    }


def test_security_groups_open_only_the_needed_ports(template: dict[str, Any]) -> None:
    groups = resources(template, "AWS::EC2::SecurityGroup")
    alb = next(key for key, group in groups.items() if "load balancer" in group["Properties"]["GroupDescription"])
    tasks = next(key for key, group in groups.items() if "tasks:" in group["Properties"]["GroupDescription"])
    alb_ingress = groups[alb]["Properties"]["SecurityGroupIngress"]
    assert sorted((rule["FromPort"], rule["CidrIp"]) for rule in alb_ingress) == [(80, "0.0.0.0/0"), (443, "0.0.0.0/0")]
    ingress = [
        rule["Properties"]
        for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"]["Fn::GetAtt"][0] == tasks
    ]
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "Description": "load balancer to tasks",
            "FromPort": 8000,
            "ToPort": 8000,
            "GroupId": {"Fn::GetAtt": [tasks, "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [alb, "GroupId"]},
        }
    ]
    alb_egress = [
        rule["Properties"]
        for rule in resources(template, "AWS::EC2::SecurityGroupEgress").values()
        if rule["Properties"]["GroupId"]["Fn::GetAtt"][0] == alb
    ]
    assert [(rule["FromPort"], rule["DestinationSecurityGroupId"]["Fn::GetAtt"][0]) for rule in alb_egress] == [
        (8000, tasks)
    ]
    task_egress = sorted(
        (rule["Properties"]["FromPort"], rule["Properties"].get("CidrIp", "security group"))
        for rule in resources(template, "AWS::EC2::SecurityGroupEgress").values()
        if rule["Properties"]["GroupId"]["Fn::GetAtt"][0] == tasks
    ) + [(rule["FromPort"], rule["CidrIp"]) for rule in groups[tasks]["Properties"].get("SecurityGroupEgress", [])]
    assert sorted(task_egress) == [(443, "0.0.0.0/0"), (5433, "security group"), (6380, "security group")]


def test_task_role_is_least_privilege(template: dict[str, Any]) -> None:
    roles = resources(template, "AWS::IAM::Role")
    task_role = next(key for key, role in roles.items() if "application" in role["Properties"].get("Description", ""))
    statements = {statement["Sid"]: statement for owner, statement in iam_statements(template) if owner == task_role}
    assert set(statements) == {
        "ReadGitHubAppPrivateKey",
        "ReadAuditHmacKey",
        "DecryptSecretsWithDeploymentKey",
        "WriteAuditLog",
        "ReadPolicy",
    }
    secret = next(
        iter(
            k
            for k, v in resources(template, "AWS::SecretsManager::Secret").items()
            if "GitHub" in v["Properties"]["Description"]
        )
    )
    assert statements["ReadGitHubAppPrivateKey"]["Resource"] == {"Ref": secret}
    assert statements["ReadGitHubAppPrivateKey"]["Action"] == [
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    ]
    key = next(iter(resources(template, "AWS::KMS::Key")))
    decrypt = statements["DecryptSecretsWithDeploymentKey"]
    assert (decrypt["Action"], decrypt["Resource"]) == ("kms:Decrypt", {"Fn::GetAtt": [key, "Arn"]})
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}
    audit = next(
        k
        for k, v in resources(template, "AWS::Logs::LogGroup").items()
        if v["Properties"]["LogGroupName"] == "/mcp-bastion/prod/audit"
    )
    assert statements["WriteAuditLog"]["Resource"] == {"Fn::GetAtt": [audit, "Arn"]}
    # The CloudWatch audit sink reads its stream's tail back (GetLogEvents) before re-sending a batch.
    assert statements["WriteAuditLog"]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents", "logs:GetLogEvents"]
    assert statements["ReadPolicy"]["Action"] == "ssm:GetParameter"
    # The task role has no other policy attached (no managed policies, no generated default policy).
    assert "ManagedPolicyArns" not in roles[task_role]["Properties"]
    assert not [
        p for p in resources(template, "AWS::IAM::Policy").values() if {"Ref": task_role} in p["Properties"]["Roles"]
    ]


def test_audit_chain_is_sealed_with_a_generated_retained_key_the_task_role_may_read(template: dict[str, Any]) -> None:
    secret = audit_hmac_key_secret(template)
    assert env_of(_container(template))["BASTION_AUDIT__HMAC_KEY_SECRET"] == {"Ref": secret}
    task_role = only(template, "AWS::ECS::TaskDefinition")["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    statements = [statement for owner, statement in iam_statements(template) if owner == task_role]
    assert allows(statements, "secretsmanager:GetSecretValue", {"Ref": secret})
    assert template["Outputs"]["AuditHmacKeySecretArn"]["Value"] == {"Ref": secret}


def test_no_policy_grants_wildcard_actions_or_metric_writes(template: dict[str, Any]) -> None:
    for owner, statement in iam_statements(template):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if a == "*" or a.endswith(":*")], f"{owner}: {actions}"
        assert "cloudwatch:PutMetricData" not in actions, "metrics go through EMF on stdout"
        if statement["Resource"] == "*":
            # The only one: ECR's token call, which has no resource-level permission (acknowledged for cdk-nag).
            assert actions == ["ecr:GetAuthorizationToken"], f"{owner}: {statement}"


def test_container_follows_the_deploy_contract(template: dict[str, Any]) -> None:
    container = _container(template)
    environment = env_of(container)
    context = cdk_json_context()
    assert environment["BASTION_PUBLIC_URL"] == f"https://{context['domain_name']}/mcp"
    assert environment["BASTION_SERVER__TRUSTED_PROXIES"] == "1"
    assert json.loads(environment["BASTION_SERVER__ALLOWED_HOSTS"]) == [context["domain_name"]]
    assert environment["BASTION_POLICY__URL"] == "ssm:/mcp-bastion/prod/policy"
    assert json.loads(environment["BASTION_REPOS__BOOTSTRAP"]) == [
        {"url": f"https://github.com/{name}.git", "name": name} for name in context["allowed_repositories"]
    ]
    assert environment["BASTION_GITHUB__APP_ID"] == context["github_app_id"]
    assert json.loads(environment["BASTION_GITHUB__ORG_ALLOWLIST"]) == context["github_org_allowlist"]
    assert environment["BASTION_SECRETS__PROVIDER"] == "aws"
    assert json.loads(environment["BASTION_AUDIT__SINKS"]) == ["postgresql", "cloudwatch"]
    assert environment["BASTION_METRICS__EMF"] == "true"
    assert environment["BASTION_DATA_DIR"] == "/var/lib/bastion"
    assert environment["BASTION_STATE_URL"]["Fn::Join"][1][0] == "postgresql+psycopg://bastion@"
    for name, value in environment.items():
        assert "password" not in json.dumps(value).lower() or name == "BASTION_STATE_URL", name
    secrets = {item["Name"] for item in container["Secrets"]}
    assert secrets == {"BASTION_STATE_PASSWORD", "BASTION_RATE_LIMIT__STORAGE_URL"}
    assert container["User"] == "10001:10001"
    assert container["ReadonlyRootFilesystem"] is True
    assert container["PortMappings"] == [{"ContainerPort": 8000, "Protocol": "tcp"}]
    assert "/health" in container["HealthCheck"]["Command"][-1]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_service_runs_two_tasks_and_scales_on_cpu_and_requests(template: dict[str, Any]) -> None:
    service = only(template, "AWS::ECS::Service")["Properties"]
    assert service["DesiredCount"] == 2
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    target = only(template, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    metrics = sorted(
        policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        for policy in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    )
    assert metrics == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]


def test_secrets_and_logs_are_encrypted_with_the_rotating_customer_key(template: dict[str, Any]) -> None:
    key_id, key = next(iter(resources(template, "AWS::KMS::Key").items()))
    assert key["Properties"]["EnableKeyRotation"] is True
    for name, secret in resources(template, "AWS::SecretsManager::Secret").items():
        assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}, name
    groups = {
        group["Properties"]["LogGroupName"]: group for group in resources(template, "AWS::Logs::LogGroup").values()
    }
    assert groups["/mcp-bastion/prod/audit"]["Properties"]["RetentionInDays"] == 400
    assert groups["/mcp-bastion/prod/audit"]["DeletionPolicy"] == "Retain"
    assert groups["/mcp-bastion/prod/app"]["Properties"]["RetentionInDays"] == 90
    for name in ("/mcp-bastion/prod/audit", "/mcp-bastion/prod/app"):
        assert groups[name]["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}, name


def test_shared_state_is_private_encrypted_and_reachable_only_from_tasks(template: dict[str, Any]) -> None:
    database = only(template, "AWS::RDS::DBInstance")["Properties"]
    assert database["PubliclyAccessible"] is False
    assert (database["StorageEncrypted"], database["MultiAZ"], database["Port"]) == (True, True, "5433")
    redis = only(template, "AWS::ElastiCache::ReplicationGroup")["Properties"]
    assert redis["TransitEncryptionEnabled"] is True
    assert redis["AtRestEncryptionEnabled"] is True
    assert "{{resolve:secretsmanager:" in json.dumps(redis["AuthToken"])
    tasks = next(
        key
        for key, group in resources(template, "AWS::EC2::SecurityGroup").items()
        if "tasks:" in group["Properties"]["GroupDescription"]
    )
    for port in (5433, 6380):
        sources = [
            rule["Properties"]["SourceSecurityGroupId"]
            for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values()
            if rule["Properties"]["FromPort"] == port
        ]
        assert sources == [{"Fn::GetAtt": [tasks, "GroupId"]}], port
    url = next(
        s["Properties"]["SecretString"]
        for s in resources(template, "AWS::SecretsManager::Secret").values()
        if "SecretString" in s["Properties"]
    )
    assert url["Fn::Join"][1][0] == "rediss://:{{resolve:secretsmanager:", "the AUTH token must stay a reference"


def test_alarms_cover_seed_000_alerts_5xx_and_audit_lag_and_notify_by_email(template: dict[str, Any]) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }
    expressions = {name: json.dumps(alarm.get("Metrics", [])) for name, alarm in alarms.items()}
    prefix = "mcp-bastion-prod-"
    assert set(alarms) == {
        prefix + name
        for name in (
            "UnauthorizedAccessAttempts",
            "ExcessiveApiCalls",
            "UpstreamTokenExpiring",
            "SystemErrors",
            "Http5xx",
            "AuditSinkLag",
        )
    }
    denied = expressions[prefix + "UnauthorizedAccessAttempts"]
    assert '"MetricName": "Denials"' in denied
    assert '"Value": "policy"' in denied
    assert '"Value": "auth"' in denied
    assert "SUM(ToolCalls)" in expressions[prefix + "ExcessiveApiCalls"]
    assert "SUM(Errors)" in expressions[prefix + "SystemErrors"]
    token = alarms[prefix + "UpstreamTokenExpiring"]
    assert "MIN(UpstreamTokenSecondsToExpiry)" in expressions[prefix + "UpstreamTokenExpiring"]
    assert (token["ComparisonOperator"], token["Threshold"]) == ("LessThanThreshold", 600)
    lag = alarms[prefix + "AuditSinkLag"]
    assert "MAX(AuditSinkLagSeconds)" in expressions[prefix + "AuditSinkLag"]
    assert lag["Threshold"] == 300
    assert "HTTPCode_ELB_5XX_Count" in expressions[prefix + "Http5xx"]
    assert "HTTPCode_Target_5XX_Count" in expressions[prefix + "Http5xx"]
    topic = next(iter(resources(template, "AWS::SNS::Topic")))
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": topic}], name
    subscription = only(template, "AWS::SNS::Subscription")["Properties"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", cdk_json_context()["alarm_email"])
    assert "KmsMasterKeyId" in template["Resources"][topic]["Properties"]


def test_dashboard_shows_calls_denials_errors_latency_and_repository_access(template: dict[str, Any]) -> None:
    body = json.dumps(only(template, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for metric in ("ToolCalls", "Denials", "Errors", "Latency", "RepositoryAccess", "AuditSinkLagSeconds"):
        assert metric in body, metric


def test_existing_vpc_and_existing_state_use_the_given_ids(existing: dict[str, Any]) -> None:
    assert not resources(existing, "AWS::EC2::VPC")
    assert not resources(existing, "AWS::RDS::DBInstance")
    assert not resources(existing, "AWS::ElastiCache::ReplicationGroup")
    network = only(existing, "AWS::ECS::Service")["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["Subnets"] == EXISTING_VPC["private_subnet_ids"]
    balancer = only(existing, "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert balancer["Subnets"] == EXISTING_VPC["public_subnet_ids"]
    container = _container(existing)
    environment = env_of(container)
    assert environment["BASTION_STATE_URL"] == EXISTING_STATE["state_url"]
    assert json.loads(environment["BASTION_SERVER__IP_ALLOWLIST"]) == ["203.0.113.0/24"]
    assert environment["BASTION_AUTH__OIDC__ISSUER"] == "https://login.example.com/"
    assert {item["Name"]: item["ValueFrom"] for item in container["Secrets"]} == {
        "BASTION_STATE_PASSWORD": EXISTING_STATE["state_password_secret_arn"],
        "BASTION_RATE_LIMIT__STORAGE_URL": EXISTING_STATE["rate_limit_storage_url_secret_arn"],
    }
    alb = next(
        g
        for g in resources(existing, "AWS::EC2::SecurityGroup").values()
        if "load balancer" in g["Properties"]["GroupDescription"]
    )
    assert {rule["CidrIp"] for rule in alb["Properties"]["SecurityGroupIngress"]} == {"203.0.113.0/24"}
    decrypt = [s for _, s in iam_statements(existing) if s.get("Sid") == "DecryptExistingStateSecrets"]
    assert [s["Resource"] for s in decrypt] == [EXISTING_STATE["secrets_kms_key_arn"]]
    assert "NatEgressIps" not in existing["Outputs"]
