"""BastionLambdaStack: the same application on Lambda behind API Gateway (REST), for small or spiky use.

API Gateway cannot stream, so the function runs in stateless JSON mode; repositories come from GitHub's REST API
(no disk to mirror on). Callers authenticate with a Cognito client-credentials token checked by the gateway
(seed 004), or, without Cognito, by the application itself (API keys / OIDC). A WAF rate rule and stage throttling
bound the traffic before it reaches the function; the application's per-caller limits come after.
"""

# pyright: reportArgumentType=false
# (jsii bindings: a CDK class and its own interface differ in parameter names, e.g. Key.add_alias(alias_name)
# vs IKey.add_alias(alias), which pyright reports at every call that passes a Key where an IKey is expected.)

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .monitoring import BastionMonitoring, PlatformMetrics
from .nag import acknowledge
from .network import BastionNetwork
from .policy import PolicySource
from .security import audit_hmac_key_secret, bastion_key, encrypted_log_group, github_app_key_secret
from .settings import LambdaSettings, bootstrap_repositories
from .waf import RateLimitedWebAcl

__all__ = ["HANDLER", "READ_SCOPE", "RESOURCE_SERVER_ID", "BastionLambdaStack"]

HANDLER = "bastion.aws.lambda_handler.handler"
RESOURCE_SERVER_ID = "mcp-bastion"
READ_SCOPE = f"{RESOURCE_SERVER_ID}/read"
_TIMEOUT = Duration.seconds(29)  # API Gateway REST gives up after 29 s


@dataclass(frozen=True)
class _CognitoPieces:
    pool: cognito.UserPool
    client: cognito.UserPoolClient
    authorizer: apigw.CognitoUserPoolsAuthorizer
    token_url: str
    issuer: str


class BastionLambdaStack(Stack):
    """Function, REST API with throttling, access logs and WAF, optional Cognito client credentials and VPC."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: LambdaSettings, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        name = f"mcp-bastion-{settings.environment}-lambda"
        self.stage_name = settings.environment
        prefix = f"{settings.prefix}/lambda"

        self.key = bastion_key(self, settings.prefix)
        self.function_log_group = encrypted_log_group(
            self, "FunctionLogs", name=f"{prefix}/function", key=self.key, days=settings.log_retention_days, keep=False
        )
        self.access_log_group = encrypted_log_group(
            self, "AccessLogs", name=f"{prefix}/api-access", key=self.key, days=settings.log_retention_days, keep=False
        )
        self.audit_log_group = encrypted_log_group(
            self,
            "AuditLogs",
            # Beside, not on, the service stack's `<prefix>/audit`: both variants of one environment can coexist.
            name=f"{prefix}/audit",
            key=self.key,
            days=settings.audit_retention_days,
            keep=True,
        )
        self.github_key_secret = github_app_key_secret(self, name=name, key=self.key)
        self.audit_hmac_key = audit_hmac_key_secret(self, name=name, key=self.key)
        self.policy = PolicySource(self, "Policy", name=f"{prefix}/policy", policy_file=settings.policy_file)
        self.network = self._network(name, prefix) if settings.in_vpc else None

        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=name,
            description="mcp-bastion MCP endpoint (stateless JSON)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # With a custom domain it is the only entry: it maps the stage at its root, so /mcp and the RFC 9728
            # metadata under /.well-known line up with BASTION_PUBLIC_URL.
            disable_execute_api_endpoint=bool(settings.domain_name),
            cloud_watch_role=settings.create_apigateway_log_role,
            deploy_options=apigw.StageOptions(
                stage_name=self.stage_name,
                throttling_rate_limit=settings.throttle_rate,
                throttling_burst_limit=settings.throttle_burst,
                access_log_destination=apigw.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies may name private paths: keep them out of logs
                metrics_enabled=True,
            ),
        )
        if settings.domain_name and settings.certificate_arn:
            self.domain = self.api.add_domain_name(
                "Domain",
                domain_name=settings.domain_name,
                certificate=acm.Certificate.from_certificate_arn(self, "Certificate", settings.certificate_arn),
                endpoint_type=apigw.EndpointType.REGIONAL,
                security_policy=apigw.SecurityPolicy.TLS_1_2,
            )
        else:
            self.domain = None
        self.api.add_request_validator("Validator", validate_request_parameters=True, validate_request_body=True)
        self.public_url = (
            f"https://{settings.domain_name}/mcp"
            if settings.domain_name
            else f"https://{self.api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/{self.stage_name}/mcp"
        )
        self.cognito = self._cognito(name) if settings.cognito else None
        self.role = self._role()
        self.function = self._function()
        self._routes()
        RateLimitedWebAcl(self, "Waf", name=name, resource_arn=self.api.deployment_stage.stage_arn)
        self.monitoring = self._monitoring(name)
        self._outputs()
        self._acknowledgments()

    # --- pieces ----------------------------------------------------------------------------------------------

    def _network(self, name: str, prefix: str) -> BastionNetwork:
        flow_logs = encrypted_log_group(
            self,
            "FlowLogs",
            name=f"{prefix}/vpc-flow-logs",
            key=self.key,
            days=self.settings.log_retention_days,
            keep=False,
        )
        return BastionNetwork(
            self,
            "Network",
            name=name,
            existing=self.settings.existing_vpc,
            flow_log_destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            cidr="10.41.0.0/16",
        )

    def _cognito(self, name: str) -> _CognitoPieces:
        pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=name,
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True),
            password_policy=cognito.PasswordPolicy(
                min_length=16,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            deletion_protection=True,
        )
        resource_server = pool.add_resource_server(
            "ResourceServer",
            identifier=RESOURCE_SERVER_ID,
            user_pool_resource_server_name=name,
            scopes=[cognito.ResourceServerScope(scope_name="read", scope_description="Read repositories through MCP")],
        )
        domain_prefix = self.settings.cognito_domain_prefix or name
        pool.add_domain("Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix))
        client = pool.add_client(
            "Client",
            user_pool_client_name=f"{name}-client-credentials",
            generate_secret=True,
            auth_flows=cognito.AuthFlow(user_password=False, user_srp=False, custom=False, admin_user_password=False),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=[
                    cognito.OAuthScope.resource_server(
                        resource_server,
                        cognito.ResourceServerScope(
                            scope_name="read", scope_description="Read repositories through MCP"
                        ),
                    )
                ],
            ),
            access_token_validity=Duration.hours(1),
            prevent_user_existence_errors=True,
        )
        authorizer = apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[pool])
        token_url = f"https://{domain_prefix}.auth.{Aws.REGION}.amazoncognito.com/oauth2/token"
        # The `iss` claim of Cognito tokens (the pool's ProviderURL attribute lacks the scheme).
        issuer = f"https://cognito-idp.{Aws.REGION}.{Aws.URL_SUFFIX}/{pool.user_pool_id}"
        return _CognitoPieces(pool=pool, client=client, authorizer=authorizer, token_url=token_url, issuer=issuer)

    def _role(self) -> iam.Role:
        region = Stack.of(self).region
        statements = [
            iam.PolicyStatement(
                sid="WriteFunctionAndAuditLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.function_log_group.log_group_arn, self.audit_log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                # The audit sink reads its stream's tail back before its first write and after a failed one, so a
                # retried batch is never delivered twice (docs/audit.md).
                sid="ReadBackAuditLog",
                actions=["logs:GetLogEvents"],
                resources=[self.audit_log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="ReadGitHubAppPrivateKey",
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[self.github_key_secret.secret_arn],
            ),
            iam.PolicyStatement(
                sid="ReadAuditHmacKey",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.audit_hmac_key.secret_arn],
            ),
            iam.PolicyStatement(
                sid="DecryptSecretsWithDeploymentKey",
                actions=["kms:Decrypt"],
                resources=[self.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
            ),
            *self.policy.read_statements(),
        ]
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="mcp-bastion Lambda: its logs, the audit log and its HMAC key, the GitHub App key, the policy",
            inline_policies={"bastion": iam.PolicyDocument(statements=statements)},
        )
        if self.network is not None:
            # Lambda creates and deletes the function's network interfaces with the function's own role.
            role.add_managed_policy(
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
            )
        return role

    def _environment(self) -> dict[str, str]:
        settings = self.settings
        host = Fn.select(2, Fn.split("/", self.public_url))
        environment = {
            "BASTION_DATA_DIR": "/tmp/bastion",  # noqa: S108 - Lambda's only writable place
            "BASTION_PUBLIC_URL": self.public_url,
            "BASTION_SERVER__TRUSTED_PROXIES": "0",
            "BASTION_SERVER__JSON_RESPONSE": "true",
            "BASTION_SERVER__ALLOWED_HOSTS": Fn.join("", ['["', host, '"]']),
            "BASTION_REPOS__BACKEND": "github",
            "BASTION_REPOS__BOOTSTRAP": bootstrap_repositories(settings.allowed_repositories),
            "BASTION_POLICY__URL": self.policy.url,
            "BASTION_POLICY__RELOAD_CHECK_SECONDS": "30",
            "BASTION_GITHUB__APP_ID": settings.github_app_id,
            "BASTION_GITHUB__PRIVATE_KEY_SECRET": self.github_key_secret.secret_arn,
            "BASTION_GITHUB__API_URL": "https://api.github.com",
            "BASTION_GITHUB__ORG_ALLOWLIST": json.dumps(list(settings.github_org_allowlist)),
            "BASTION_SECRETS__PROVIDER": "aws",
            "BASTION_SECRETS__CACHE_SECONDS": "300",
            "BASTION_AUDIT__SINKS": json.dumps(["cloudwatch"]),
            "BASTION_AUDIT__CLOUDWATCH__LOG_GROUP": self.audit_log_group.log_group_name,
            "BASTION_AUDIT__HMAC_KEY_SECRET": self.audit_hmac_key.secret_arn,
            "BASTION_METRICS__EMF": "true",
            "BASTION_LOG__JSON_FORMAT": "true",
        }
        if self.cognito is not None:
            environment.update(
                {
                    "BASTION_AUTH__TRUST_GATEWAY_AUTHORIZER": "true",
                    "BASTION_AUTH__OIDC__ISSUER": self.cognito.issuer,
                    "BASTION_AUTH__OIDC__AUDIENCES": Fn.join("", ['["', self.cognito.client.user_pool_client_id, '"]']),
                    "BASTION_AUTH__OIDC__GROUPS_CLAIM": "cognito:groups",
                    "BASTION_AUTH__OIDC__REQUIRED_SCOPES": json.dumps([READ_SCOPE]),
                }
            )
        environment.update(settings.app_settings)
        return environment

    def _function(self) -> lambda_.Function:
        network = self.network
        security_group = (
            ec2.SecurityGroup(
                self,
                "FunctionSecurityGroup",
                vpc=network.vpc,
                description="mcp-bastion Lambda: no inbound; out to GitHub and AWS APIs",
                allow_all_outbound=True,
            )
            if network is not None
            else None
        )
        return lambda_.Function(
            self,
            "Function",
            description="mcp-bastion MCP server (stateless JSON over API Gateway)",
            runtime=lambda_.Runtime.PYTHON_3_11,
            architecture=lambda_.Architecture.X86_64,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(self.settings.lambda_asset_dir)),
            memory_size=self.settings.memory_mib,
            timeout=_TIMEOUT,
            role=self.role,
            environment=self._environment(),
            log_group=self.function_log_group,
            vpc=network.vpc if network is not None else None,
            vpc_subnets=network.task_subnets if network is not None else None,
            security_groups=[security_group] if security_group is not None else None,
        )

    def _routes(self) -> None:
        integration = apigw.LambdaIntegration(self.function, proxy=True)
        mcp = self.api.root.add_resource("mcp")
        if self.cognito is not None:
            self.mcp_method = mcp.add_method(
                "POST",
                integration,
                authorizer=self.cognito.authorizer,
                authorization_type=apigw.AuthorizationType.COGNITO,
                authorization_scopes=[READ_SCOPE],
            )
            # The gateway answers 401 itself; give clients the RFC 9728 pointer the application would have sent.
            metadata_url = self.public_url.removesuffix("/mcp") + "/.well-known/oauth-protected-resource/mcp"
            self.api.add_gateway_response(
                "Unauthorized",
                type=apigw.ResponseType.UNAUTHORIZED,
                status_code="401",
                response_headers={
                    "WWW-Authenticate": Fn.join("", ["'Bearer resource_metadata=\"", metadata_url, "\"'"])
                },
            )
        else:
            self.mcp_method = mcp.add_method("POST", integration)
        # Public by protocol: the load-balancer-style probe and the OAuth protected-resource metadata (RFC 9728).
        self.public_methods = [
            self.api.root.add_resource("health").add_method("GET", integration),
            self.api.root.add_resource(".well-known").add_resource("{proxy+}").add_method("GET", integration),
        ]

    def _monitoring(self, name: str) -> BastionMonitoring:
        five_minutes = Duration.minutes(5)
        function_errors = self.function.metric_errors(period=five_minutes, statistic="Sum")
        return BastionMonitoring(
            self,
            "Monitoring",
            name_prefix=name,
            key=self.key,
            thresholds=self.settings.thresholds,
            alarm_email=self.settings.alarm_email,
            platform=PlatformMetrics(
                http_5xx=self.api.metric_server_error(period=five_minutes, statistic="Sum"),
                requests=self.api.metric_count(period=five_minutes, statistic="Sum"),
                latency=self.api.metric_latency(period=five_minutes, statistic="p95"),
                extra_widgets=[
                    cw.GraphWidget(
                        title="Lambda invocations, errors, throttles",
                        left=[
                            self.function.metric_invocations(period=five_minutes),
                            function_errors,
                            self.function.metric_throttles(period=five_minutes),
                        ],
                        width=8,
                        height=6,
                    ),
                    cw.GraphWidget(
                        title="Lambda duration p95 (ms)",
                        left=[self.function.metric_duration(period=five_minutes, statistic="p95")],
                        width=8,
                        height=6,
                    ),
                ],
                extra_alarms=[
                    (
                        "FunctionErrors",
                        function_errors,
                        self.settings.thresholds.errors,
                        "Lambda invocation errors (crashes, timeouts) above the threshold in 5 min.",
                    )
                ],
            ),
        )

    def _outputs(self) -> None:
        CfnOutput(self, "McpUrl", value=self.public_url, description="The MCP endpoint clients use")
        if self.domain is not None:
            CfnOutput(
                self,
                "DomainTarget",
                value=self.domain.domain_name_alias_domain_name,
                description="Point domain_name here (CNAME, or a Route 53 alias with DomainTargetZoneId)",
            )
            CfnOutput(self, "DomainTargetZoneId", value=self.domain.domain_name_alias_hosted_zone_id)
        CfnOutput(self, "FunctionName", value=self.function.function_name)
        CfnOutput(self, "FunctionLogGroupName", value=self.function_log_group.log_group_name)
        CfnOutput(self, "AuditLogGroupName", value=self.audit_log_group.log_group_name)
        CfnOutput(self, "GitHubAppKeySecretArn", value=self.github_key_secret.secret_arn)
        CfnOutput(self, "AuditHmacKeySecretArn", value=self.audit_hmac_key.secret_arn)
        CfnOutput(self, "PolicyLocation", value=self.policy.url)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        if self.cognito is not None:
            CfnOutput(self, "TokenUrl", value=self.cognito.token_url, description="OAuth client-credentials endpoint")
            CfnOutput(self, "ClientId", value=self.cognito.client.user_pool_client_id)
            CfnOutput(self, "UserPoolId", value=self.cognito.pool.user_pool_id)
            CfnOutput(self, "Scope", value=READ_SCOPE)
        if self.network is not None and self.network.nat_ips:
            CfnOutput(
                self,
                "NatEgressIps",
                value=Fn.join(",", self.network.nat_ips),
                description="Add these addresses to the GitHub organization's IP allow list",
            )

    def _acknowledgments(self) -> None:
        acknowledge(
            self.github_key_secret,
            "AwsSolutions-SMG4",
            "A GitHub App private key is generated in GitHub's UI; no API exists for a rotation Lambda to call. "
            "Rotation is the documented manual procedure, and the application re-reads the secret every 300 s.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "The deployment package is built for Python 3.11 (scripts/build-lambda.sh, the project's supported "
            "Python); the runtime moves with the package, not ahead of it.",
        )
        for method in self.public_methods:
            for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                acknowledge(
                    method,
                    rule,
                    "Public by protocol: /health returns a constant and RFC 9728 protected-resource metadata must be "
                    "readable before a client holds a token; neither touches repositories.",
                )
        if self.cognito is None:
            for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                acknowledge(
                    self.mcp_method,
                    rule,
                    "Without Cognito the function authenticates every MCP call itself (API keys or OIDC JWTs) and "
                    "answers 401 with RFC 9728 metadata, so a gateway authorizer would only duplicate it.",
                )
        else:
            acknowledge(
                self.cognito.pool,
                "AwsSolutions-COG8",
                "The pool has no human users: machine clients use OAuth client credentials, which threat protection "
                "(the Plus plan's advanced security) does not evaluate.",
            )
        if self.settings.create_apigateway_log_role:
            acknowledge(
                self.api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                "The account-wide API Gateway logging role (create_apigateway_log_role) uses the AWS policy made for "
                "it; it lets API Gateway write execution and access logs and nothing else.",
            )
        if self.network is not None:
            acknowledge(
                self.role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
                "CDK attaches AWS's policy for the network-interface lifecycle Lambda performs in a VPC; "
                "ec2:Describe* has no resource-level permissions to narrow it.",
            )
