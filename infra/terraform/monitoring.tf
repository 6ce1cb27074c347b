# Seed 000's four alerts (unauthorized access attempts, excessive API calls, token expiry, system errors), HTTP 5xx
# and audit-sink lag, to an encrypted SNS topic; and a dashboard. Metric names: docs/dev/deploy-contract.md.

locals {
  monitoring = var.enable_monitoring ? 1 : 0
  thresholds = var.alarm_thresholds

  insights_alarms = {
    ExcessiveApiCalls = {
      query       = "SELECT SUM(ToolCalls) FROM SCHEMA(McpBastion, Outcome, Tool)"
      threshold   = local.thresholds.tool_calls
      operator    = "GreaterThanThreshold"
      description = "Excessive API calls: tool calls across all callers above the threshold in 5 min."
    }
    UpstreamTokenExpiring = {
      query       = "SELECT MIN(UpstreamTokenSecondsToExpiry) FROM SCHEMA(McpBastion, Organization)"
      threshold   = local.thresholds.token_expiry_seconds
      operator    = "LessThanThreshold"
      description = "Token expiry approaching: a GitHub installation token was not refreshed and expires soon."
    }
    SystemErrors = {
      query       = "SELECT SUM(Errors) FROM SCHEMA(McpBastion, Tool)"
      threshold   = local.thresholds.errors
      operator    = "GreaterThanThreshold"
      description = "System errors: tool calls that failed inside the server above the threshold in 5 min."
    }
    AuditSinkLag = {
      query       = "SELECT MAX(AuditSinkLagSeconds) FROM SCHEMA(McpBastion, Sink)"
      threshold   = local.thresholds.audit_sink_lag_seconds
      operator    = "GreaterThanThreshold"
      description = "Audit sink lag: an audit sink is behind; events wait in the durable spool."
    }
  }
}

resource "aws_sns_topic" "alarms" {
  count             = local.monitoring
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "alarms_topic" {
  count = local.monitoring

  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms[0].arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms[0].arn]
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

resource "aws_sns_topic_policy" "alarms" {
  count  = local.monitoring
  arn    = aws_sns_topic.alarms[0].arn
  policy = data.aws_iam_policy_document.alarms_topic[0].json
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.enable_monitoring && var.alarm_email != "" ? 1 : 0
  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "unauthorized_access_attempts" {
  count               = local.monitoring
  alarm_name          = "${local.name}-UnauthorizedAccessAttempts"
  alarm_description   = "Unauthorized repository access attempts: policy and authentication denials above the threshold in 5 min."
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.thresholds.denied_attempts
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms[0].arn]
  ok_actions          = [aws_sns_topic.alarms[0].arn]
  tags                = var.tags

  metric_query {
    id          = "denied"
    expression  = "FILL(policy, 0) + FILL(auth, 0)"
    label       = "Denied attempts (policy + auth)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = ["policy", "auth"]
    content {
      id = metric_query.value
      metric {
        namespace   = "McpBastion"
        metric_name = "Denials"
        dimensions  = { Reason = metric_query.value }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "insights" {
  for_each            = var.enable_monitoring ? local.insights_alarms : {}
  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = each.value.description
  comparison_operator = each.value.operator
  threshold           = each.value.threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms[0].arn]
  ok_actions          = [aws_sns_topic.alarms[0].arn]
  tags                = var.tags

  metric_query {
    id          = "q"
    expression  = each.value.query
    period      = 300
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "http_5xx" {
  count               = local.monitoring
  alarm_name          = "${local.name}-Http5xx"
  alarm_description   = "HTTP 5xx answers from the load balancer and the tasks above the threshold in 5 min."
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.thresholds.http_5xx
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms[0].arn]
  ok_actions          = [aws_sns_topic.alarms[0].arn]
  tags                = var.tags

  metric_query {
    id          = "total"
    expression  = "FILL(elb, 0) + FILL(target, 0)"
    label       = "HTTP 5xx"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { elb = "HTTPCode_ELB_5XX_Count", target = "HTTPCode_Target_5XX_Count" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/ApplicationELB"
        metric_name = metric_query.value
        dimensions  = { LoadBalancer = aws_lb.this.arn_suffix }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}

resource "aws_cloudwatch_dashboard" "this" {
  count          = local.monitoring
  dashboard_name = local.name
  dashboard_body = jsonencode({
    widgets = [
      for index, widget in [
        { title = "Tool calls by outcome", expression = "SELECT SUM(ToolCalls) FROM SCHEMA(McpBastion, Outcome, Tool) GROUP BY Outcome" },
        { title = "Denials by reason (abnormal attempts)", expression = "SELECT SUM(Denials) FROM SCHEMA(McpBastion, Reason) GROUP BY Reason" },
        { title = "Errors by tool", expression = "SELECT SUM(Errors) FROM SCHEMA(McpBastion, Tool) GROUP BY Tool" },
        { title = "Latency p95 by tool (ms)", expression = "SEARCH('{McpBastion,Tool} MetricName=\"Latency\"', 'p95', 300)" },
        { title = "Repository access (top 10)", expression = "SELECT SUM(RepositoryAccess) FROM SCHEMA(McpBastion, Repository) GROUP BY Repository ORDER BY SUM() DESC LIMIT 10" },
        { title = "Upstream token seconds to expiry", expression = "SELECT MIN(UpstreamTokenSecondsToExpiry) FROM SCHEMA(McpBastion, Organization) GROUP BY Organization" },
        { title = "Audit sink lag (s)", expression = "SELECT MAX(AuditSinkLagSeconds) FROM SCHEMA(McpBastion, Sink) GROUP BY Sink" },
        ] : {
        type   = "metric"
        x      = (index % 3) * 8
        y      = floor(index / 3) * 6
        width  = 8
        height = 6
        properties = {
          title   = widget.title
          region  = local.region
          view    = "timeSeries"
          period  = 300
          metrics = [[{ expression = widget.expression, id = "m${index}" }]]
        }
      }
    ]
  })
}
