# CloudFront in front of the private frontend bucket.
#
# Layout in the bucket (written by `bgcloud frontend deploy`):
#   releases/<id>/...  one prefix per release (index.html and every unhashed file)
#   assets/...         content-hashed bundles, stored once and shared by every release
#
# Two origins point at the same bucket:
#   "site"   origin_path = /releases/<live id>: bgcloud switches it on every release and
#            rollback (UpdateDistribution with If-Match). Created with "" (no release yet).
#   "assets" origin_path = "", never switched: /assets/* is served from the bucket root, so a
#            page of the old release still finds its bundles during and after a switch.
# bgcloud detects the "/assets/*" behaviour on an origin with an empty path and then uploads
# hashed assets only once.

locals {
  # AWS managed cache policy "Managed-CachingOptimized". bgcloud sets long immutable
  # Cache-Control on hashed assets and no-cache on HTML, and invalidates HTML on each release.
  caching_optimized_policy_id = "658327ea-f89d-4fab-a63d-7e88639e58f6"
}

# AWS's managed "Managed-SecurityHeadersPolicy": HSTS (one year), X-Content-Type-Options
# nosniff, X-Frame-Options SAMEORIGIN, Referrer-Policy strict-origin-when-cross-origin and
# X-XSS-Protection on every response. A site that must be framed elsewhere, or wants a
# Content-Security-Policy, attaches its own policy instead.
data "aws_cloudfront_response_headers_policy" "security_headers" {
  name = "Managed-SecurityHeadersPolicy"
}

resource "aws_cloudfront_origin_access_control" "web" {
  name                              = "${var.app}-web"
  description                       = "${var.app}: CloudFront reads the frontend bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_distribution" "web" {
  # checkov:skip=CKV_AWS_68:a WAF web ACL is the user's choice (cost, rules); set web_acl_id outside this module
  # checkov:skip=CKV2_AWS_47:a WAF web ACL (and its Log4j rule set) is the user's choice
  # checkov:skip=CKV_AWS_374:the site is public worldwide; add a geo restriction if your audience is not
  # checkov:skip=CKV_AWS_310:one bucket serves every release (origin path per release); failover would need a replicated second bucket
  enabled             = true
  comment             = "${var.app} frontend (releases switched by bgcloud)"
  default_root_object = "index.html"
  price_class         = var.price_class
  is_ipv6_enabled     = true
  http_version        = "http2and3"
  aliases             = var.site_aliases

  origin {
    origin_id                = "site"
    domain_name              = aws_s3_bucket.web.bucket_regional_domain_name
    origin_path              = "" # bgcloud sets /releases/<id>
    origin_access_control_id = aws_cloudfront_origin_access_control.web.id
  }

  origin {
    origin_id                = "assets"
    domain_name              = aws_s3_bucket.web.bucket_regional_domain_name
    origin_path              = "" # never switched
    origin_access_control_id = aws_cloudfront_origin_access_control.web.id
  }

  default_cache_behavior {
    target_origin_id           = "site"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = local.caching_optimized_policy_id
    response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security_headers.id
  }

  ordered_cache_behavior {
    path_pattern               = "/assets/*"
    target_origin_id           = "assets"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = local.caching_optimized_policy_id
    response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security_headers.id
  }

  # SPA routing: a path with no object (S3 answers 403 without s3:ListBucket, 404 with it)
  # serves the live release's /index.html with 200, so client-side routes work on reload.
  # Not cached, so a new release's index.html is served at once. A mistyped /assets/ URL also
  # gets index.html (with 200): the usual SPA trade-off.
  custom_error_response {
    error_code            = 403
    response_code         = 200
    response_page_path    = "/index.html"
    error_caching_min_ttl = 0
  }

  custom_error_response {
    error_code            = 404
    response_code         = 200
    response_page_path    = "/index.html"
    error_caching_min_ttl = 0
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  # With site_certificate_arn: the site's own domain, SNI, TLS 1.2 and newer. Without: the
  # *.cloudfront.net name and certificate (which allows TLSv1 and cannot be changed). The
  # conditions name the variable, not a local, so checkov resolves them too.
  viewer_certificate {
    cloudfront_default_certificate = var.site_certificate_arn == ""
    acm_certificate_arn            = var.site_certificate_arn # "" is no certificate to the provider
    ssl_support_method             = var.site_certificate_arn != "" ? "sni-only" : null
    minimum_protocol_version       = var.site_certificate_arn != "" ? "TLSv1.2_2021" : "TLSv1"
  }

  dynamic "logging_config" {
    for_each = local.logs ? [var.access_logs_bucket] : []
    content {
      bucket          = "${logging_config.value}.s3.amazonaws.com"
      prefix          = "cloudfront/"
      include_cookies = false
    }
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(var.site_aliases) == 0 || var.site_certificate_arn != ""
      error_message = "site_aliases needs site_certificate_arn: CloudFront serves a custom domain only with a certificate (ACM, us-east-1) that covers it."
    }

    # bgcloud owns the "site" origin's origin_path (/releases/<live id>). Without this, any
    # `terraform apply` after a frontend release would reset it to "" and the site would serve
    # the bucket root (no index.html there): an outage until the next release or rollback.
    #
    # `origin` is a set in the AWS provider, so Terraform cannot ignore just one origin's
    # origin_path; it ignores the whole `origin` argument. The trade-off: changes to the
    # origins in this file (domain, OAC, a new origin, timeouts) are NOT applied to an existing
    # distribution. To apply one on purpose: note the live release (`bgcloud frontend
    # releases`), comment this out for one apply, then run `bgcloud frontend rollback --to
    # <that id>` to point the site origin back at it. Everything else (behaviours, error
    # responses, price class, certificate) is still managed by Terraform as usual.
    ignore_changes = [origin]
  }
}
