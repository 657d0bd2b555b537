//! A colour's targets: their health as the ALB reports it, registering and deregistering them.

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use aws_sdk_elasticloadbalancingv2::Client;
use serde::Serialize;

use crate::error::{aws, Result};

/// One registered target and its state (`healthy`, `initial`, `unhealthy`, `unused`,
/// `draining`, `unavailable`), with the ALB's reason code when it is not healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetState {
    pub id: String,
    pub port: Option<i32>,
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

impl TargetState {
    pub fn is_healthy(&self) -> bool {
        self.state == "healthy"
    }
}

impl std::fmt::Display for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, " {}", self.state)?;
        if let Some(reason) = &self.reason {
            write!(f, " ({reason}")?;
            if let Some(d) = &self.description {
                write!(f, ": {d}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

pub async fn targets(elb: &Client, target_group_arn: &str) -> Result<Vec<TargetState>> {
    let out = elb
        .describe_target_health()
        .target_group_arn(target_group_arn)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_target_group_not_found_exception())
            {
                crate::error::Error::refused(format!(
                    "target group {target_group_arn} does not exist: check blue_target_group_arn / \
                     green_target_group_arn in the config"
                ))
            } else {
                aws(format!("reading target health of {target_group_arn}"))(e)
            }
        })?;
    let mut states: Vec<TargetState> = out
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let health = d.target_health();
            TargetState {
                id: d
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_string(),
                port: d.target().and_then(|t| t.port()),
                state: health
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "unknown".to_string()),
                reason: health
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string()),
                description: health.and_then(|h| h.description()).map(str::to_string),
            }
        })
        .collect();
    states.sort_by(|a, b| (&a.id, a.port).cmp(&(&b.id, b.port)));
    Ok(states)
}

/// Registers `instances` in the group on `port` (a fresh registration starts `initial`).
pub async fn register(
    elb: &Client,
    target_group_arn: &str,
    instances: &[String],
    port: i32,
) -> Result<()> {
    let descriptions = instances
        .iter()
        .map(|id| TargetDescription::builder().id(id).port(port).build())
        .collect();
    elb.register_targets()
        .target_group_arn(target_group_arn)
        .set_targets(Some(descriptions))
        .send()
        .await
        .map_err(aws(format!("registering targets in {target_group_arn}")))?;
    Ok(())
}

/// Takes the `(instance, port)` targets out of the group (they start `draining`).
pub async fn deregister(
    elb: &Client,
    target_group_arn: &str,
    targets: &[(String, Option<i32>)],
) -> Result<()> {
    let descriptions = targets
        .iter()
        .map(|(id, port)| TargetDescription::builder().id(id).set_port(*port).build())
        .collect();
    elb.deregister_targets()
        .target_group_arn(target_group_arn)
        .set_targets(Some(descriptions))
        .send()
        .await
        .map_err(aws(format!(
            "deregistering targets from {target_group_arn}"
        )))?;
    Ok(())
}
