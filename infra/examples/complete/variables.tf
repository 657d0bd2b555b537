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
  description = "ACM certificate ARN (in var.region) for HTTPS on the ALB; empty for HTTP only."
  type        = string
  default     = ""
}
