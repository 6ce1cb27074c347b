"""Shared state for more than one task: PostgreSQL (keys, registry, audit) and Redis (rate-limit counters).

Both sit in isolated subnets, accept connections only from the tasks' security group, encrypt at rest with the
deployment key and in transit with TLS, and listen on non-default ports. The application receives:
- `BASTION_STATE_URL` (no password) and `BASTION_STATE_PASSWORD` (injected from the generated secret);
- `BASTION_RATE_LIMIT__STORAGE_URL`, a secret holding `rediss://:<auth token>@<endpoint>:<port>/0`, assembled by
  CloudFormation from the AUTH-token secret through a dynamic reference, so the token never appears in a template.
"""

# pyright: reportArgumentType=false
# (jsii bindings: a CDK class and its own interface differ in parameter names, e.g. Key.add_alias(alias_name)
# vs IKey.add_alias(alias), which pyright reports at every call that passes a Key where an IKey is expected.)

from __future__ import annotations

from aws_cdk import Duration, Fn, RemovalPolicy, SecretValue
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .security import retention

__all__ = ["DATABASE_PORT", "REDIS_PORT", "SharedState"]

DATABASE_PORT = 5433
REDIS_PORT = 6380
_DATABASE_NAME = "bastion"
_DATABASE_USER = "bastion"


class SharedState(Construct):
    """RDS PostgreSQL (Multi-AZ) and ElastiCache Redis (two nodes, automatic failover), reachable from `clients`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        clients: ec2.ISecurityGroup,
        key: kms.IKey,
        database_instance_type: str,
        cache_node_type: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self._database(name, vpc, subnets, clients, key, database_instance_type, log_retention_days)
        self._redis(name, vpc, subnets, clients, key, cache_node_type)

    def _database(
        self,
        name: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        clients: ec2.ISecurityGroup,
        key: kms.IKey,
        instance_type: str,
        log_retention_days: int,
    ) -> None:
        security_group = ec2.SecurityGroup(
            self, "DatabaseSecurityGroup", vpc=vpc, description=f"{name} PostgreSQL", allow_all_outbound=False
        )
        security_group.add_ingress_rule(clients, ec2.Port.tcp(DATABASE_PORT), "bastion tasks only")
        clients.add_egress_rule(security_group, ec2.Port.tcp(DATABASE_PORT), "to PostgreSQL")
        self.database_secret = rds.DatabaseSecret(
            self, "DatabaseSecret", username=_DATABASE_USER, secret_name=f"{name}/state-db", encryption_key=key
        )
        identifier = f"{name}-state"
        # Created here (not through `cloudwatch_logs_retention`, which adds a custom-resource Lambda) so the
        # exported PostgreSQL log has a retention.
        log_group = logs.LogGroup(
            self,
            "DatabaseLog",
            log_group_name=f"/aws/rds/instance/{identifier}/postgresql",
            retention=retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            instance_identifier=identifier,
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType(instance_type),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            port=DATABASE_PORT,
            database_name=_DATABASE_NAME,
            credentials=rds.Credentials.from_secret(self.database_secret),
            multi_az=True,
            storage_encrypted=True,
            storage_encryption_key=key,
            allocated_storage=20,
            max_allocated_storage=200,
            backup_retention=Duration.days(14),
            deletion_protection=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
            cloudwatch_logs_exports=["postgresql"],
            auto_minor_version_upgrade=True,
            publicly_accessible=False,
            iam_authentication=True,
        )
        self.database.node.add_dependency(log_group)
        self.state_url = (
            f"postgresql+psycopg://{_DATABASE_USER}@{self.database.db_instance_endpoint_address}:"
            f"{DATABASE_PORT}/{_DATABASE_NAME}?sslmode=require"
        )

    def _redis(
        self,
        name: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        clients: ec2.ISecurityGroup,
        key: kms.IKey,
        node_type: str,
    ) -> None:
        security_group = ec2.SecurityGroup(
            self, "RedisSecurityGroup", vpc=vpc, description=f"{name} Redis", allow_all_outbound=False
        )
        security_group.add_ingress_rule(clients, ec2.Port.tcp(REDIS_PORT), "bastion tasks only")
        clients.add_egress_rule(security_group, ec2.Port.tcp(REDIS_PORT), "to Redis")
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "RedisSubnets",
            description=f"{name} Redis",
            subnet_ids=vpc.select_subnets(
                subnet_type=subnets.subnet_type, subnets=subnets.subnets, subnet_group_name=subnets.subnet_group_name
            ).subnet_ids,
        )
        self.redis_auth_secret = secretsmanager.Secret(
            self,
            "RedisAuthToken",
            secret_name=f"{name}/redis-auth-token",
            description="ElastiCache AUTH token for the rate-limit store",
            encryption_key=key,
            # ElastiCache AUTH tokens: 16-128 printable characters without @, " or /.
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=64),
        )
        token = self.redis_auth_secret.secret_value.unsafe_unwrap()  # a {{resolve:...}} reference, not the value
        redis = elasticache.CfnReplicationGroup(
            self,
            "Redis",
            replication_group_description=f"{name} rate limits",
            engine="redis",
            engine_version="7.1",
            cache_node_type=node_type,
            num_cache_clusters=2,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=key.key_arn,
            auth_token=token,
            port=REDIS_PORT,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[security_group.security_group_id],
            snapshot_retention_limit=1,
            auto_minor_version_upgrade=True,
        )
        self.redis = redis
        self.rate_limit_url_secret = secretsmanager.Secret(
            self,
            "RateLimitStorageUrl",
            secret_name=f"{name}/rate-limit-storage-url",
            description="rediss:// URL (with the AUTH token) for BASTION_RATE_LIMIT__STORAGE_URL",
            encryption_key=key,
            secret_string_value=SecretValue.unsafe_plain_text(
                Fn.join(
                    "",
                    [
                        "rediss://:",
                        token,
                        "@",
                        redis.attr_primary_end_point_address,
                        ":",
                        redis.attr_primary_end_point_port,
                        "/0",
                    ],
                )
            ),
        )
