# The instances' role: SSM management (Run Command is how bgcloud starts containers), pulling
# the application image from this module's ECR repository, reading the colours' launch scripts
# at boot (bgcloud's desired state), and reading the app's parameters
# (bgcloud's `secrets` are resolved on the instance, so their values never appear in a command).

data "aws_iam_policy_document" "instance_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = "${var.app}-instance"
  description        = "${var.app} instances: SSM agent, ECR pull, the app's SSM parameters"
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json

  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "instance_ssm_core" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "instance" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }

  statement {
    sid = "EcrPull"
    actions = [
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchCheckLayerAvailability",
    ]
    resources = [aws_ecr_repository.api.arn]
  }

  # The boot script reads bgcloud's desired state: exactly the two colours' launch scripts.
  statement {
    sid       = "DesiredState"
    actions   = ["s3:GetObject"]
    resources = [for c in ["blue", "green"] : "${aws_s3_bucket.state.arn}/${local.desired_state_prefix}${c}.sh"]
  }

  statement {
    sid       = "AppParameters"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${var.app}/*"]
  }

  # SecureString parameters encrypted with the AWS-managed key (alias/aws/ssm). The key ARN is
  # not known before the first SecureString exists in the account, so the grant is "any key,
  # but only through Parameter Store in this region". A customer-managed key needs its key
  # policy (or this statement) to name this role.
  statement {
    sid       = "DecryptParametersViaSsm"
    actions   = ["kms:Decrypt"]
    resources = ["arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "instance" {
  name   = "${var.app}-instance"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.instance.json
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.app}-instance"
  role = aws_iam_role.instance.name

  tags = local.tags
}
