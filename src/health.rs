//! Target health of a colour's target group, as the ALB reports it.

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

/// Registers any of `instances` missing from the target group (on `port`), then polls every
/// `poll` until all of them are healthy. At `deadline` it fails naming the targets that are not
/// healthy and the ALB's reason for each.
pub async fn wait_healthy(
    elb: &Client,
    target_group_arn: &str,
    what: &str,
    instances: &[String],
    port: u16,
    poll: std::time::Duration,
    deadline: std::time::Instant,
) -> Result<Vec<TargetState>> {
    use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
    use std::time::Instant;

    let registered = targets(elb, target_group_arn).await?;
    let missing: Vec<&String> = instances
        .iter()
        .filter(|id| {
            !registered
                .iter()
                .any(|t| &t.id == *id && t.port == Some(i32::from(port)))
        })
        .collect();
    if !missing.is_empty() {
        tracing::info!(
            "registering {} on port {port} in {what}'s target group",
            join(&missing)
        );
        let descriptions = missing
            .iter()
            .map(|id| {
                TargetDescription::builder()
                    .id(*id)
                    .port(i32::from(port))
                    .build()
            })
            .collect();
        elb.register_targets()
            .target_group_arn(target_group_arn)
            .set_targets(Some(descriptions))
            .send()
            .await
            .map_err(aws(format!("registering targets in {target_group_arn}")))?;
    }
    // With nothing to register, the read above is the first poll.
    let mut first = missing.is_empty().then_some(registered);
    let mut last_report = String::new();
    loop {
        let all = match first.take() {
            Some(states) => states,
            None => targets(elb, target_group_arn).await?,
        };
        let states: Vec<TargetState> = all
            .into_iter()
            .filter(|t| instances.contains(&t.id) && t.port == Some(i32::from(port)))
            .collect();
        let healthy = states.iter().filter(|t| t.is_healthy()).count();
        if healthy == instances.len() {
            return Ok(states);
        }
        let waiting: Vec<String> = states
            .iter()
            .filter(|t| !t.is_healthy())
            .map(ToString::to_string)
            .collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if left < poll {
            return Err(crate::error::Error::failed(format!(
                "{what} did not become healthy in time: {healthy} of {} targets healthy; not healthy: {}. \
                 Traffic was not changed. Check the container logs on the instance and the target \
                 group's health check, then deploy again (or raise --health-timeout)",
                instances.len(),
                waiting.join(", ")
            )));
        }
        let report = format!(
            "{healthy}/{} healthy; waiting for {}",
            instances.len(),
            waiting.join(", ")
        );
        if report != last_report {
            tracing::info!(
                "{what}: {report} ({} left)",
                humantime::format_duration(round_secs(left))
            );
            last_report = report;
        }
        tokio::time::sleep(poll).await;
    }
}

fn join(ids: &[&String]) -> String {
    ids.iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn round_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}
