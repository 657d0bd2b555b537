variable "app" {
  description = "Application name (bgcloud's `app`): [a-z0-9-], at most 26 characters."
  type        = string
}

variable "region" {
  description = "AWS region of the stack."
  type        = string
}

variable "github_repository" {
  description = "GitHub repository (\"owner/name\") whose deploy workflow assumes the CI role."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate ARN (in var.region) for HTTPS on the ALB. Production sets it (terraform.tfvars.example shows how); empty gives the HTTP-only trial layout."
  type        = string
  default     = ""
}

variable "site_aliases" {
  description = "Domain names of the site (CloudFront aliases); needs site_certificate_arn."
  type        = list(string)
  default     = []
}

variable "site_certificate_arn" {
  description = "ACM certificate in us-east-1 covering site_aliases (TLSv1.2_2021 minimum)."
  type        = string
  default     = ""
}

variable "access_logs_bucket" {
  description = "Existing bucket for ALB, CloudFront, S3 access and VPC flow logs; empty for none."
  type        = string
  default     = ""
}

variable "health_check_interval" {
  description = "Seconds between the ALB's health checks (5-300)."
  type        = number
  default     = 10
}

variable "health_check_timeout" {
  description = "Seconds before a health check fails (2-120, below the interval)."
  type        = number
  default     = 5
}

variable "healthy_threshold" {
  description = "Consecutive passing checks before a target is healthy (2-10)."
  type        = number
  default     = 2
}

variable "unhealthy_threshold" {
  description = "Consecutive failing checks before a target is unhealthy (2-10)."
  type        = number
  default     = 2
}

variable "deregistration_delay" {
  description = "Seconds a deregistered target drains."
  type        = number
  default     = 10
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete non-empty buckets and the image repository (tests only)."
  type        = bool
  default     = false
}
