# GitHub Actions: an OIDC identity provider and the role the deploy workflow assumes. No
# long-lived keys: each job gets short-lived credentials for its own run.
#
# Who may assume the role (the token's `sub` claim):
#   repo:<owner/name>:ref:refs/heads/main       jobs on main without an environment
#                                               (build, canary deploy, frontend, rollback)
#   repo:<owner/name>:environment:production    jobs that use the `production` environment
#                                               (promote, after a required reviewer approves)
# Pull requests, other branches and forks get nothing.

locals {
  github_oidc_url = "https://token.actions.githubusercontent.com"
}

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = local.github_oidc_url
  client_id_list = ["sts.amazonaws.com"]
  # AWS validates GitHub's tokens against its own trusted CAs and no longer uses these
  # thumbprints for this provider; older 5.x provider versions still require the argument.
  thumbprint_list = [
    "6938fd4d98bab03faadb97b34396831e3780aea1",
    "1c58a3a8518e8759bf075b76b750d4f2df264fcd",
  ]

  tags = local.tags
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1

  url = local.github_oidc_url
}

locals {
  github_oidc_provider_arn = var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn
}

data "aws_iam_policy_document" "ci_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "token.actions.githubusercontent.com:sub"
      values = [
        "repo:${var.github_repository}:ref:refs/heads/main",
        "repo:${var.github_repository}:environment:production",
      ]
    }
  }
}

resource "aws_iam_role" "ci" {
  name                 = "${var.app}-bgcloud-ci"
  description          = "GitHub Actions (${var.github_repository}): push ${var.app}-api images and release with bgcloud"
  assume_role_policy   = data.aws_iam_policy_document.ci_assume.json
  max_session_duration = 3600

  tags = local.tags
}

# Exactly the calls bgcloud makes (plus the image push), on this stack's resources only.
data "aws_iam_policy_document" "ci" {
  # checkov:skip=CKV_AWS_356:cloudwatch:DescribeAlarms must be scoped to * or it never returns composite alarms (CloudWatch API reference, DescribeAlarms); it only reads alarm states and definitions, every other action is scoped or has no resource-level permissions
  # --- ALB: read the listener, rule, health-check settings and target health; change the
  # weights; register targets (and take out a colour's old-port registrations).

  statement {
    sid = "ElbRead"
    actions = [
      "elasticloadbalancing:DescribeAccountLimits", # rule quotas, checked before the preview rule is made
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeLoadBalancers", # the preview route's default URL (DNS name)
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTags", # finds bgcloud's preview rule by its tag
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetGroupAttributes", # the deregistration delay (drain wait)
      "elasticloadbalancing:DescribeTargetHealth",
    ]
    resources = ["*"] # Describe* calls do not support resource-level permissions
  }

  statement {
    sid     = "ElbWriteWeights"
    actions = ["elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyRule"]
    resources = [
      # the listener bgcloud drives (HTTPS with a certificate, else HTTP)
      local.bgcloud_listener_arn,
      # rules of this load balancer's listeners, for a config that sets rule_arn
      "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:listener-rule/${aws_lb.main.arn_suffix}/*",
    ]
  }

  # The preview route: one rule of bgcloud's own, created once (tagged on creation, so AddTags
  # only as part of CreateRule), then pointed with ModifyRule and moved with SetRulePriorities.
  statement {
    sid     = "ElbPreviewRuleCreate"
    actions = ["elasticloadbalancing:CreateRule"]
    resources = [
      local.bgcloud_listener_arn,
      "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:listener-rule/${aws_lb.main.arn_suffix}/*",
    ]
  }

  statement {
    sid       = "ElbPreviewRuleTagOnCreate"
    actions   = ["elasticloadbalancing:AddTags"]
    resources = ["arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:listener-rule/${aws_lb.main.arn_suffix}/*"]
    condition {
      test     = "StringEquals"
      variable = "elasticloadbalancing:CreateAction"
      values   = ["CreateRule"]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["bgcloud:preview"]
    }
  }

  statement {
    sid       = "ElbPreviewRulePriority"
    actions   = ["elasticloadbalancing:SetRulePriorities"]
    resources = ["arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:listener-rule/${aws_lb.main.arn_suffix}/*"]
  }

  statement {
    sid       = "ElbRegisterTargets"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = [for tg in aws_lb_target_group.color : tg.arn]
  }

  # --- State bucket: lock, deployment record, frontend release manifests. The lock is released
  # with a conditional delete (If-Match), which needs s3:GetObject besides s3:DeleteObject.

  statement {
    sid       = "StateObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.state.arn}/*"]
  }

  # Also covers HeadBucket, with which bgcloud finds the bucket's region once per run; and
  # without it S3 answers a read of a missing key (a first run's record) with 403, not 404.
  statement {
    sid       = "StateList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state.arn]
  }

  # --- Frontend bucket: upload releases (multipart for large files), copy unchanged files
  # server-side (GetObject on the source + PutObject), read the content MD5 that bgcloud keeps
  # in object metadata (HeadObject = GetObject), prune old releases.

  statement {
    sid = "WebObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${aws_s3_bucket.web.arn}/*"]
  }

  # Also covers HeadBucket (the bucket's region).
  statement {
    sid       = "WebList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.web.arn]
  }

  # --- ECR: bgcloud resolves tags to digests; CI pushes the image.

  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # no resource-level permissions
  }

  statement {
    sid = "EcrRepository"
    actions = [
      "ecr:DescribeRepositories",
      "ecr:DescribeImages",
      "ecr:BatchCheckLayerAvailability",
      "ecr:InitiateLayerUpload",
      "ecr:UploadLayerPart",
      "ecr:CompleteLayerUpload",
      "ecr:PutImage",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer", # the image scan in CI pulls what it just pushed
    ]
    resources = [aws_ecr_repository.api.arn]
  }

  # --- EC2: find the app's running instances by tag.

  statement {
    sid       = "Ec2Describe"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"] # no resource-level permissions
  }

  # --- SSM Run Command: only AWS-RunShellScript, only on instances tagged bgcloud:app = app.
  # SendCommand is authorized against the document AND every target instance.

  statement {
    sid       = "SsmSendCommandDocument"
    actions   = ["ssm:SendCommand"]
    resources = ["arn:${local.partition}:ssm:${local.region}::document/AWS-RunShellScript"]
  }

  statement {
    sid       = "SsmSendCommandAppInstances"
    actions   = ["ssm:SendCommand"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "ssm:resourceTag/bgcloud:app"
      values   = [var.app]
    }
  }

  statement {
    sid = "AutoScalingLifecycle"
    actions = [
      "autoscaling:DescribeAutoScalingInstances", # instances a group holds out of service are left out
    ]
    resources = ["*"] # describe actions take no resource-level permissions
  }

  statement {
    sid = "SsmCommandResults"
    actions = [
      "ssm:GetCommandInvocation",
      "ssm:CancelCommand",               # a launch bgcloud gave up on (timeout, Ctrl-C)
      "ssm:DescribeInstanceInformation", # every instance's agent is Online before sending
    ]
    resources = ["*"] # no resource-level permissions
  }

  # --- CloudWatch: the watch's gates read the ALB's metrics and the configured alarms.

  statement {
    sid       = "CloudWatchMetrics"
    actions   = ["cloudwatch:GetMetricData"]
    resources = ["*"] # no resource-level permissions
  }

  # DescribeAlarms returns composite alarms only to a caller whose permission is scoped to "*"
  # (CloudWatch API reference, DescribeAlarms): a gate on a composite alarm would otherwise read
  # as missing. The action only reads alarm states and definitions.
  statement {
    sid       = "CloudWatchAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["*"]
  }

  # --- CloudFront: switch the site origin's path, invalidate, wait.

  statement {
    sid = "CloudFrontRelease"
    actions = [
      "cloudfront:GetDistribution",
      "cloudfront:GetDistributionConfig",
      "cloudfront:UpdateDistribution",
      "cloudfront:CreateInvalidation",
      "cloudfront:GetInvalidation",
    ]
    resources = [aws_cloudfront_distribution.web.arn]
  }
}

resource "aws_iam_role_policy" "ci" {
  name   = "${var.app}-bgcloud"
  role   = aws_iam_role.ci.id
  policy = data.aws_iam_policy_document.ci.json
}
