//! SSM Run Command on the instances a backend runs on: their agents (registered and Online?),
//! sending a script with `AWS-RunShellScript`, waiting for it on every instance, and cancelling
//! it when bgcloud gives up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformationStringFilter};

use crate::error::{aws, AwsFailure, Error, Result};

/// SendCommand (and an InstanceIds filter) takes at most this many instance ids.
const SEND_BATCH: usize = 50;

/// Refuses (exit 2), before anything is sent, when an instance has no SSM agent that is
/// registered and Online: the launch could never run there. AccessDenied on the check is a
/// refusal naming the permission; an endpoint without the call (stock moto, some LocalStack
/// versions) gets one warning and no check.
pub async fn check_agents(ssm: &aws_sdk_ssm::Client, instances: &[String]) -> Result<()> {
    let pings = match agents(ssm, instances).await {
        Ok(pings) => pings,
        Err(failure) if failure.is_access_denied() => {
            return Err(Error::refused(format!(
                "checking the instances' SSM agents was denied: the role needs \
                 ssm:DescribeInstanceInformation (see the IAM reference, docs/reference/iam.md); \
                 nothing was sent or changed ({})",
                failure.code.unwrap_or_else(|| "AccessDenied".into())
            )));
        }
        Err(failure) if failure.is_unimplemented() => {
            tracing::warn!(
                "this endpoint does not implement ssm:DescribeInstanceInformation; the \
                 instances' SSM agents were not checked"
            );
            return Ok(());
        }
        Err(failure) => {
            return Err(Error::failed(
                failure.explain("checking the instances' SSM agents"),
            ))
        }
    };
    let problems: Vec<String> = instances
        .iter()
        .filter_map(|id| match pings.get(id).map(String::as_str) {
            Some("Online") => None,
            Some(status) => Some(format!(
                "{id} (its SSM agent's connection is {status}: the agent stopped or lost its \
                 network path to SSM)"
            )),
            _ => Some(format!(
                "{id} (not managed by SSM: no agent registered — it needs the SSM agent running, \
                 an instance profile with AmazonSSMManagedInstanceCore, and a route to the SSM \
                 endpoints)"
            )),
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::refused(format!(
        "SSM cannot run the launch on {} of {} instances: {}. Nothing was sent or changed; fix \
         the agents (`aws ssm describe-instance-information`) or the instance selection, then \
         deploy again",
        problems.len(),
        instances.len(),
        problems.join("; ")
    )))
}

/// Launch commands sent and not known to be finished: what to cancel when bgcloud gives up or is
/// interrupted, so a deploy reported as failed cannot replace a container later.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<Vec<Sent>>>);

impl InFlight {
    fn add(&self, sent: &[Sent]) {
        self.0
            .lock()
            .expect("in-flight list")
            .extend_from_slice(sent);
    }

    fn finished(&self, sent: &Sent) {
        self.0.lock().expect("in-flight list").retain(|s| s != sent);
    }

    pub fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.0.lock().expect("in-flight list"))
    }
}

/// Cancels `sent` (best effort: a failure is a warning), one CancelCommand per command.
pub async fn cancel(ssm: &aws_sdk_ssm::Client, sent: &[Sent]) {
    let mut by_command: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for s in sent {
        by_command
            .entry(s.command_id.as_str())
            .or_default()
            .push(s.instance_id.clone());
    }
    for (command_id, instances) in by_command {
        match ssm
            .cancel_command()
            .command_id(command_id)
            .set_instance_ids(Some(instances.clone()))
            .send()
            .await
        {
            Ok(_) => tracing::warn!("cancelled command {command_id} on {}", instances.join(", ")),
            Err(e) => tracing::warn!(
                "could not cancel command {command_id} on {} ({}); it may still run to its end \
                 there (a launch only ever touches the idle colour) — traffic is not affected",
                instances.join(", "),
                AwsFailure::of(&e).explain("CancelCommand")
            ),
        }
    }
}

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
    in_flight: &InFlight,
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
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                // What was sent to earlier batches must not run on after bgcloud gave up.
                cancel(ssm, &in_flight.take()).await;
                let invalid = e
                    .as_service_error()
                    .is_some_and(|s| s.is_invalid_instance_id());
                if invalid {
                    return Err(invalid_instances(ssm, batch, comment, &e).await);
                }
                return Err(aws(format!("sending {comment:?} through SSM"))(e));
            }
        };
        let command_id = out
            .command()
            .and_then(|c| c.command_id())
            .ok_or_else(|| Error::failed("SSM SendCommand returned no command id"))?;
        let batch: Vec<Sent> = batch
            .iter()
            .map(|id| Sent {
                command_id: command_id.to_string(),
                instance_id: id.clone(),
            })
            .collect();
        in_flight.add(&batch);
        sent.extend(batch);
    }
    Ok(sent)
}

/// The ping status (Online, ConnectionLost, Inactive) of each instance of `instances` that has
/// a registered SSM agent; absent: not managed by SSM.
async fn agents(
    ssm: &aws_sdk_ssm::Client,
    instances: &[String],
) -> Result<BTreeMap<String, String>, AwsFailure> {
    let mut pings = BTreeMap::new();
    for batch in instances.chunks(SEND_BATCH) {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .set_values(Some(batch.to_vec()))
            .build()
            .expect("key and values are set");
        let mut pages = ssm
            .describe_instance_information()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsFailure::of(&e))?;
            for info in page.instance_information_list() {
                if let (Some(id), Some(ping)) = (info.instance_id(), info.ping_status()) {
                    pings.insert(id.to_string(), ping.as_str().to_string());
                }
            }
        }
    }
    Ok(pings)
}

/// SendCommand answered InvalidInstanceId for `batch`: names the instances SSM cannot reach now
/// (not registered, agent not Online), read again, since the error itself may not say which.
async fn invalid_instances<E, R>(
    ssm: &aws_sdk_ssm::Client,
    batch: &[String],
    comment: &str,
    error: &aws_sdk_ssm::error::SdkError<E, R>,
) -> Error
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata,
{
    let said = error
        .as_service_error()
        .and_then(|s| s.message())
        .unwrap_or("InvalidInstanceId")
        .to_string();
    let unreachable = match agents(ssm, batch).await {
        Ok(pings) => batch
            .iter()
            .filter(|id| pings.get(*id).map(String::as_str) != Some("Online"))
            .map(|id| match pings.get(id) {
                Some(ping) => format!("{id} (agent {ping})"),
                None => format!("{id} (not managed by SSM)"),
            })
            .collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    let which = if unreachable.is_empty() {
        format!("one of {}", batch.join(", "))
    } else {
        unreachable.join(", ")
    };
    Error::failed(format!(
        "SSM refused {comment:?} for {which}: InvalidInstanceId ({said}). The instance is not \
         running, not managed by SSM, or its agent lost its connection since bgcloud checked \
         it; nothing was launched there and traffic was not changed. Check it (`aws ssm \
         describe-instance-information`), or take it out of the app's instances, then deploy \
         again"
    ))
}

/// What a command is, for its messages: "the launch command", "the release task", …
pub struct Step<'a> {
    pub what: &'a str,
    /// The SSM command's comment (at most 100 characters are sent).
    pub comment: &'a str,
    /// What to do when it ran past its deadline ("retry with a longer --health-timeout").
    pub on_timeout: &'a str,
}

/// [`send`] then [`wait`]: the script on every instance, done when it succeeded on each.
pub async fn run(
    ssm: &aws_sdk_ssm::Client,
    in_flight: &InFlight,
    instances: &[String],
    lines: Vec<String>,
    step: Step<'_>,
    poll: Duration,
    deadline: Instant,
) -> Result<Vec<Invocation>> {
    let comment = step.comment;
    let sent = send(
        ssm,
        in_flight,
        instances,
        lines,
        comment,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await?;
    let ids: std::collections::BTreeSet<&str> =
        sent.iter().map(|s| s.command_id.as_str()).collect();
    tracing::info!(
        "command {} sent ({comment}); waiting for it on {} instance(s)",
        ids.into_iter().collect::<Vec<_>>().join(", "),
        instances.len()
    );
    wait(ssm, in_flight, &sent, &step, poll, deadline).await
}

/// One instance's result.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub instance_id: String,
    pub status: String,
    /// SSM's detail: Undeliverable, DeliveryTimedOut, ExecutionTimedOut, Terminated, …
    pub status_details: String,
    pub stdout: String,
    pub stderr: String,
    /// When bgcloud saw it finish: the health gate counts from here.
    pub seen_at: Instant,
}

/// The last `n` lines of `s`, at most `max` bytes (the newest kept).
fn tail(s: &str, n: usize, max: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let text = lines[lines.len().saturating_sub(n)..].join("\n");
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Polls `GetCommandInvocation` for each instance every `poll` until all are done or `deadline`.
/// Any instance that did not succeed fails the whole step, with its output.
pub async fn wait(
    ssm: &aws_sdk_ssm::Client,
    in_flight: &InFlight,
    sent: &[Sent],
    step: &Step<'_>,
    poll: Duration,
    deadline: Instant,
) -> Result<Vec<Invocation>> {
    let what = step.what;
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
                    // bgcloud stops watching: the commands must stop too, not finish unseen.
                    let error = aws(format!("reading the result of {what} on {id}"))(e);
                    cancel(ssm, &in_flight.take()).await;
                    return Err(Error::failed(format!(
                        "{error}\nThe command was cancelled on the instances it was still \
                         running on; traffic was not changed"
                    )));
                }
            };
            match out.status() {
                Some(CommandInvocationStatus::Pending)
                | Some(CommandInvocationStatus::InProgress)
                | Some(CommandInvocationStatus::Delayed)
                | None => still.push(s),
                Some(status) => {
                    in_flight.finished(&s);
                    done.push(Invocation {
                        instance_id: s.instance_id.clone(),
                        status: status.as_str().to_string(),
                        status_details: out.status_details().unwrap_or_default().to_string(),
                        stdout: out
                            .standard_output_content()
                            .unwrap_or_default()
                            .to_string(),
                        stderr: out.standard_error_content().unwrap_or_default().to_string(),
                        seen_at: Instant::now(),
                    })
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() + poll > deadline {
            let ids: Vec<&str> = pending.iter().map(|s| s.instance_id.as_str()).collect();
            let message = format!(
                "{what} was still running on {} when the deadline passed, and was \
                 cancelled there; traffic was not changed. Check `aws ssm get-command-invocation \
                 --command-id {} --instance-id {}` and {}",
                ids.join(", "),
                pending[0].command_id,
                pending[0].instance_id,
                step.on_timeout
            );
            cancel(ssm, &in_flight.take()).await;
            return Err(Error::failed(message));
        }
        tokio::time::sleep(poll).await;
    }
    let failed: Vec<&Invocation> = done.iter().filter(|i| i.status != "Success").collect();
    if !failed.is_empty() {
        let details = failed
            .iter()
            .map(|i| {
                let detail = if i.status_details.is_empty() || i.status_details == i.status {
                    String::new()
                } else {
                    format!(" ({})", i.status_details)
                };
                format!(
                    "{} {}{detail}:\n--- stdout (tail)\n{}\n--- stderr (tail)\n{}",
                    i.instance_id,
                    i.status,
                    tail(&i.stdout, 20, 2_000),
                    tail(&i.stderr, 30, 4_000)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Error::failed(format!(
            "{what} failed on {} of {} instances; traffic was not changed.\n{details}",
            failed.len(),
            sent.len()
        )));
    }
    done.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    Ok(done)
}
