terraform {
  # 1.9: variable validations may refer to other variables (allowed_repositories vs github_org_whitelist).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 6.0.0"
    }
  }
}
