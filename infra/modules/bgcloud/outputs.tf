locals {
  bgcloud_toml = <<-EOT
    app = "${var.app}"
    region = "${local.region}"
    [state]
    bucket = "${aws_s3_bucket.state.bucket}"
    [backend]
    listener_arn = "${local.bgcloud_listener_arn}"
    blue_target_group_arn = "${aws_lb_target_group.color["blue"].arn}"
    green_target_group_arn = "${aws_lb_target_group.color["green"].arn}"
    repository = "${aws_ecr_repository.api.name}"
    container_port = ${var.container_port}
    blue_port = ${var.blue_port}
    green_port = ${var.green_port}
    instance_tags = { "bgcloud:app" = "${var.app}" }
    health_timeout = "5m"
    poll_interval = "5s"
    [frontend]
    bucket = "${aws_s3_bucket.web.bucket}"
    distribution_id = "${aws_cloudfront_distribution.web.id}"
    dir = "web/dist"
  EOT
}

# --- bgcloud ----------------------------------------------------------------------------------

output "bgcloud_toml" {
  description = "A ready bgcloud.toml for this stack: `terraform output -raw bgcloud_toml > bgcloud.toml`. Add [backend] env and secrets (SSM parameter names under /<app>/) as needed."
  value       = local.bgcloud_toml
}

output "listener_arn" {
  description = "The listener bgcloud drives ([backend].listener_arn): the HTTPS one when a certificate is set, else the HTTP one."
  value       = local.bgcloud_listener_arn
}

output "http_listener_arn" {
  description = "The port-80 listener (forwarding without a certificate, redirecting to HTTPS with one)."
  value       = local.https ? aws_lb_listener.http_redirect[0].arn : local.bgcloud_listener_arn
}

output "https_listener_arn" {
  description = "The HTTPS listener, or null without a certificate."
  value       = local.https ? local.bgcloud_listener_arn : null
}

# --- Load balancer ----------------------------------------------------------------------------

output "load_balancer_arn" {
  description = "ARN of the ALB."
  value       = aws_lb.main.arn
}

output "load_balancer_dns_name" {
  description = "DNS name of the ALB (point the API's DNS record here)."
  value       = aws_lb.main.dns_name
}

output "load_balancer_zone_id" {
  description = "Route 53 zone id of the ALB, for an alias record."
  value       = aws_lb.main.zone_id
}

output "api_url" {
  description = "Base URL of the API through the ALB."
  value       = local.https ? "https://${aws_lb.main.dns_name}" : "http://${aws_lb.main.dns_name}"
}

output "blue_target_group_arn" {
  description = "ARN of the blue target group."
  value       = aws_lb_target_group.color["blue"].arn
}

output "green_target_group_arn" {
  description = "ARN of the green target group."
  value       = aws_lb_target_group.color["green"].arn
}

output "blue_target_group_name" {
  description = "Name of the blue target group."
  value       = aws_lb_target_group.color["blue"].name
}

output "green_target_group_name" {
  description = "Name of the green target group."
  value       = aws_lb_target_group.color["green"].name
}

# --- Network and instances --------------------------------------------------------------------

output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.main.id
}

output "public_subnet_ids" {
  description = "IDs of the two public subnets."
  value       = aws_subnet.public[*].id
}

output "alb_security_group_id" {
  description = "Security group of the ALB."
  value       = aws_security_group.alb.id
}

output "instance_security_group_id" {
  description = "Security group of the instances."
  value       = aws_security_group.instances.id
}

output "autoscaling_group_name" {
  description = "Name of the Auto Scaling group."
  value       = aws_autoscaling_group.app.name
}

output "autoscaling_group_arn" {
  description = "ARN of the Auto Scaling group."
  value       = aws_autoscaling_group.app.arn
}

output "launch_template_id" {
  description = "ID of the instances' launch template."
  value       = aws_launch_template.app.id
}

output "instance_role_arn" {
  description = "ARN of the instances' IAM role."
  value       = aws_iam_role.instance.arn
}

output "instance_role_name" {
  description = "Name of the instances' IAM role."
  value       = aws_iam_role.instance.name
}

output "instance_profile_arn" {
  description = "ARN of the instances' instance profile."
  value       = aws_iam_instance_profile.instance.arn
}

output "ssm_parameter_prefix" {
  description = "The instances may read SSM parameters under this path only: put bgcloud's secrets here."
  value       = "/${var.app}/"
}

# --- ECR --------------------------------------------------------------------------------------

output "ecr_repository_name" {
  description = "Name of the ECR repository ([backend].repository)."
  value       = aws_ecr_repository.api.name
}

output "ecr_repository_arn" {
  description = "ARN of the ECR repository."
  value       = aws_ecr_repository.api.arn
}

output "ecr_repository_url" {
  description = "URL of the ECR repository, for docker push."
  value       = aws_ecr_repository.api.repository_url
}

# --- S3 and CloudFront ------------------------------------------------------------------------

output "state_bucket_name" {
  description = "Name of bgcloud's state bucket ([state].bucket)."
  value       = aws_s3_bucket.state.bucket
}

output "state_bucket_arn" {
  description = "ARN of bgcloud's state bucket."
  value       = aws_s3_bucket.state.arn
}

output "web_bucket_name" {
  description = "Name of the frontend bucket ([frontend].bucket)."
  value       = aws_s3_bucket.web.bucket
}

output "web_bucket_arn" {
  description = "ARN of the frontend bucket."
  value       = aws_s3_bucket.web.arn
}

output "cloudfront_distribution_id" {
  description = "ID of the CloudFront distribution ([frontend].distribution_id)."
  value       = aws_cloudfront_distribution.web.id
}

output "cloudfront_distribution_arn" {
  description = "ARN of the CloudFront distribution."
  value       = aws_cloudfront_distribution.web.arn
}

output "cloudfront_domain_name" {
  description = "Domain name of the CloudFront distribution."
  value       = aws_cloudfront_distribution.web.domain_name
}

output "site_url" {
  description = "URL of the frontend: the first alias when site_aliases is set, else the distribution's own name."
  value       = "https://${length(var.site_aliases) > 0 ? var.site_aliases[0] : aws_cloudfront_distribution.web.domain_name}"
}

# --- CI ---------------------------------------------------------------------------------------

output "ci_role_arn" {
  description = "ARN of the role GitHub Actions assumes: set it as the repository variable BGCLOUD_ROLE_ARN."
  value       = aws_iam_role.ci.arn
}

output "ci_role_name" {
  description = "Name of the CI role."
  value       = aws_iam_role.ci.name
}

output "github_oidc_provider_arn" {
  description = "ARN of the GitHub Actions OIDC provider (created here or looked up)."
  value       = local.github_oidc_provider_arn
}
