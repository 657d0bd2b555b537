output "bgcloud_toml" {
  description = "bgcloud.toml for this stack: `terraform output -raw bgcloud_toml > bgcloud.toml`."
  value       = module.bgcloud.bgcloud_toml
}

output "ci_role_arn" {
  description = "Set as the GitHub repository variable BGCLOUD_ROLE_ARN."
  value       = module.bgcloud.ci_role_arn
}

output "ecr_repository_url" {
  description = "Where to push the application image."
  value       = module.bgcloud.ecr_repository_url
}

output "api_url" {
  description = "The API through the ALB."
  value       = module.bgcloud.api_url
}

output "site_url" {
  description = "The frontend through CloudFront."
  value       = module.bgcloud.site_url
}
