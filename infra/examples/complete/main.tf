# The whole bgcloud stack in one module call: VPC, ALB with blue/green target groups, an Auto
# Scaling group running Docker, ECR, the state bucket, the frontend bucket behind CloudFront,
# and the GitHub Actions OIDC role.
#
#   terraform init
#   terraform apply -var-file=terraform.tfvars
#   terraform output -raw bgcloud_toml > ../../../bgcloud.toml

module "bgcloud" {
  source = "../../modules/bgcloud"

  app               = var.app
  github_repository = var.github_repository
  certificate_arn   = var.certificate_arn

  # Production: HTTPS on the ALB and the site on its own domain (TLS 1.2+), logs kept.
  site_aliases         = var.site_aliases
  site_certificate_arn = var.site_certificate_arn
  access_logs_bucket   = var.access_logs_bucket

  # The defaults, spelled out where they meet bgcloud.toml:
  blue_port         = 8081
  green_port        = 8082
  container_port    = 3000
  instance_count    = 2
  health_check_path = "/healthz"

  # bgcloud's health gate waits (max(healthy, unhealthy) + 1) x interval after a launch: 30 s
  # with these defaults. scripts/test-infra applies this example with 5 s and 2/2 (15 s).
  health_check_interval = var.health_check_interval
  health_check_timeout  = var.health_check_timeout
  healthy_threshold     = var.healthy_threshold
  unhealthy_threshold   = var.unhealthy_threshold
  deregistration_delay  = var.deregistration_delay

  # Lets `terraform destroy` delete buckets and the repository that still hold releases and
  # images. Keep it false in production.
  force_destroy = var.force_destroy

  # Set false if the account already has the token.actions.githubusercontent.com provider.
  create_github_oidc_provider = true

  tags = {
    "managed-by" = "terraform"
  }
}
