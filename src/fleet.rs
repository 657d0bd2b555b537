//! The instances a backend runs on: discovery through EC2, launching the container through SSM
//! Run Command, and waiting for that command on every instance.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use aws_sdk_ssm::types::CommandInvocationStatus;

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

/// SendCommand takes at most this many instance ids.
const SEND_BATCH: usize = 50;

/// One instance's launch: the command it was sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub command_id: String,
    pub instance_id: String,
}

/// Sends the script to every instance at once with `AWS-RunShellScript` (one command per 50
/// instances, SSM's limit).
pub async fn send(
    ssm: &aws_sdk_ssm::Client,
    instances: &[String],
    lines: Vec<String>,
    comment: &str,
    timeout: Duration,
) -> Result<Vec<Sent>> {
    let mut sent = Vec::new();
    for batch in instances.chunks(SEND_BATCH) {
        let out = ssm
            .send_command()
            .document_name("AWS-RunShellScript")
            .set_instance_ids(Some(batch.to_vec()))
            .parameters("commands", lines.clone())
            .parameters(
                "executionTimeout",
                vec![timeout.as_secs().max(30).to_string()],
            )
            .comment(comment.chars().take(100).collect::<String>())
            .send()
            .await
            .map_err(aws("sending the launch command through SSM"))?;
        let command_id = out
            .command()
            .and_then(|c| c.command_id())
            .ok_or_else(|| Error::failed("SSM SendCommand returned no command id"))?;
        sent.extend(batch.iter().map(|id| Sent {
            command_id: command_id.to_string(),
            instance_id: id.clone(),
        }));
    }
    Ok(sent)
}

/// One instance's result.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub instance_id: String,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `GetCommandInvocation` for each instance every `poll` until all are done or `deadline`.
/// Any instance that did not succeed fails the whole step, with its output.
pub async fn wait(
    ssm: &aws_sdk_ssm::Client,
    sent: &[Sent],
    poll: Duration,
    deadline: Instant,
) -> Result<Vec<Invocation>> {
    let mut done: Vec<Invocation> = Vec::new();
    let mut pending: Vec<Sent> = sent.to_vec();
    loop {
        let mut still = Vec::new();
        for s in pending {
            let id = &s.instance_id;
            let got = ssm
                .get_command_invocation()
                .command_id(&s.command_id)
                .instance_id(id)
                .send()
                .await;
            let out = match got {
                Ok(out) => out,
                // Right after SendCommand the invocation may not exist yet.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_invocation_does_not_exist()) =>
                {
                    still.push(s);
                    continue;
                }
                Err(e) => {
                    return Err(aws(format!("reading the launch command's result on {id}"))(
                        e,
                    ))
                }
            };
            match out.status() {
                Some(CommandInvocationStatus::Pending)
                | Some(CommandInvocationStatus::InProgress)
                | Some(CommandInvocationStatus::Delayed)
                | None => still.push(s),
                Some(status) => done.push(Invocation {
                    instance_id: s.instance_id.clone(),
                    status: status.as_str().to_string(),
                    stdout: out
                        .standard_output_content()
                        .unwrap_or_default()
                        .to_string(),
                    stderr: out.standard_error_content().unwrap_or_default().to_string(),
                }),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() + poll > deadline {
            let ids: Vec<&str> = pending.iter().map(|s| s.instance_id.as_str()).collect();
            return Err(Error::failed(format!(
                "the launch command was still running on {} when the deadline passed; traffic was \
                 not changed. Check `aws ssm get-command-invocation --command-id {} --instance-id {}` \
                 and retry with a longer --health-timeout",
                ids.join(", "),
                pending[0].command_id,
                pending[0].instance_id
            )));
        }
        tokio::time::sleep(poll).await;
    }
    let failed: Vec<&Invocation> = done.iter().filter(|i| i.status != "Success").collect();
    if !failed.is_empty() {
        let details = failed
            .iter()
            .map(|i| {
                format!(
                    "{} {}:\n--- stdout (tail)\n{}\n--- stderr (tail)\n{}",
                    i.instance_id,
                    i.status,
                    tail(&i.stdout, 20),
                    tail(&i.stderr, 20)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Error::failed(format!(
            "the container did not start on {} of {} instances; traffic was not changed.\n{details}",
            failed.len(),
            sent.len()
        )));
    }
    done.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    Ok(done)
}
