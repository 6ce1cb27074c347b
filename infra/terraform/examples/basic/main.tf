# Seed 000's module call, against this module. Values are placeholders.
terraform {
  required_version = ">= 1.11.0"
}

provider "aws" {
  region = "ap-northeast-2"
}

module "mcp_server" {
  source = "../.."

  environment = "production"
  vpc_id      = "vpc-0123456789abcdef0"
  subnet_ids  = ["subnet-0000000000000b001", "subnet-0000000000000b002"]

  github_org_whitelist = [
    "mycompany",
    "mycompany-labs",
  ]

  # Exact repositories to mirror; who may read what (mycompany/*, partner-org/shared-*) is the policy's job.
  allowed_repositories = [
    "mycompany/api",
    "mycompany-labs/prototype",
  ]

  enable_monitoring = true
  alarm_email       = "devops@mycompany.com"

  public_subnet_ids = ["subnet-0000000000000a001", "subnet-0000000000000a002"]
  domain_name       = "mcp.mycompany.com"
  certificate_arn   = "arn:aws:acm:ap-northeast-2:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  image_uri         = "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/mcp-bastion:0123456789abcdef"
  github_app_id     = "123456"
  policy_yaml       = file("${path.module}/../../../../examples/policy.yaml")

  state_url                         = "postgresql+psycopg://bastion@bastion-state.cluster-abc.ap-northeast-2.rds.amazonaws.com:5432/bastion"
  state_password_secret_arn         = "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:mcp-bastion/state-db-AbCdEf"
  rate_limit_storage_url_secret_arn = "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:mcp-bastion/redis-url-AbCdEf"
}

output "nat_egress_ips" {
  value = module.mcp_server.nat_egress_ips
}

output "mcp_url" {
  value = module.mcp_server.mcp_url
}
