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

  # The defaults, spelled out where they meet bgcloud.toml:
  blue_port            = 8081
  green_port           = 8082
  container_port       = 3000
  instance_count       = 2
  deregistration_delay = 10
  health_check_path    = "/healthz"

  # Set false if the account already has the token.actions.githubusercontent.com provider.
  create_github_oidc_provider = true

  tags = {
    "managed-by" = "terraform"
  }
}
