# Two buckets: bgcloud's state (deployment lock and record, frontend release manifests) and the
# frontend's files (releases/<id>/ per release, assets/ shared by all), served only through
# CloudFront.

locals {
  state_bucket_name = "${var.app}-deploy-state-${local.account_id}"
  web_bucket_name   = "${var.app}-web-${local.account_id}"
  # bgcloud's desired state (its default [state] prefix "bgcloud/"): each colour's launch script
  # as last deployed, which an instance runs when it boots (compute.tf).
  desired_state_prefix = "bgcloud/${var.app}/desired/"
}

# ---------------------------------------------------------------------------------------------
# State bucket. bgcloud's lock and record rely on S3 conditional writes (If-None-Match /
# If-Match), which S3 supports on versioned buckets. Versioning keeps every record ever
# written, so a bad write can be recovered; old versions expire after a while.
# ---------------------------------------------------------------------------------------------

resource "aws_s3_bucket" "state" {
  # checkov:skip=CKV2_AWS_62:nothing consumes event notifications from this bucket
  # checkov:skip=CKV_AWS_144:no cross-region replica: versioning keeps every record and lock write, and the listener itself says which colour is live
  # checkov:skip=CKV_AWS_145:SSE-S3 (AES256): enough for deploy records
  bucket        = local.state_bucket_name
  force_destroy = var.force_destroy

  tags = local.tags
}

resource "aws_s3_bucket_ownership_controls" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket = aws_s3_bucket.state.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    id     = "expire-old-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.state_noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.state]
}

data "aws_iam_policy_document" "state" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.state.arn,
      "${aws_s3_bucket.state.arn}/*",
    ]

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
}

resource "aws_s3_bucket_policy" "state" {
  bucket = aws_s3_bucket.state.id
  policy = data.aws_iam_policy_document.state.json

  depends_on = [aws_s3_bucket_public_access_block.state]
}

# ---------------------------------------------------------------------------------------------
# Frontend bucket: private; CloudFront reads it through Origin Access Control.
# ---------------------------------------------------------------------------------------------

resource "aws_s3_bucket" "web" {
  # checkov:skip=CKV2_AWS_62:nothing consumes event notifications from this bucket
  # checkov:skip=CKV_AWS_144:no cross-region replica: versioning recovers objects; a release can be rebuilt and deployed again from CI
  # checkov:skip=CKV_AWS_145:SSE-S3 (AES256): CloudFront's origin access control reads it without a KMS key grant
  bucket        = local.web_bucket_name
  force_destroy = var.force_destroy

  tags = local.tags
}

resource "aws_s3_bucket_ownership_controls" "web" {
  bucket = aws_s3_bucket.web.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "web" {
  bucket = aws_s3_bucket.web.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Versioned, so a pruned release or a mistaken delete can be restored (within
# web_noncurrent_version_days): bgcloud's prune leaves delete markers, the lifecycle below
# removes the old versions and the markers later.
resource "aws_s3_bucket_versioning" "web" {
  bucket = aws_s3_bucket.web.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "web" {
  bucket = aws_s3_bucket.web.id

  rule {
    # SSE-S3: CloudFront's OAC can read it without a KMS grant (SSE-KMS would need one).
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "web" {
  bucket = aws_s3_bucket.web.id

  rule {
    id     = "expire-old-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.web_noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.web]
}

# Only this distribution may read, and only objects (no s3:ListBucket: a missing key is then a
# 403, which the distribution's SPA error routing turns into /index.html).
data "aws_iam_policy_document" "web" {
  statement {
    sid       = "AllowCloudFrontRead"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.web.arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.web.arn]
    }
  }

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.web.arn,
      "${aws_s3_bucket.web.arn}/*",
    ]

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
}

resource "aws_s3_bucket_policy" "web" {
  bucket = aws_s3_bucket.web.id
  policy = data.aws_iam_policy_document.web.json

  depends_on = [aws_s3_bucket_public_access_block.web]
}
