//! The instances a backend runs on, found through EC2: by tags, by id, or by the Auto Scaling
//! group's name tag; only `running` ones, sorted.

use aws_sdk_ec2::types::Filter;

use crate::config::Instances;
use crate::error::{aws, Error, Result};

/// Running instance ids, sorted. None found is a refusal (exit 2): nothing to deploy to.
pub async fn discover(ec2: &aws_sdk_ec2::Client, which: &Instances) -> Result<Vec<String>> {
    let mut request = ec2.describe_instances();
    let described = match which {
        Instances::Tags(tags) => {
            for (k, v) in tags {
                request =
                    request.filters(Filter::builder().name(format!("tag:{k}")).values(v).build());
            }
            "instances tagged ".to_string()
                + &tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
        }
        Instances::Ids(ids) => {
            request = request.set_instance_ids(Some(ids.clone()));
            format!("instances {}", ids.join(", "))
        }
        // The group tags every instance it launches with its name; no Auto Scaling client
        // (and no extra SDK crate to build) is needed to find them.
        Instances::AutoScalingGroup(name) => {
            request = request.filters(
                Filter::builder()
                    .name("tag:aws:autoscaling:groupName")
                    .values(name)
                    .build(),
            );
            format!("instances of Auto Scaling group {name}")
        }
    };
    let mut running = Vec::new();
    let mut not_running = Vec::new();
    let mut pages = request.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws(format!("looking up {described}")))?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            let id = instance.instance_id().unwrap_or_default().to_string();
            let state = instance
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string());
            match state.as_deref() {
                Some("running") => running.push(id),
                other => not_running.push(format!("{id} ({})", other.unwrap_or("unknown"))),
            }
        }
    }
    running.sort();
    let booting: Vec<&String> = not_running
        .iter()
        .filter(|i| i.ends_with("(pending)"))
        .collect();
    if !booting.is_empty() && !matches!(which, Instances::Ids(_)) {
        tracing::info!(
            "skipping {} still booting: an instance starts each colour's desired state (the \
             script last gated for it) when it boots; `bgcloud sync` brings it up to date",
            booting
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Instances::Ids(_) = which {
        if !not_running.is_empty() {
            return Err(Error::refused(format!(
                "instance_ids lists instances that are not running: {}; start them or fix [backend].instance_ids",
                not_running.join(", ")
            )));
        }
    }
    if running.is_empty() {
        return Err(Error::refused(format!(
            "no running {described}: nothing to deploy to. Check [backend].instance_tags / instance_ids \
             and the region"
        )));
    }
    Ok(running)
}
