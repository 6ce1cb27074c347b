"""The web ACL in front of either entry point (the ALB of the ECS service, the API Gateway stage of the Lambda
variant): Amazon's IP reputation list, and a rate-based rule per source address.

The server's own rate limits count per authenticated subject, after the credential is checked; this rule is
what bounds unauthenticated floods (every refused request still costs a key lookup and an audit record).
"""

from __future__ import annotations

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

__all__ = ["RATE_LIMIT_PER_5_MINUTES", "RateLimitedWebAcl"]

RATE_LIMIT_PER_5_MINUTES = 2000  # requests per source address in any 5-minute window, then blocked


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


class RateLimitedWebAcl(Construct):
    """A regional web ACL associated with `resource_arn` (an ALB or an API Gateway stage)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        resource_arn: str,
        rate_limit: int = RATE_LIMIT_PER_5_MINUTES,
    ) -> None:
        super().__init__(scope, construct_id)
        self.acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=name,
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(f"{name}-acl"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="AmazonIpReputation",
                    priority=0,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS", name="AWSManagedRulesAmazonIpReputationList"
                        )
                    ),
                    visibility_config=_visibility(f"{name}-ip-reputation"),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name="RatePerSourceAddress",
                    priority=1,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP", evaluation_window_sec=300
                        )
                    ),
                    visibility_config=_visibility(f"{name}-rate"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(self, "Association", resource_arn=resource_arn, web_acl_arn=self.acl.attr_arn)
