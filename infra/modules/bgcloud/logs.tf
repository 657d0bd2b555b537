# Opt-in logs (var.access_logs_bucket): flow logs for the VPC and server access logs for both
# buckets, each under its own prefix of the user's logs bucket. The ALB's and CloudFront's logs
# are set on those resources (alb.tf, cdn.tf). Off by default: a logs bucket, its delivery
# permissions and its retention are an account-wide choice this module should not make.

locals {
  logs = var.access_logs_bucket != ""
}

resource "aws_flow_log" "vpc" {
  count = local.logs ? 1 : 0

  vpc_id               = aws_vpc.main.id
  traffic_type         = "ALL"
  log_destination_type = "s3"
  log_destination      = "arn:${local.partition}:s3:::${var.access_logs_bucket}/vpc-flow-logs/"

  tags = local.tags
}

resource "aws_s3_bucket_logging" "state" {
  count = local.logs ? 1 : 0

  bucket        = aws_s3_bucket.state.id
  target_bucket = var.access_logs_bucket
  target_prefix = "s3/state/"
}

resource "aws_s3_bucket_logging" "web" {
  count = local.logs ? 1 : 0

  bucket        = aws_s3_bucket.web.id
  target_bucket = var.access_logs_bucket
  target_prefix = "s3/web/"
}
