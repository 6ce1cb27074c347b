output "nat_egress_ips" {
  description = "Public addresses of the VPC's NAT gateways: put them on the GitHub organization's IP allow list."
  value       = [for gateway in data.aws_nat_gateway.egress : gateway.public_ip]
}

output "load_balancer_dns_name" {
  description = "Point domain_name at this (CNAME or Route 53 alias)."
  value       = aws_lb.this.dns_name
}

output "mcp_url" {
  description = "The MCP endpoint clients use."
  value       = "https://${var.domain_name}/mcp"
}

output "github_app_key_secret_arn" {
  description = "Put the GitHub App's PEM private key here."
  value       = aws_secretsmanager_secret.github_app_key.arn
}

output "audit_hmac_key_secret_arn" {
  description = "The audit hash chain's HMAC key: bastion audit verify needs BASTION_AUDIT__HMAC_KEY_SECRET set to this."
  value       = aws_secretsmanager_secret.audit_hmac_key.arn
}

output "policy_parameter_name" {
  description = "SSM parameter holding the policy (managed by this module from policy_yaml)."
  value       = aws_ssm_parameter.policy.name
}

output "audit_log_group_name" {
  value = aws_cloudwatch_log_group.audit.name
}

output "alarm_topic_arn" {
  value = var.enable_monitoring ? aws_sns_topic.alarms[0].arn : null
}

output "cluster_name" {
  value = aws_ecs_cluster.this.name
}

output "service_name" {
  value = aws_ecs_service.this.name
}
