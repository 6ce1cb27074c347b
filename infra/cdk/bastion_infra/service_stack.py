"""BastionServiceStack: the container on ECS Fargate behind an HTTPS Application Load Balancer.

Request path: client -> ALB (HTTPS 443, HTTP 80 redirects) -> tasks in private subnets (port 8000) -> GitHub through
the NAT gateways' fixed addresses. Configuration reaches the container only as the environment variables of
docs/dev/deploy-contract.md; credentials as ECS-injected secrets or as secret names the application reads itself.
"""

# pyright: reportArgumentType=false
# (jsii bindings: a CDK class and its own interface differ in parameter names, e.g. Key.add_alias(alias_name)
# vs IKey.add_alias(alias), which pyright reports at every call that passes a Key where an IKey is expected.)

from __future__ import annotations

import json

from aws_cdk import Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .monitoring import BastionMonitoring, PlatformMetrics
from .nag import acknowledge
from .network import BastionNetwork
from .policy import PolicySource
from .security import audit_hmac_key_secret, bastion_key, encrypted_log_group, github_app_key_secret
from .settings import ServiceSettings, bootstrap_repositories
from .state import SharedState
from .waf import RateLimitedWebAcl

__all__ = ["CONTAINER_PORT", "BastionServiceStack"]

CONTAINER_PORT = 8000
_DATA_DIR = "/var/lib/bastion"
_HEALTH_PROBE = (
    "import sys, urllib.request; "
    f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/health', timeout=4).status == 200 else 1)"
)


class BastionServiceStack(Stack):
    """VPC (or an existing one), ALB, ECS Fargate service, secrets, logs, alarms, dashboard, optional shared state."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: ServiceSettings, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        name = f"mcp-bastion-{settings.environment}"

        self.key = bastion_key(self, settings.prefix)
        self.log_bucket = self._log_bucket()
        self.network = BastionNetwork(
            self,
            "Network",
            name=name,
            existing=settings.existing_vpc,
            flow_log_destination=ec2.FlowLogDestination.to_s3(self.log_bucket, "vpc-flow-logs/"),
        )
        vpc = self.network.vpc
        self.app_log_group = encrypted_log_group(
            self, "AppLogs", name=f"{settings.prefix}/app", key=self.key, days=settings.log_retention_days, keep=False
        )
        self.audit_log_group = encrypted_log_group(
            self,
            "AuditLogs",
            name=f"{settings.prefix}/audit",
            key=self.key,
            days=settings.audit_retention_days,
            keep=True,
        )
        self.github_key_secret = github_app_key_secret(self, name=name, key=self.key)
        self.audit_hmac_key = audit_hmac_key_secret(self, name=name, key=self.key)
        self.policy = PolicySource(self, "Policy", name=f"{settings.prefix}/policy", policy_file=settings.policy_file)

        self.alb_security_group = ec2.SecurityGroup(
            self, "LoadBalancerSecurityGroup", vpc=vpc, description=f"{name} load balancer", allow_all_outbound=False
        )
        self.task_security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=vpc,
            description=f"{name} tasks: in from the load balancer only; out to GitHub and AWS APIs",
            # Existing PostgreSQL/Redis may live anywhere on any port; otherwise egress is HTTPS plus the state
            # endpoints the stack creates (DNS and the task metadata endpoint are not filtered by security groups).
            allow_all_outbound=settings.shared_state == "existing",
        )
        if settings.shared_state != "existing":
            self.task_security_group.add_egress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to GitHub and AWS APIs (through the NAT gateways)"
            )
        self.task_security_group.add_ingress_rule(
            self.alb_security_group, ec2.Port.tcp(CONTAINER_PORT), "load balancer to tasks"
        )
        self.alb_security_group.add_egress_rule(
            self.task_security_group, ec2.Port.tcp(CONTAINER_PORT), "load balancer to tasks"
        )
        for cidr in settings.ingress_cidrs:
            self.alb_security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from clients")
            self.alb_security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(80), "redirected to HTTPS")

        self.shared_state = (
            SharedState(
                self,
                "SharedState",
                name=name,
                vpc=vpc,
                subnets=self.network.state_subnets,
                clients=self.task_security_group,
                key=self.key,
                database_instance_type=settings.database_instance_type,
                cache_node_type=settings.cache_node_type,
                log_retention_days=settings.log_retention_days,
            )
            if settings.shared_state == "create"
            else None
        )

        self.task_role = self._task_role()
        self.task_definition = self._task_definition()
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, cluster_name=name, container_insights_v2=ecs.ContainerInsights.ENHANCED
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            service_name=name,
            task_definition=self.task_definition,
            desired_count=settings.desired_count,
            vpc_subnets=self.network.task_subnets,
            security_groups=[self.task_security_group],
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(120),
            platform_version=ecs.FargatePlatformVersion.LATEST,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.load_balancer, self.target_group = self._load_balancer()
        # Unauthenticated floods: the application limits per authenticated subject, this per source address.
        RateLimitedWebAcl(self, "Waf", name=name, resource_arn=self.load_balancer.load_balancer_arn)
        self._autoscaling()
        self.monitoring = self._monitoring(name)
        self._outputs()
        self._acknowledgments()

    # --- pieces ----------------------------------------------------------------------------------------------

    def _log_bucket(self) -> s3.Bucket:
        """ALB access logs and VPC flow logs. ALB log delivery supports only SSE-S3, hence no KMS here."""
        return s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(400), noncurrent_version_expiration=Duration.days(30))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _task_role(self) -> iam.Role:
        """What the application itself calls: the named secrets, the key (through Secrets Manager), the audit log
        group, the policy. Metrics need nothing: EMF lines on stdout become metrics through the awslogs driver."""
        region = Stack.of(self).region
        statements = [
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
            iam.PolicyStatement(
                sid="WriteAuditLog",
                # GetLogEvents: the audit sink reads its stream's tail back before its first write and after a
                # failed one, so a retried batch is never delivered twice (docs/audit.md).
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:GetLogEvents"],
                resources=[self.audit_log_group.log_group_arn],
            ),
            *self.policy.read_statements(),
        ]
        return iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal(
                "ecs-tasks.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
            description="mcp-bastion application: GitHub App key, audit log and its HMAC key, policy",
            inline_policies={"bastion": iam.PolicyDocument(statements=statements)},
        )

    def _environment(self) -> dict[str, str]:
        settings = self.settings
        sinks = ["postgresql", "cloudwatch"] if settings.shared_state != "none" else ["sqlite", "cloudwatch"]
        environment = {
            "BASTION_DATA_DIR": _DATA_DIR,
            "BASTION_PUBLIC_URL": settings.public_url,
            "BASTION_SERVER__TRUSTED_PROXIES": "1",
            "BASTION_SERVER__ALLOWED_HOSTS": json.dumps([settings.domain_name]),
            "BASTION_POLICY__URL": self.policy.url,
            "BASTION_POLICY__RELOAD_CHECK_SECONDS": "30",
            "BASTION_REPOS__BOOTSTRAP": bootstrap_repositories(settings.allowed_repositories),
            "BASTION_REPOS__SYNC_INTERVAL_SECONDS": "300",
            "BASTION_GITHUB__APP_ID": settings.github_app_id,
            "BASTION_GITHUB__PRIVATE_KEY_SECRET": self.github_key_secret.secret_arn,
            "BASTION_GITHUB__API_URL": "https://api.github.com",
            "BASTION_GITHUB__ORG_ALLOWLIST": json.dumps(list(settings.github_org_allowlist)),
            "BASTION_SECRETS__PROVIDER": "aws",
            "BASTION_SECRETS__CACHE_SECONDS": "300",
            "BASTION_AUDIT__SINKS": json.dumps(sinks),
            "BASTION_AUDIT__CLOUDWATCH__LOG_GROUP": self.audit_log_group.log_group_name,
            "BASTION_AUDIT__HMAC_KEY_SECRET": self.audit_hmac_key.secret_arn,
            "BASTION_METRICS__EMF": "true",
            "BASTION_LOG__JSON_FORMAT": "true",
        }
        if settings.ip_allowlist:
            environment["BASTION_SERVER__IP_ALLOWLIST"] = json.dumps(list(settings.ip_allowlist))
        environment.update(settings.app_settings)
        if self.shared_state is not None:
            environment["BASTION_STATE_URL"] = self.shared_state.state_url
        elif settings.existing_state is not None:
            environment["BASTION_STATE_URL"] = settings.existing_state.state_url
        return environment

    def _secrets(self) -> dict[str, ecs.Secret]:
        """Credentials ECS injects at task start (the execution role reads them, the application role does not)."""
        if self.shared_state is not None:
            return {
                "BASTION_STATE_PASSWORD": ecs.Secret.from_secrets_manager(
                    self.shared_state.database_secret, "password"
                ),
                "BASTION_RATE_LIMIT__STORAGE_URL": ecs.Secret.from_secrets_manager(
                    self.shared_state.rate_limit_url_secret
                ),
            }
        existing = self.settings.existing_state
        if existing is None:
            return {}
        return {
            "BASTION_STATE_PASSWORD": ecs.Secret.from_secrets_manager(
                secretsmanager.Secret.from_secret_complete_arn(
                    self, "ExistingStatePassword", existing.state_password_secret_arn
                )
            ),
            "BASTION_RATE_LIMIT__STORAGE_URL": ecs.Secret.from_secrets_manager(
                secretsmanager.Secret.from_secret_complete_arn(
                    self, "ExistingRateLimitUrl", existing.rate_limit_storage_url_secret_arn
                )
            ),
        }

    def _task_definition(self) -> ecs.FargateTaskDefinition:
        settings = self.settings
        task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=f"mcp-bastion-{settings.environment}",
            cpu=settings.cpu,
            memory_limit_mib=settings.memory_mib,
            ephemeral_storage_gib=settings.ephemeral_storage_gib,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
            ),
        )
        # The root filesystem is read-only; mirrors, worktrees and the audit spool live on task storage.
        task_definition.add_volume(name="data")
        task_definition.add_volume(name="tmp")
        repository = ecr.Repository.from_repository_name(self, "ImageRepository", settings.ecr_repository_name)
        container = task_definition.add_container(
            "bastion",
            image=ecs.ContainerImage.from_ecr_repository(repository, settings.image_tag),
            user="10001:10001",
            readonly_root_filesystem=True,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, protocol=ecs.Protocol.TCP)],
            environment=self._environment(),
            secrets=self._secrets(),
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="bastion", log_group=self.app_log_group, mode=ecs.AwsLogDriverMode.NON_BLOCKING
            ),
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", _HEALTH_PROBE],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
            stop_timeout=Duration.seconds(30),
        )
        container.add_mount_points(
            ecs.MountPoint(container_path=_DATA_DIR, source_volume="data", read_only=False),
            ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False),  # noqa: S108 - task volume
        )
        existing = settings.existing_state
        if existing is not None and existing.secrets_kms_key_arn and task_definition.execution_role is not None:
            task_definition.execution_role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="DecryptExistingStateSecrets",
                    actions=["kms:Decrypt"],
                    resources=[existing.secrets_kms_key_arn],
                )
            )
        return task_definition

    def _load_balancer(self) -> tuple[elbv2.ApplicationLoadBalancer, elbv2.ApplicationTargetGroup]:
        settings = self.settings
        load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=self.network.vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=self.alb_security_group,
            drop_invalid_header_fields=True,
            # Streamable HTTP keeps an SSE response open while a long tool call runs.
            idle_timeout=Duration.seconds(300),
        )
        load_balancer.log_access_logs(self.log_bucket, "alb")
        target_group = elbv2.ApplicationTargetGroup(
            self,
            "TargetGroup",
            vpc=self.network.vpc,
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path="/health",
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        self.service.attach_to_application_target_group(target_group)
        load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_arn(settings.certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            default_target_groups=[target_group],
            open=False,  # ingress is the security group's rules above, from `ingress_cidrs`
        )
        load_balancer.add_listener(
            "HttpRedirect",
            port=80,
            protocol=elbv2.ApplicationProtocol.HTTP,
            default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port="443", permanent=True),
            open=False,
        )
        return load_balancer, target_group

    def _autoscaling(self) -> None:
        scaling = self.service.auto_scale_task_count(
            min_capacity=self.settings.desired_count, max_capacity=self.settings.max_count
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=60,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
        scaling.scale_on_request_count(
            "Requests",
            requests_per_target=1000,
            target_group=self.target_group,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )

    def _monitoring(self, name: str) -> BastionMonitoring:
        metrics = self.load_balancer.metrics
        five_minutes = Duration.minutes(5)
        http_5xx = cw.MathExpression(
            expression="FILL(elb, 0) + FILL(target, 0)",
            using_metrics={
                "elb": metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=five_minutes),
                "target": metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=five_minutes),
            },
            label="HTTP 5xx (load balancer + tasks)",
            period=five_minutes,
        )
        return BastionMonitoring(
            self,
            "Monitoring",
            name_prefix=name,
            key=self.key,
            thresholds=self.settings.thresholds,
            alarm_email=self.settings.alarm_email,
            platform=PlatformMetrics(
                http_5xx=http_5xx,
                requests=metrics.request_count(period=five_minutes),
                latency=metrics.target_response_time(period=five_minutes, statistic="p95"),
                extra_widgets=[
                    cw.GraphWidget(
                        title="ECS CPU / memory (%)",
                        left=[self.service.metric_cpu_utilization(), self.service.metric_memory_utilization()],
                        width=8,
                        height=6,
                    ),
                    cw.GraphWidget(
                        title="Healthy / unhealthy tasks",
                        left=[
                            self.target_group.metrics.healthy_host_count(),
                            self.target_group.metrics.unhealthy_host_count(),
                        ],
                        width=8,
                        height=6,
                    ),
                ],
            ),
        )

    def _outputs(self) -> None:
        if self.network.nat_ips:
            for index, address in enumerate(self.network.nat_ips, start=1):
                CfnOutput(self, f"NatEgressIp{index}", value=address, description=f"NAT gateway {index} public address")
            CfnOutput(
                self,
                "NatEgressIps",
                value=Fn.join(",", self.network.nat_ips),
                description="Add these addresses to the GitHub organization's IP allow list",
            )
        CfnOutput(self, "LoadBalancerDnsName", value=self.load_balancer.load_balancer_dns_name)
        CfnOutput(
            self, "McpUrl", value=self.settings.public_url, description="Point the domain's DNS at the load balancer"
        )
        CfnOutput(self, "GitHubAppKeySecretArn", value=self.github_key_secret.secret_arn)
        CfnOutput(self, "AuditHmacKeySecretArn", value=self.audit_hmac_key.secret_arn)
        CfnOutput(self, "PolicyLocation", value=self.policy.url)
        CfnOutput(self, "AuditLogGroupName", value=self.audit_log_group.log_group_name)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "ServiceName", value=self.service.service_name)

    def _acknowledgments(self) -> None:
        """cdk-nag findings that are deliberate here, each with its reason (see docs/deploy-aws.md)."""
        acknowledge(self.log_bucket, "AwsSolutions-S1", "This bucket is the access-log destination itself.")
        if "0.0.0.0/0" in self.settings.ingress_cidrs:
            acknowledge(
                self.alb_security_group,
                "AwsSolutions-EC23",
                "The HTTPS endpoint serves developers' assistants from anywhere by default; every call is "
                "authenticated by the application, and `ingress_cidrs` narrows it to the company's ranges.",
            )
        acknowledge(
            self.github_key_secret,
            "AwsSolutions-SMG4",
            "A GitHub App private key is generated in GitHub's UI; no API exists for a rotation Lambda to call. "
            "Rotation is the documented manual procedure, and the application re-reads the secret every 300 s.",
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The environment holds only non-secret settings (docs/dev/deploy-contract.md); credentials are ECS "
            "secrets or secret ARNs that the task role may read.",
        )
        execution_role = self.task_definition.execution_role
        if execution_role is not None:
            acknowledge(
                execution_role,
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken supports no resource-level permission; the pull actions are scoped to "
                "the one repository.",
            )
        if self.shared_state is not None:
            state = self.shared_state
            reason = (
                "ECS injects this credential at task start, so rotating it needs a new deployment; the runbook in "
                "docs/deploy-aws.md rotates it and then forces a new deployment."
            )
            for secret in (state.database_secret, state.redis_auth_secret, state.rate_limit_url_secret):
                acknowledge(secret, "AwsSolutions-SMG4", reason)
