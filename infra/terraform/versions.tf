terraform {
  # 1.9: variable validations may refer to other variables (allowed_repositories vs github_org_whitelist).
  # 1.11: ephemeral resources and write-only attributes (the audit HMAC key is kept out of the state).
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.90.0, < 6.0.0" # 5.90: secret_string_wo on aws_secretsmanager_secret_version
    }
  }
}
