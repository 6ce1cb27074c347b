# mcp-bastion on ECS Fargate behind an HTTPS Application Load Balancer, in an existing VPC (the Terraform
# counterpart of infra/cdk's BastionServiceStack, at a smaller scale: shared PostgreSQL/Redis are given, not made).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  name      = "mcp-bastion-${var.environment}"
  prefix    = "/mcp-bastion/${var.environment}"
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  shared    = var.state_url != ""

  bootstrap = jsonencode([for repository in var.allowed_repositories : {
    url  = "https://github.com/${repository}.git"
    name = repository
  }])

  environment = merge(
    {
      BASTION_DATA_DIR                     = "/var/lib/bastion"
      BASTION_PUBLIC_URL                   = "https://${var.domain_name}/mcp"
      BASTION_SERVER__TRUSTED_PROXIES      = "1"
      BASTION_SERVER__ALLOWED_HOSTS        = jsonencode([var.domain_name])
      BASTION_POLICY__URL                  = "ssm:${aws_ssm_parameter.policy.name}"
      BASTION_POLICY__RELOAD_CHECK_SECONDS = "30"
      BASTION_REPOS__BOOTSTRAP             = local.bootstrap
      BASTION_REPOS__SYNC_INTERVAL_SECONDS = "300"
      BASTION_GITHUB__APP_ID               = var.github_app_id
      BASTION_GITHUB__PRIVATE_KEY_SECRET   = aws_secretsmanager_secret.github_app_key.arn
      BASTION_GITHUB__API_URL              = "https://api.github.com"
      BASTION_GITHUB__ORG_ALLOWLIST        = jsonencode(var.github_org_whitelist)
      BASTION_SECRETS__PROVIDER            = "aws"
      BASTION_SECRETS__CACHE_SECONDS       = "300"
      BASTION_AUDIT__SINKS                 = jsonencode(local.shared ? ["postgresql", "cloudwatch"] : ["sqlite", "cloudwatch"])
      BASTION_AUDIT__CLOUDWATCH__LOG_GROUP = aws_cloudwatch_log_group.audit.name
      BASTION_AUDIT__HMAC_KEY_SECRET       = aws_secretsmanager_secret.audit_hmac_key.arn
      BASTION_METRICS__EMF                 = "true"
      BASTION_LOG__JSON_FORMAT             = "true"
    },
    local.shared ? { BASTION_STATE_URL = var.state_url } : {},
    length(var.ip_allowlist) > 0 ? { BASTION_SERVER__IP_ALLOWLIST = jsonencode(var.ip_allowlist) } : {},
  )

  secrets = local.shared ? [
    { name = "BASTION_STATE_PASSWORD", valueFrom = var.state_password_secret_arn },
    { name = "BASTION_RATE_LIMIT__STORAGE_URL", valueFrom = var.rate_limit_storage_url_secret_arn },
  ] : []
}

# --- key, secret, logs, policy -------------------------------------------------------------------------------

data "aws_iam_policy_document" "key" {
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsForThisDeployment"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:${local.prefix}/*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_kms_key" "this" {
  description         = "${local.name}: GitHub App secret, audit HMAC key, logs, alarm topic"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
  tags                = var.tags

  lifecycle {
    # The audit log group and the audit HMAC key, both kept, are encrypted with it: without it they are unreadable.
    prevent_destroy = true
  }
}

resource "aws_secretsmanager_secret" "github_app_key" {
  name        = "${local.name}/github-app-private-key"
  description = "PEM private key of the GitHub App (put the value with aws secretsmanager put-secret-value)"
  kms_key_id  = aws_kms_key.this.arn
  tags        = var.tags
}

# The HMAC key that seals the audit hash chain (BASTION_AUDIT__HMAC_KEY_SECRET). Kept like the audit log group:
# records sealed with it can be verified only with it. Drawn from an ephemeral resource and written through a
# write-only attribute, so the key is in neither the plan nor the state.
resource "aws_secretsmanager_secret" "audit_hmac_key" {
  name        = "${local.name}/audit-hmac-key"
  description = "HMAC key of the audit hash chain (bastion audit verify needs it)"
  kms_key_id  = aws_kms_key.this.arn
  tags        = var.tags

  lifecycle {
    prevent_destroy = true
  }
}

ephemeral "aws_secretsmanager_random_password" "audit_hmac_key" {
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret_version" "audit_hmac_key" {
  secret_id        = aws_secretsmanager_secret.audit_hmac_key.id
  secret_string_wo = ephemeral.aws_secretsmanager_random_password.audit_hmac_key.random_password
  # Written when the version number changes, i.e. once: a new password drawn at a later apply is never stored.
  secret_string_wo_version = 1
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "${local.prefix}/app"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "audit" {
  name              = "${local.prefix}/audit"
  retention_in_days = var.audit_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_ssm_parameter" "policy" {
  name        = "${local.prefix}/policy"
  description = "mcp-bastion access policy (YAML, docs/policy.md)"
  type        = "String"
  tier        = length(var.policy_yaml) > 4096 ? "Advanced" : "Standard"
  value       = var.policy_yaml
  tags        = var.tags
}

# --- network -------------------------------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "${local.name} load balancer"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_security_group" "tasks" {
  name        = "${local.name}-tasks"
  description = "${local.name} tasks: in from the load balancer only; out to GitHub and AWS APIs"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(var.ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(var.ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "redirected to HTTPS"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "load balancer to tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "load balancer to tasks"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "git and API calls to GitHub and AWS over HTTPS (through the NAT gateways)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "tasks_in_vpc" {
  security_group_id = aws_security_group.tasks.id
  description       = "shared PostgreSQL and Redis inside the VPC"
  cidr_ipv4         = data.aws_vpc.this.cidr_block
  ip_protocol       = "tcp"
  from_port         = 1024
  to_port           = 65535
}

data "aws_vpc" "this" {
  id = var.vpc_id
}

# --- load balancer -------------------------------------------------------------------------------------------

resource "aws_lb" "this" {
  name                       = local.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  idle_timeout               = 300
  tags                       = var.tags
}

resource "aws_lb_target_group" "this" {
  name                 = local.name
  port                 = 8000
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  tags                 = var.tags

  health_check {
    path                = "/health"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  tags              = var.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = var.tags

  default_action {
    type = "redirect"
    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}

# Unauthenticated floods: the application limits per authenticated subject, this per source address.
resource "aws_wafv2_web_acl" "this" {
  name  = local.name
  scope = "REGIONAL"
  tags  = var.tags

  default_action {
    allow {}
  }

  rule {
    name     = "AmazonIpReputation"
    priority = 0

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "RatePerSourceAddress"
    priority = 1

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.waf_rate_limit
        aggregate_key_type    = "IP"
        evaluation_window_sec = 300
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-rate"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${local.name}-acl"
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

# --- ECS -----------------------------------------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = local.name
  tags = var.tags

  setting {
    name  = "containerInsights"
    value = "enhanced"
  }
}

resource "aws_ecs_task_definition" "this" {
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  tags                     = var.tags

  runtime_platform {
    cpu_architecture        = "X86_64"
    operating_system_family = "LINUX"
  }

  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }

  volume {
    name = "data"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([{
    name                   = "bastion"
    image                  = var.image_uri
    essential              = true
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = 8000, protocol = "tcp" }]
    environment            = [for key in sort(keys(local.environment)) : { name = key, value = local.environment[key] }]
    secrets                = local.secrets
    mountPoints = [
      { sourceVolume = "data", containerPath = "/var/lib/bastion", readOnly = false },
      { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
    ]
    healthCheck = {
      command     = ["CMD", "python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "bastion"
        mode                  = "non-blocking"
      }
    }
  }])

  lifecycle {
    precondition {
      condition     = var.max_count <= 1 || local.shared
      error_message = "More than one task needs shared state: set state_url, state_password_secret_arn and rate_limit_storage_url_secret_arn (or max_count = 1)."
    }
    precondition {
      condition     = !local.shared || (var.state_password_secret_arn != "" && var.rate_limit_storage_url_secret_arn != "")
      error_message = "state_url is set: also set state_password_secret_arn and rate_limit_storage_url_secret_arn."
    }
  }
}

resource "aws_ecs_service" "this" {
  name                               = local.name
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = 120
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                     = "SERVICE"
  tags                               = var.tags

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = "bastion"
    container_port   = 8000
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    # Autoscaling owns the count after the first apply.
    ignore_changes = [desired_count]
  }

  # Tasks read the audit HMAC key at start-up: it must have a value before the first one starts.
  depends_on = [aws_lb_listener.https, aws_secretsmanager_secret_version.audit_hmac_key]
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.desired_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${local.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = 60
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${local.name}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = 1000
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
    }
  }
}

# --- NAT egress addresses (what goes on the GitHub organisation's IP allow list) -----------------------------

data "aws_nat_gateways" "egress" {
  vpc_id = var.vpc_id

  filter {
    name   = "state"
    values = ["available"]
  }
}

data "aws_nat_gateway" "egress" {
  for_each = toset(data.aws_nat_gateways.egress.ids)
  id       = each.value
}
