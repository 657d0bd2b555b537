# The instances: an Auto Scaling group of var.instance_count Amazon Linux 2023 instances, each
# running Docker and the SSM agent, registered in both colour target groups. bgcloud starts
# the containers on them through SSM Run Command; there is no SSH and no key pair.

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  # AL2023 ships the SSM agent, curl and the AWS CLI v2; only Docker is added. Container logs
  # are rotated so two colours' logs cannot fill the disk.
  user_data = <<-EOT
    #!/bin/bash
    set -euxo pipefail
    dnf install -y docker
    mkdir -p /etc/docker
    cat > /etc/docker/daemon.json <<'JSON'
    {
      "log-driver": "json-file",
      "log-opts": { "max-size": "50m", "max-file": "5" }
    }
    JSON
    systemctl enable --now docker
    systemctl enable --now amazon-ssm-agent
    ${local.boot_desired_state}
  EOT

  # The colours as bgcloud last deployed them (its desired state in the state bucket): a new or
  # replaced instance starts both with the recorded digests, ports, env and secret names before
  # the ALB's health checks count it, with no agent and no bgcloud command. Absent before a
  # colour's first deploy. A colour that fails to start is logged and left for `bgcloud deploy`.
  # The scripts hold env values: readable by root only, and removed once run.
  # One script at a time on the instance: bgcloud's launch scripts take the same lock (and wait
  # for cloud-init first), and each desired state is read once the lock is held, so this loop
  # never runs an older script over a container a deploy has just started, nor a deploy races
  # it. The scripts it runs know the lock is held (BGCLOUD_LOCK_HELD) and do not wait for it;
  # they get no fd 9 (a container must never inherit the lock: podman's conmon would keep it).
  boot_desired_state = <<-EOT
    umask 077
    exec 9>/run/bgcloud.lock
    flock -w 600 9 || echo "bgcloud: could not take /run/bgcloud.lock in 600 s; starting the colours anyway" >&2
    export BGCLOUD_LOCK_HELD=1
    for color in blue green; do
      if aws s3 cp --only-show-errors --region ${local.region} "s3://${local.state_bucket_name}/${local.desired_state_prefix}$color.sh" "/run/bgcloud-$color.sh"; then
        sh "/run/bgcloud-$color.sh" 9>&- || echo "bgcloud: $color did not start at boot" >&2
        rm -f "/run/bgcloud-$color.sh"
      else
        echo "bgcloud: no desired state for $color yet (never deployed)" >&2
      fi
    done
    unset BGCLOUD_LOCK_HELD
    exec 9>&-
  EOT
}

resource "aws_launch_template" "app" {
  name_prefix = "${var.app}-"
  description = "${var.app}: Amazon Linux 2023 with Docker, managed by SSM; containers are started by bgcloud"

  # A new AMI in the public parameter makes a new template version, which only instances
  # launched after it use (there is no instance refresh: see the Auto Scaling group).
  image_id      = var.ami_id != "" ? var.ami_id : data.aws_ssm_parameter.al2023.value
  instance_type = var.instance_type

  vpc_security_group_ids = [aws_security_group.instances.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  user_data = base64encode(local.user_data)

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required" # IMDSv2 only
    # 1 hop: the host (SSM agent, the AWS CLI in bgcloud's launch script) reaches the instance
    # role, containers do not. Raise to 2 if the application itself needs the instance role.
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.root_volume_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = var.app })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = var.app })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "app" {
  name                = var.app
  min_size            = var.instance_count
  max_size            = var.instance_count
  desired_capacity    = var.instance_count
  vpc_zone_identifier = aws_subnet.public[*].id

  launch_template {
    id      = aws_launch_template.app.id
    version = aws_launch_template.app.latest_version
  }

  # Every instance in both target groups. An ASG registers an instance on each target group's
  # own port, which here is exactly that colour's host port (blue_port, green_port).
  target_group_arns = [for tg in aws_lb_target_group.color : tg.arn]

  # EC2 health, not ELB: the idle colour's target group is normally unhealthy (nothing listens
  # on its port before the first deploy to it, or after its container is replaced), and ELB
  # health would make the ASG terminate perfectly good instances.
  health_check_type         = "EC2"
  health_check_grace_period = 300

  # An instance that the ASG launches later (scale-out, a replaced one) starts both colours
  # from bgcloud's desired state in its user data; the ALB sends it traffic once it is healthy.

  tag {
    key                 = "bgcloud:app"
    value               = var.app
    propagate_at_launch = true
  }

  tag {
    key                 = "Name"
    value               = var.app
    propagate_at_launch = true
  }

  dynamic "tag" {
    # Both keys above are set already; a duplicate key is an error.
    for_each = { for k, v in var.tags : k => v if !contains(["bgcloud:app", "Name"], k) }

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  depends_on = [aws_route_table_association.public]
}
