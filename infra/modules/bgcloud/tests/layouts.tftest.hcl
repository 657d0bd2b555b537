# The module's layouts and variable checks, planned against a mock provider (no AWS, no
# emulator): `terraform test` in infra/modules/bgcloud (scripts/test-infra runs it).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b"] }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_cloudfront_response_headers_policy" {
    defaults = { id = "67f7725c-6f97-4210-82d7-5512b31e9d03" }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-12c6146b" }
  }
}

variables {
  app               = "shop"
  github_repository = "acme/shop"
}

run "http_only_forwards_on_port_80" {
  command = plan

  assert {
    condition     = length(aws_lb_listener.traffic) == 1 && aws_lb_listener.traffic["http"].port == 80 && aws_lb_listener.traffic["http"].protocol == "HTTP"
    error_message = "without a certificate the HTTP listener on port 80 is the one bgcloud drives"
  }
  assert {
    condition     = length(aws_lb_listener.http_redirect) == 0
    error_message = "no redirect without HTTPS"
  }
  assert {
    condition     = aws_lb_target_group.color["blue"].port == 8081 && aws_lb_target_group.color["green"].port == 8082
    error_message = "blue and green on their own host ports"
  }
}

run "https_redirects_port_80_and_drives_443" {
  command = plan

  variables {
    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition     = length(aws_lb_listener.traffic) == 1 && aws_lb_listener.traffic["https"].port == 443 && aws_lb_listener.traffic["https"].protocol == "HTTPS" && length(aws_lb_listener.http_redirect) == 1
    error_message = "with a certificate: HTTPS on 443 and a redirect on 80"
  }
  assert {
    condition     = aws_lb_listener.traffic["https"].ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06" && aws_lb_listener.traffic["https"].certificate_arn == var.certificate_arn
    error_message = "the HTTPS listener carries the certificate and a TLS 1.2+ policy"
  }
}

run "logs_are_off_by_default" {
  command = plan

  assert {
    condition     = length(aws_flow_log.vpc) == 0 && length(aws_s3_bucket_logging.state) == 0 && length(aws_s3_bucket_logging.web) == 0
    error_message = "no flow logs or server access logs without access_logs_bucket"
  }
  assert {
    condition     = length(aws_lb.main.access_logs) == 0
    error_message = "no ALB access logs without access_logs_bucket"
  }
  assert {
    condition     = aws_cloudfront_distribution.web.viewer_certificate[0].cloudfront_default_certificate
    error_message = "without site_certificate_arn the distribution keeps its *.cloudfront.net certificate"
  }
}

run "production_layout_logs_and_the_site_domain" {
  command = plan

  variables {
    certificate_arn      = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
    site_aliases         = ["www.example.com"]
    site_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-1111-1111-1111-111111111111"
    access_logs_bucket   = "acme-logs"
  }

  assert {
    condition     = length(aws_flow_log.vpc) == 1 && aws_flow_log.vpc[0].log_destination == "arn:aws:s3:::acme-logs/vpc-flow-logs/"
    error_message = "flow logs go to the logs bucket's vpc-flow-logs/ folder"
  }
  assert {
    condition     = aws_s3_bucket_logging.state[0].target_prefix == "s3/state/" && aws_s3_bucket_logging.web[0].target_prefix == "s3/web/"
    error_message = "each bucket logs under its own prefix"
  }
  assert {
    condition     = aws_lb.main.access_logs[0].enabled && aws_lb.main.access_logs[0].bucket == "acme-logs"
    error_message = "the ALB logs to the logs bucket"
  }
  assert {
    condition     = aws_cloudfront_distribution.web.logging_config[0].bucket == "acme-logs.s3.amazonaws.com"
    error_message = "CloudFront logs to the logs bucket"
  }
  assert {
    condition     = aws_cloudfront_distribution.web.viewer_certificate[0].minimum_protocol_version == "TLSv1.2_2021" && aws_cloudfront_distribution.web.viewer_certificate[0].ssl_support_method == "sni-only" && !aws_cloudfront_distribution.web.viewer_certificate[0].cloudfront_default_certificate
    error_message = "the site's own certificate, SNI only, TLS 1.2 minimum"
  }
  assert {
    condition     = contains(tolist(aws_cloudfront_distribution.web.aliases), "www.example.com")
    error_message = "the alias is set"
  }
}

run "an_alias_without_its_certificate_is_refused" {
  command = plan

  variables {
    site_aliases = ["www.example.com"]
  }

  expect_failures = [aws_cloudfront_distribution.web]
}

run "a_site_certificate_outside_us_east_1_is_refused" {
  command = plan

  variables {
    site_certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-1111-1111-1111-111111111111"
  }

  expect_failures = [var.site_certificate_arn]
}

run "an_existing_oidc_provider_is_looked_up_not_created" {
  command = plan

  variables {
    create_github_oidc_provider = false
  }

  assert {
    condition     = length(aws_iam_openid_connect_provider.github) == 0
    error_message = "the provider is not created a second time"
  }
}

run "bad_app_names_are_refused" {
  command = plan

  variables {
    app = "Shop_1"
  }

  expect_failures = [var.app]
}

run "a_name_too_long_for_a_target_group_is_refused" {
  command = plan

  variables {
    app = "a-very-long-application-name-x"
  }

  expect_failures = [var.app]
}

run "a_repository_that_is_not_owner_slash_name_is_refused" {
  command = plan

  variables {
    github_repository = "just-a-name"
  }

  expect_failures = [var.github_repository]
}

run "instances_boot_both_colours_from_the_desired_state" {
  command = plan

  assert {
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "aws s3 cp --only-show-errors --region us-east-1 \"s3://shop-deploy-state-123456789012/bgcloud/shop/desired/$color.sh\"")
    error_message = "the user data fetches each colour's launch script from bgcloud's state prefix"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "for color in blue green; do")
    error_message = "the user data starts both colours"
  }
}
