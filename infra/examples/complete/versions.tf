terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # Keep this root module's Terraform state remotely in production, e.g.:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "bgcloud/shop.tfstate"
  #   region       = "us-east-1"
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region
}
