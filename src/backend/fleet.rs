//! The instances a release runs on: those EC2 finds running (by tags, ids or group), less those
//! an Auto Scaling group has taken out of service. An instance in `Standby`, `Terminating`,
//! `Terminating:Wait`, `Detaching` or still `Pending` is EC2 `running`, but its group has
//! deregistered it (or not yet registered it) from the load balancer: registering it would give
//! user traffic to an instance on its way out.

use std::collections::BTreeMap;

use crate::aws::{autoscaling, ec2};
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};

/// The running instances that no Auto Scaling group holds out of service, sorted. None left is
/// a refusal (exit 2), before anything changes.
pub async fn instances(ctx: &Context, backend: &BackendConfig) -> Result<Vec<String>> {
    let running = ec2::discover(&ctx.clients.ec2, &backend.instances).await?;
    let states = match autoscaling::lifecycle_states(&ctx.clients.autoscaling, &running).await {
        Ok(states) => states,
        Err(failure) if failure.is_access_denied() => {
            return Err(Error::refused(format!(
                "reading the instances' Auto Scaling lifecycle was denied: the role needs \
                 autoscaling:DescribeAutoScalingInstances (see the IAM reference, \
                 docs/reference/iam.md); nothing was changed ({})",
                failure.code.unwrap_or_else(|| "AccessDenied".into())
            )));
        }
        Err(failure) if failure.is_unimplemented() => {
            tracing::warn!(
                "this endpoint does not implement autoscaling:DescribeAutoScalingInstances; \
                 instances an Auto Scaling group holds out of service were not left out"
            );
            return Ok(running);
        }
        Err(failure) => {
            return Err(Error::failed(failure.explain(
                "reading the instances' Auto Scaling lifecycle (DescribeAutoScalingInstances)",
            )))
        }
    };
    let (keep, left_out) = in_service(&running, &states);
    if !left_out.is_empty() {
        tracing::info!(
            "leaving out {}: their Auto Scaling group holds them out of service (the group \
             deregisters such instances from the load balancer); an instance that returns to \
             service starts each colour's desired state when it boots, or `bgcloud sync` \
             brings it in",
            left_out.join(", ")
        );
    }
    if keep.is_empty() {
        return Err(Error::refused(format!(
            "no instance in service to deploy to: {} (an Auto Scaling group holds every running \
             instance out of service). Wait for the group to bring instances into service \
             (`aws autoscaling describe-auto-scaling-instances`), then deploy again",
            left_out.join(", ")
        )));
    }
    Ok(keep)
}

/// Splits `running` into the instances to use (`InService`, or held by no group) and the rest,
/// named with their lifecycle state.
fn in_service(running: &[String], states: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let mut keep = Vec::new();
    let mut left_out = Vec::new();
    for id in running {
        match states.get(id).map(String::as_str) {
            None | Some("InService") => keep.push(id.clone()),
            Some(state) => left_out.push(format!("{id} ({state})")),
        }
    }
    (keep, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instances_in_service_or_in_no_group_are_used() {
        let running: Vec<String> = ["i-1", "i-2", "i-3", "i-4", "i-5", "i-6"]
            .map(String::from)
            .to_vec();
        let states: BTreeMap<String, String> = [
            ("i-1", "InService"),
            ("i-2", "Standby"),
            ("i-3", "Terminating"),
            ("i-4", "Terminating:Wait"),
            ("i-6", "Pending:Wait"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let (keep, left_out) = in_service(&running, &states);
        assert_eq!(keep, ["i-1", "i-5"]);
        assert_eq!(
            left_out,
            [
                "i-2 (Standby)",
                "i-3 (Terminating)",
                "i-4 (Terminating:Wait)",
                "i-6 (Pending:Wait)"
            ]
        );
    }
}
