# A small VPC: two public subnets in two availability zones (an ALB needs two), an internet
# gateway and one route table. The instances get public IPs so they reach SSM, ECR and the
# package mirrors without a NAT gateway; nothing from the internet reaches them (see the
# instance security group: only the two colour ports, only from the ALB).

data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394:only the first two zones are used (slice below), so a zone AWS adds does not widen the set
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, 2)
}

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.tags, { Name = var.app })
}

# The VPC's default security group, taken over with no rules: nothing that lands in it by
# mistake can talk to anything. The ALB and the instances use their own groups below.
resource "aws_default_security_group" "main" {
  vpc_id = aws_vpc.main.id

  tags = merge(local.tags, { Name = "${var.app}-default-unused" })
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id

  tags = merge(local.tags, { Name = var.app })
}

resource "aws_subnet" "public" {
  # checkov:skip=CKV_AWS_130:public IPs instead of a NAT gateway (cost); the instances accept traffic from the ALB only (security groups below)
  count = length(local.azs)

  vpc_id                  = aws_vpc.main.id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  map_public_ip_on_launch = true

  tags = merge(local.tags, { Name = "${var.app}-public-${local.azs[count.index]}" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }

  tags = merge(local.tags, { Name = "${var.app}-public" })
}

resource "aws_route_table_association" "public" {
  count = length(aws_subnet.public)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# ---------------------------------------------------------------------------------------------
# Security groups
# ---------------------------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${var.app}-alb"
  description = "${var.app} ALB: HTTP and HTTPS from the internet"
  vpc_id      = aws_vpc.main.id

  tags = merge(local.tags, { Name = "${var.app}-alb" })
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  # checkov:skip=CKV_AWS_260:port 80 redirects to HTTPS when certificate_arn is set (the HTTP-only layout is for trials)
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from the internet"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from the internet"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# The ALB only talks to the instances, on the two colour ports (traffic and health checks).
resource "aws_vpc_security_group_egress_rule" "alb_to_instances" {
  for_each = {
    blue  = var.blue_port
    green = var.green_port
  }

  security_group_id            = aws_security_group.alb.id
  description                  = "To the ${each.key} containers"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.instances.id
}

resource "aws_security_group" "instances" {
  name        = "${var.app}-instances"
  description = "${var.app} instances: the blue and green ports from the ALB only; no SSH (SSM instead)"
  vpc_id      = aws_vpc.main.id

  tags = merge(local.tags, { Name = "${var.app}-instances" })
}

resource "aws_vpc_security_group_ingress_rule" "instances_from_alb" {
  for_each = {
    blue  = var.blue_port
    green = var.green_port
  }

  security_group_id            = aws_security_group.instances.id
  description                  = "${each.key} container port from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.alb.id
}

# Outbound: SSM, ECR, S3 (image layers), Parameter Store and the OS package mirrors over HTTPS,
# and DNS/NTP through the VPC resolver. Left open because the AWS endpoints have no fixed
# addresses; restrict with VPC endpoints and a prefix list if your policy requires it.
resource "aws_vpc_security_group_egress_rule" "instances_all" {
  security_group_id = aws_security_group.instances.id
  description       = "All outbound (SSM, ECR, S3, package mirrors)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
