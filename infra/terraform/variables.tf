# Seed 000's interface first (environment, vpc_id, subnet_ids, github_org_whitelist, allowed_repositories,
# enable_monitoring, alarm_email), then what an ECS Fargate service behind HTTPS needs besides.

variable "environment" {
  description = "Deployment name (prod, staging, ...): names resources and the /mcp-bastion/<environment>/ log groups."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.environment))
    error_message = "environment: lowercase letters, digits and '-', at most 20 characters."
  }
}

variable "vpc_id" {
  description = "VPC for the service. Its private subnets must route 0.0.0.0/0 through NAT gateways (fixed egress IPs)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (with NAT egress) for the tasks, at least two AZs."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids: give private subnets in at least two availability zones."
  }
}

variable "github_org_whitelist" {
  description = "GitHub organisations the server may reach (BASTION_GITHUB__ORG_ALLOWLIST)."
  type        = list(string)

  validation {
    condition     = length(var.github_org_whitelist) > 0
    error_message = "github_org_whitelist: name at least one organisation."
  }
}

variable "allowed_repositories" {
  description = "Exact owner/name repositories mirrored at start (BASTION_REPOS__BOOTSTRAP). Patterns such as acme/* belong in the policy file."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for repository in var.allowed_repositories : can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", repository))])
    error_message = "allowed_repositories: list exact owner/name repositories (globs such as acme/* go in the policy file)."
  }

  validation {
    condition = alltrue([
      for repository in var.allowed_repositories :
      contains([for org in var.github_org_whitelist : lower(org)], lower(split("/", repository)[0]))
    ])
    error_message = "allowed_repositories: every repository must belong to an organisation in github_org_whitelist."
  }
}

variable "enable_monitoring" {
  description = "Create the SNS topic, the alarms (seed 000's four alerts, 5xx, audit-sink lag) and the dashboard."
  type        = bool
  default     = true
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (empty: no subscription). The address must confirm it."
  type        = string
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email: an e-mail address, or empty."
  }
}

# --- beyond seed 000 ------------------------------------------------------------------------------------------

variable "public_subnet_ids" {
  description = "Public subnets for the internet-facing load balancer (same AZs as subnet_ids)."
  type        = list(string)
}

variable "domain_name" {
  description = "DNS name clients use (mcp.example.com); point it at the load balancer (output load_balancer_dns_name)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for domain_name (HTTPS listener)."
  type        = string
}

variable "image_uri" {
  description = "Container image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mcp-bastion:<git sha>."
  type        = string
}

variable "github_app_id" {
  description = "Numeric id of the GitHub App installed on the organisation (Contents: read, Metadata: read)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.github_app_id))
    error_message = "github_app_id: the numeric App id."
  }
}

variable "policy_yaml" {
  description = "The access policy (YAML, docs/policy.md), stored in an SSM parameter the service re-reads: file(\"policy.yaml\")."
  type        = string

  validation {
    condition     = length(var.policy_yaml) <= 8192
    error_message = "policy_yaml: an SSM parameter holds at most 8 KB."
  }
}

variable "ingress_cidrs" {
  description = "Who may reach the load balancer (443, and 80 which redirects)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "ip_allowlist" {
  description = "Optional client CIDRs the application itself enforces on /mcp (BASTION_SERVER__IP_ALLOWLIST)."
  type        = list(string)
  default     = []
}

variable "desired_count" {
  description = "Tasks to run. More than one needs shared state (state_url, rate_limit_storage_url_secret_arn)."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Upper bound for autoscaling on CPU and requests per target."
  type        = number
  default     = 6
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
  default     = 2048
}

variable "ephemeral_storage_gib" {
  description = "Task storage for mirrors (21-200 GiB)."
  type        = number
  default     = 50
}

variable "log_retention_days" {
  description = "Retention of the application log group."
  type        = number
  default     = 90
}

variable "audit_retention_days" {
  description = "Retention of the audit log group."
  type        = number
  default     = 400
}

variable "state_url" {
  description = "Shared PostgreSQL for keys and audit, without password: postgresql+psycopg://bastion@host:5432/bastion. Empty: SQLite per task."
  type        = string
  default     = ""
}

variable "state_password_secret_arn" {
  description = "Secrets Manager secret holding the PostgreSQL password (injected as BASTION_STATE_PASSWORD)."
  type        = string
  default     = ""
}

variable "rate_limit_storage_url_secret_arn" {
  description = "Secrets Manager secret holding the rediss:// URL of the shared Redis (BASTION_RATE_LIMIT__STORAGE_URL)."
  type        = string
  default     = ""
}

variable "state_secrets_kms_key_arn" {
  description = "Customer KMS key of those two secrets, if any (the execution role may decrypt with it)."
  type        = string
  default     = ""
}

variable "alarm_thresholds" {
  description = "Alarm thresholds (per 5 minutes unless noted)."
  type = object({
    denied_attempts        = optional(number, 10)
    tool_calls             = optional(number, 5000)
    errors                 = optional(number, 5)
    token_expiry_seconds   = optional(number, 600)
    http_5xx               = optional(number, 5)
    audit_sink_lag_seconds = optional(number, 300)
  })
  default = {}
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "waf_rate_limit" {
  description = "Requests one source address may make in any 5-minute window before the load balancer's WAF blocks it (100 to 2,000,000,000)."
  type        = number
  default     = 2000
  validation {
    condition     = var.waf_rate_limit >= 100 && var.waf_rate_limit <= 2000000000
    error_message = "waf_rate_limit must be between 100 and 2000000000."
  }
}
