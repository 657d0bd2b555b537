//! Auto Scaling: which lifecycle state a group holds its instances in (`InService`, `Standby`,
//! `Terminating`, …). An instance that no group holds is not in the answer.

use std::collections::BTreeMap;

use crate::error::AwsFailure;

/// DescribeAutoScalingInstances takes at most 50 instance ids (the API reference).
const IDS_PER_CALL: usize = 50;

/// The lifecycle state of each of `instances` that an Auto Scaling group holds, by id.
/// DescribeAutoScalingInstances ignores ids it does not know, so an instance outside every group
/// is simply absent.
pub async fn lifecycle_states(
    client: &aws_sdk_autoscaling::Client,
    instances: &[String],
) -> Result<BTreeMap<String, String>, AwsFailure> {
    let mut states = BTreeMap::new();
    for batch in instances.chunks(IDS_PER_CALL) {
        let mut pages = client
            .describe_auto_scaling_instances()
            .set_instance_ids(Some(batch.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsFailure::of(&e))?;
            for i in page.auto_scaling_instances() {
                if let (Some(id), Some(state)) = (i.instance_id(), i.lifecycle_state()) {
                    states.insert(id.to_string(), state.to_string());
                }
            }
        }
    }
    Ok(states)
}
