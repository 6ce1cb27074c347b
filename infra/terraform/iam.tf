# Two roles: the execution role (ECS pulls the image, writes the container log, injects the state secrets) and the
# task role (what the application calls: the GitHub App key and the audit HMAC key, the KMS key through Secrets
# Manager, the audit log, the policy). No cloudwatch:PutMetricData: metrics leave as EMF lines on stdout through
# the awslogs driver.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # this action has no resource-level permission
  }

  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = ["arn:${local.partition}:ecr:${local.region}:${local.account}:repository/${split(":", split("/", var.image_uri)[1])[0]}"]
  }

  statement {
    sid       = "ContainerLog"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.app.arn}:*"]
  }

  dynamic "statement" {
    for_each = local.shared ? [1] : []
    content {
      sid       = "InjectStateSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.state_password_secret_arn, var.rate_limit_storage_url_secret_arn]
    }
  }

  dynamic "statement" {
    for_each = local.shared && var.state_secrets_kms_key_arn != "" ? [1] : []
    content {
      sid       = "DecryptStateSecrets"
      actions   = ["kms:Decrypt"]
      resources = [var.state_secrets_kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name               = "${local.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ReadGitHubAppPrivateKey"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.github_app_key.arn]
  }

  statement {
    sid       = "ReadAuditHmacKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.audit_hmac_key.arn]
  }

  statement {
    sid       = "DecryptSecretsWithDeploymentKey"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid = "WriteAuditLog"
    # GetLogEvents: the audit sink reads its stream's tail back before its first write and after a failed one,
    # so a retried batch is never delivered twice.
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:GetLogEvents"]
    resources = ["${aws_cloudwatch_log_group.audit.arn}:*"]
  }

  statement {
    sid       = "ReadPolicy"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.policy.arn]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "bastion"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}
