# The ALB, the two colour target groups and the listener(s) whose weighted forward bgcloud drives.

resource "aws_lb" "main" {
  # checkov:skip=CKV_AWS_150:deletion protection is the enable_deletion_protection variable (off so trials can destroy; set it in production)
  # checkov:skip=CKV2_AWS_28:a WAF web ACL is the user's choice (cost, rules); associate one with aws_wafv2_web_acl_association
  name               = var.app
  load_balancer_type = "application"
  internal           = false
  security_groups    = [aws_security_group.alb.id]
  subnets            = aws_subnet.public[*].id

  idle_timeout               = var.alb_idle_timeout
  drop_invalid_header_fields = true
  enable_deletion_protection = var.enable_deletion_protection

  dynamic "access_logs" {
    for_each = local.logs ? [var.access_logs_bucket] : []
    content {
      bucket  = access_logs.value
      prefix  = "alb"
      enabled = true
    }
  }

  tags = local.tags
}

locals {
  colors = {
    blue  = var.blue_port
    green = var.green_port
  }
}

# One target group per colour. The Auto Scaling group registers every instance in both, on the
# target group's own port, which is exactly that colour's host port. bgcloud registers any
# instance that is missing (on the same port) before it waits for health.
resource "aws_lb_target_group" "color" {
  for_each = local.colors

  name                 = "${var.app}-${each.key}"
  port                 = each.value
  protocol             = "HTTP"
  target_type          = "instance"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = var.deregistration_delay

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = var.health_check_path
    interval            = var.health_check_interval
    timeout             = var.health_check_timeout
    healthy_threshold   = var.healthy_threshold
    unhealthy_threshold = var.unhealthy_threshold
    matcher             = var.health_check_matcher
  }

  tags = merge(local.tags, { "bgcloud:color" = each.key })

  lifecycle {
    precondition {
      condition     = var.blue_port != var.green_port
      error_message = "blue_port and green_port must differ: each colour needs its own host port."
    }
  }
}

locals {
  https = var.certificate_arn != ""
}

# ---------------------------------------------------------------------------------------------
# The listener bgcloud drives.
#
# Its default action is a weighted forward to BOTH target groups, blue 100 / green 0 at
# creation. bgcloud changes these weights at run time (ModifyListener): deploy sends traffic to
# the new colour, promote and rollback move it again. Terraform must therefore not manage the
# weights after creation, or the next `terraform apply` would silently put all traffic back on
# blue, whichever colour is live. Hence `ignore_changes = [default_action]`. The idle colour
# must stay in the forward at weight 0: a target group no listener forwards to is `unused` and
# is not health-checked, and bgcloud waits for the new colour to be healthy before shifting.
#
# To change the default action on purpose (other target groups, a fixed response), edit it
# outside Terraform or remove the ignore for one apply, knowing it resets the weights.
# ---------------------------------------------------------------------------------------------

# The listener bgcloud drives: HTTPS on 443 when a certificate is set, else HTTP on 80 (a trial
# layout: production sets certificate_arn). One resource for both, keyed by its protocol, so a
# linter reads the layout the variables choose; the moved blocks below keep the addresses of
# stacks applied before the merge.
resource "aws_lb_listener" "traffic" {
  for_each = toset([local.https ? "https" : "http"])

  load_balancer_arn = aws_lb.main.arn
  port              = local.https ? 443 : 80
  protocol          = local.https ? "HTTPS" : "HTTP"
  ssl_policy        = local.https ? var.ssl_policy : null
  certificate_arn   = local.https ? var.certificate_arn : null

  default_action {
    type = "forward"

    forward {
      target_group {
        arn    = aws_lb_target_group.color["blue"].arn
        weight = 100
      }

      target_group {
        arn    = aws_lb_target_group.color["green"].arn
        weight = 0
      }
    }
  }

  tags = local.tags

  lifecycle {
    # bgcloud owns the weights: see the comment above.
    ignore_changes = [default_action]
  }
}

moved {
  from = aws_lb_listener.http_forward[0]
  to   = aws_lb_listener.traffic["http"]
}

moved {
  from = aws_lb_listener.https[0]
  to   = aws_lb_listener.traffic["https"]
}

# With a certificate, port 80 only redirects to HTTPS. Terraform manages this one fully.
# Switching certificate_arn between empty and set replaces the listener bgcloud drives (a new
# ARN: write bgcloud.toml again from the `bgcloud_toml` output) and the port-80 one; if AWS
# answers DuplicateListener because the old one was not yet gone, run `terraform apply` again.
resource "aws_lb_listener" "http_redirect" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.main.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }

  tags = local.tags
}

locals {
  # The listener bgcloud drives: [backend].listener_arn.
  bgcloud_listener_arn = one(values(aws_lb_listener.traffic)[*].arn)
}
