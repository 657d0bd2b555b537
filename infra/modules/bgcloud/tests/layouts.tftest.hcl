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
    condition     = length(aws_lb_listener.http_forward) == 1 && length(aws_lb_listener.https) == 0
    error_message = "without a certificate the HTTP listener is the one bgcloud drives"
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
    condition     = length(aws_lb_listener.https) == 1 && length(aws_lb_listener.http_redirect) == 1
    error_message = "with a certificate: HTTPS on 443 and a redirect on 80"
  }
  assert {
    condition     = length(aws_lb_listener.http_forward) == 0
    error_message = "no plain forward on 80 once HTTPS exists"
  }
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
