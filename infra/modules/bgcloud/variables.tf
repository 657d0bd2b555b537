# ---------------------------------------------------------------------------------------------
# Naming and ownership
# ---------------------------------------------------------------------------------------------

variable "app" {
  description = "Application name: names every resource and is bgcloud's `app`. Lower-case letters, digits and hyphens; at most 26 characters so that \"<app>-green\" fits the 32-character target group name limit."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,24}[a-z0-9]$", var.app))
    error_message = "app must be 2-26 characters of [a-z0-9-], start with a letter and not end with a hyphen."
  }
}

variable "tags" {
  description = "Extra tags for every resource (the module always adds bgcloud:app = var.app)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC; the two public subnets are the first two /24s of it (for a /16)."
  type        = string
  default     = "10.20.0.0/16"
}

# ---------------------------------------------------------------------------------------------
# Load balancer and target groups
# ---------------------------------------------------------------------------------------------

variable "blue_port" {
  description = "Host port of the blue colour's container on every instance (bgcloud's backend.blue_port)."
  type        = number
  default     = 8081
}

variable "green_port" {
  description = "Host port of the green colour's container on every instance (bgcloud's backend.green_port)."
  type        = number
  default     = 8082
  # "Must differ from blue_port" is a precondition on the target groups: a validation block
  # may refer to another variable only from Terraform 1.9 on.
}

variable "container_port" {
  description = "Port the application listens on inside its container (bgcloud's backend.container_port)."
  type        = number
  default     = 3000
}

variable "deregistration_delay" {
  description = "Seconds the ALB drains a deregistered target. bgcloud never deregisters on a switch (weights do the work), so keep this short: it only slows instance replacement."
  type        = number
  default     = 10
}

variable "health_check_path" {
  description = "HTTP path the ALB health-checks on each colour's port."
  type        = string
  default     = "/healthz"
}

variable "health_check_interval" {
  description = "Seconds between health checks (5-300). Time to `healthy` is about interval x healthy_threshold; bgcloud's health gate trusts a new container's `healthy` (max(healthy_threshold, unhealthy_threshold) + 1) x interval after the launch: 30 s with the defaults."
  type        = number
  default     = 10
}

variable "health_check_timeout" {
  description = "Seconds before a health check counts as failed (2-120, less than the interval)."
  type        = number
  default     = 5
}

variable "healthy_threshold" {
  description = "Consecutive successful checks before a target is `healthy` (2-10)."
  type        = number
  default     = 2
}

variable "unhealthy_threshold" {
  description = "Consecutive failed checks before a target is `unhealthy` (2-10)."
  type        = number
  default     = 2
}

variable "health_check_matcher" {
  description = "HTTP codes that count as healthy."
  type        = string
  default     = "200-399"
}

variable "certificate_arn" {
  description = "ACM certificate ARN (same region) for an HTTPS listener on 443. Empty: HTTP only, and bgcloud drives the HTTP listener. Set: bgcloud drives the HTTPS listener and port 80 redirects to it."
  type        = string
  default     = ""
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_idle_timeout" {
  description = "ALB idle timeout in seconds."
  type        = number
  default     = 60
}

variable "enable_deletion_protection" {
  description = "Protect the ALB from deletion."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------------------------

variable "instance_count" {
  description = "Number of instances (the Auto Scaling group's min, max and desired size). Every instance runs both colours."
  type        = number
  default     = 2

  validation {
    condition     = var.instance_count >= 1
    error_message = "instance_count must be at least 1."
  }
}

variable "instance_type" {
  description = "EC2 instance type. It must have room for two copies of the container (blue and green run side by side)."
  type        = string
  default     = "t3.small"
}

variable "ami_id" {
  description = "AMI for the instances. Empty: the latest Amazon Linux 2023 (x86_64) from the public SSM parameter."
  type        = string
  default     = ""
}

variable "root_volume_size" {
  description = "Root volume size in GiB (holds Docker images of both colours)."
  type        = number
  default     = 30
}

# ---------------------------------------------------------------------------------------------
# ECR, S3, CloudFront
# ---------------------------------------------------------------------------------------------

variable "ecr_keep_images" {
  description = "How many images the ECR lifecycle policy keeps. Keep enough that the previous colour's image can still be pulled on a new instance."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the ECR repository and buckets with their content. Leave false in production."
  type        = bool
  default     = false
}

variable "state_noncurrent_version_days" {
  description = "Days to keep noncurrent versions of the state bucket's objects (every lock and record write makes one)."
  type        = number
  default     = 90
}

variable "price_class" {
  description = "CloudFront price class."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.price_class)
    error_message = "price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "web_noncurrent_version_days" {
  description = "Days to keep noncurrent versions of the frontend bucket's objects: a pruned release or a mistaken delete can be restored within this time."
  type        = number
  default     = 30
}

variable "site_aliases" {
  description = "Domain names the site is served on (CloudFront aliases), e.g. [\"www.example.com\"]. Needs site_certificate_arn. Empty: the site is served on the distribution's own *.cloudfront.net name."
  type        = list(string)
  default     = []
}

variable "site_certificate_arn" {
  description = "ACM certificate in us-east-1 (CloudFront's region) covering site_aliases. The distribution then serves SNI only with TLSv1.2_2021 as the minimum protocol."
  type        = string
  default     = ""

  validation {
    condition     = var.site_certificate_arn == "" || can(regex("^arn:[^:]+:acm:us-east-1:", var.site_certificate_arn))
    error_message = "site_certificate_arn must be an ACM certificate in us-east-1: CloudFront only takes certificates from there. Request or import one in us-east-1 and pass its ARN."
  }
}

# ---------------------------------------------------------------------------------------------
# Logs (opt-in)
# ---------------------------------------------------------------------------------------------

variable "access_logs_bucket" {
  description = "An existing S3 bucket in the stack's region for the ALB's access logs (alb/), CloudFront's standard logs (cloudfront/), both buckets' server access logs (s3/state/, s3/web/) and the VPC's flow logs (vpc-flow-logs/). Empty: no logs. The bucket must let each delivery service write (its policy for the ALB, S3 logging and flow logs; ACLs enabled for CloudFront): see docs/aws/logs.md."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------------------------
# CI (GitHub Actions OIDC)
# ---------------------------------------------------------------------------------------------

variable "github_repository" {
  description = "GitHub repository (\"owner/name\") whose workflows may assume the CI role: from the main branch or the `production` environment only."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like \"owner/name\"."
  }
}

variable "create_github_oidc_provider" {
  description = "Create the account's IAM OIDC provider for token.actions.githubusercontent.com. An account has at most one per URL: set false when it exists already (it is then looked up)."
  type        = bool
  default     = true
}
