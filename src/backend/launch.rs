//! Running scripts on the instances through SSM for a release: the launch of a colour's
//! container on every instance (the health gate counts from when bgcloud saw it succeed), and
//! the release task, once, before any container starts.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::ssm;
use crate::backend::script;
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};

/// One instance whose container was started, and when bgcloud saw that succeed.
#[derive(Debug, Clone)]
pub struct Launched {
    pub instance_id: String,
    pub at: Instant,
}

/// What SSM runs for `script`: the wait for the instance's boot, then the script (which takes the
/// instance's lock). The wait is not in the script because the script is also what a booting
/// instance runs from inside cloud-init ([`script::boot_wait`]).
pub fn sent(script: Vec<String>) -> Vec<String> {
    [vec![script::boot_wait()], script].concat()
}

/// Runs a launch script on `instances` through SSM and waits for it; returns when bgcloud saw
/// it succeed on each, with that moment (the gate counts from there).
pub async fn launch(
    ctx: &Context,
    backend: &BackendConfig,
    instances: &[String],
    script: Vec<String>,
    comment: &str,
    deadline: Instant,
) -> Result<Vec<Launched>> {
    let done = ssm::run(
        &ctx.clients.ssm,
        &ctx.in_flight,
        instances,
        sent(script),
        ssm::Step {
            what: "the launch command",
            comment,
            on_timeout: "retry with a longer --health-timeout",
        },
        backend.poll_interval,
        deadline,
    )
    .await?;
    Ok(done
        .into_iter()
        .map(|i| Launched {
            instance_id: i.instance_id,
            at: i.seen_at,
        })
        .collect())
}

/// The release task: where it runs, the script SSM runs there, and (once run) its output.
#[derive(Debug, Serialize)]
pub struct ReleaseTask {
    pub argv: Vec<String>,
    pub instance: String,
    pub timeout_seconds: f64,
    pub script: Vec<String>,
    /// The end of what it printed (stdout and stderr together).
    pub output: Option<String>,
    pub seconds: Option<f64>,
}

impl ReleaseTask {
    pub fn command(&self) -> String {
        script::command_line(&self.argv)
    }
}

/// Runs the release task once, on its instance, and waits for it. A failure (or its timeout)
/// ends the deploy before anything is launched; it is never retried.
pub async fn run_release_task(
    ctx: &Context,
    backend: &BackendConfig,
    task: &mut ReleaseTask,
    image: &str,
) -> Result<()> {
    tracing::info!(
        "release task `{}` on {} with {image} (at most {})",
        task.command(),
        task.instance,
        humantime::format_duration(Duration::from_secs_f64(task.timeout_seconds))
    );
    let started = Instant::now();
    let ran = ssm::run(
        &ctx.clients.ssm,
        &ctx.in_flight,
        std::slice::from_ref(&task.instance),
        sent(task.script.clone()),
        ssm::Step {
            what: "the release task",
            comment: &format!("bgcloud deploy {}: release task", ctx.config.app),
            on_timeout: "raise --release-task-timeout if it needs longer (its container may \
                         still be running on the instance: `docker ps`)",
        },
        backend.poll_interval,
        started + Duration::from_secs_f64(task.timeout_seconds),
    )
    .await
    .map_err(|e| {
        Error::failed(format!(
            "{e}\nNothing was launched: the new containers start only after the release task \
             succeeds, and it is not retried. Deploy again once the cause above is fixed"
        ))
    })?;
    let output = ran.into_iter().next().map(|i| i.stdout).unwrap_or_default();
    for line in output.lines() {
        tracing::info!("release task | {line}");
    }
    task.output = Some(output);
    task.seconds = Some(started.elapsed().as_secs_f64());
    Ok(())
}
