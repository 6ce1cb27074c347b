"""The VPC: two AZs, public subnets for the load balancer and NAT, private subnets for tasks, isolated for state.

The NAT gateways use Elastic IPs allocated here, so the stack can output them: those addresses are what goes on
the GitHub organisation's IP allow list (every git fetch and API call leaves through them). An existing VPC is
given by attributes, never looked up, so synthesis needs no AWS account.
"""

# pyright: reportArgumentType=false
# (jsii bindings: a CDK class and its own interface differ in parameter names, e.g. Key.add_alias(alias_name)
# vs IKey.add_alias(alias), which pyright reports at every call that passes a Key where an IKey is expected.)

from __future__ import annotations

from aws_cdk import CfnTag
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from .settings import ExistingVpc

__all__ = ["BastionNetwork"]


class BastionNetwork(Construct):
    """`vpc`, the subnets for tasks and for shared state, and the NAT egress addresses (empty for an existing VPC)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        existing: ExistingVpc | None,
        flow_log_destination: ec2.FlowLogDestination | None,
        cidr: str = "10.40.0.0/16",
    ) -> None:
        super().__init__(scope, construct_id)
        self.nat_ips: list[str] = []
        if existing is not None:
            self.vpc: ec2.IVpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=existing.vpc_id,
                availability_zones=list(existing.availability_zones),
                public_subnet_ids=list(existing.public_subnet_ids),
                private_subnet_ids=list(existing.private_subnet_ids),
            )
            self.task_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
            self.state_subnets = self.task_subnets
            return

        eips = [
            ec2.CfnEIP(
                self, f"NatEip{index}", domain="vpc", tags=[CfnTag(key="Name", value=f"{name} NAT egress {index}")]
            )
            for index in (1, 2)
        ]
        flow_logs = (
            {"FlowLog": ec2.FlowLogOptions(destination=flow_log_destination)}
            if flow_log_destination is not None
            else None
        )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=name,
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            max_azs=2,
            nat_gateways=2,  # one per AZ: an AZ outage does not cut the other AZ's tasks off from GitHub
            nat_gateway_provider=ec2.NatProvider.gateway(eip_allocation_ids=[eip.attr_allocation_id for eip in eips]),
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24, map_public_ip_on_launch=False
                ),
                ec2.SubnetConfiguration(name="tasks", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
                ec2.SubnetConfiguration(name="state", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
            flow_logs=flow_logs,
            # Image layers come from S3: the free gateway endpoint keeps them off the NAT.
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            # True would add a custom-resource Lambda; nothing here uses the default security group.
            restrict_default_security_group=False,
        )
        self.vpc = vpc
        self.task_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.state_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        # `Ref` of an EIP is its public address.
        self.nat_ips = [eip.ref for eip in eips]
