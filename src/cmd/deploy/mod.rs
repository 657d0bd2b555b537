//! `bgcloud deploy`: the release of a backend image, as explicit steps. Validate → lock →
//! resolve the digest → pick the idle colour → find instances and check their SSM agents →
//! adopt a plain forward → run the release task once (migrations) → let the idle colour drain
//! if it just lost its traffic → launch
//! through SSM → wait for the command → wait until the ALB has judged the new containers
//! healthy (the health gate) → point the preview route at them and run the smoke tests →
//! write the colour's desired state for instances that boot later →
//! shift (all, or the canary share) and verify → record → unlock.
//! Any failure before the shift leaves traffic untouched.

mod report;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub use report::{Deployed, Plan, Timings};

use crate::aws::ecr::{self, Image, ImageRef};
use crate::aws::{ssm, target_group};
use crate::backend::drain;
use crate::backend::fleet;
use crate::backend::health_gate;
use crate::backend::launch::{self, Launched, ReleaseTask};
use crate::backend::live::Live;
use crate::backend::preview;
use crate::backend::rollout;
use crate::backend::script::Launch;
use crate::backend::shift;
use crate::backend::smoke::{self, Candidate};
use crate::backend::steps::{self, Steps};
use crate::backend::watch;
use crate::cli::{parse_duration, DeployArgs};
use crate::config::{release_task_argv, smoke_command, BackendConfig};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::digest::short_digest;
use crate::model::weights::{parse_percent, parse_steps, Weights};
use crate::state::desired::{Desired, Written};
use crate::state::record::{new_id, now, Release};

/// Deploy's validated inputs.
struct Inputs {
    image: ImageRef,
    /// None: all traffic at once.
    steps: Option<Steps>,
    /// The bake time after all traffic is on the new colour.
    watch: Duration,
    ignore_unreadable: bool,
    timeout: Duration,
    lock_wait: Duration,
    /// The release task's argv, and how long it may run.
    release_task: Option<(Vec<String>, Duration)>,
    /// The longest drain wait: drain_wait_max, else AWS's default deregistration delay.
    drain_cap: Duration,
    /// The smoke tests (--smoke, else [backend].smoke) and how long each may run.
    smoke: Vec<String>,
    smoke_timeout: Duration,
}

impl Inputs {
    /// The longest the deploy can take: the release task, the drain wait, the health gate, the
    /// smoke tests, every step held, the watch.
    fn longest(&self) -> Duration {
        let steps = self
            .steps
            .as_ref()
            .map_or(Duration::ZERO, |s| s.interval * s.shares.len() as u32);
        let task = self.release_task.as_ref().map_or(Duration::ZERO, |t| t.1);
        let smoke = self.smoke_timeout * self.smoke.len() as u32;
        task + self.drain_cap + self.timeout + smoke + steps + self.watch
    }
}

fn validate(args: &DeployArgs, backend: &BackendConfig) -> Result<Inputs> {
    let image = ImageRef::parse(&args.image)?;
    let canary = args
        .canary
        .as_deref()
        .map(|c| parse_percent(c, 1, 99).map_err(|e| Error::refused(format!("--canary: {e}"))))
        .transpose()?;
    let timeout = match &args.health_timeout {
        Some(t) => parse_duration("--health-timeout", t)?,
        None => backend.health_timeout,
    };
    let lock_wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    let watch = args.watch.duration(backend.gates.watch)?;
    let interval = args
        .interval
        .as_deref()
        .map(|i| parse_duration("--interval", i))
        .transpose()?;
    let steps =
        match (canary, &args.steps) {
            (Some(_), Some(_)) => return Err(Error::refused(
                "--canary N is one step and a pause, --steps a list of them: give one of the two",
            )),
            // One step, watched for --watch, then a pause for `bgcloud promote`.
            (Some(n), None) => Some(Steps {
                shares: vec![n],
                interval: watch,
                pause: true,
            }),
            (None, Some(text)) => Some(Steps {
                shares: parse_steps(text).map_err(|e| Error::refused(format!("--steps: {e}")))?,
                interval: interval.unwrap_or(backend.canary.interval),
                pause: args.pause,
            }),
            (None, None) if !backend.canary.steps.is_empty() => Some(Steps {
                shares: backend.canary.steps.clone(),
                interval: interval.unwrap_or(backend.canary.interval),
                pause: args.pause,
            }),
            (None, None) => {
                if args.pause || interval.is_some() {
                    return Err(Error::refused(
                        "--pause and --interval go with steps: add --steps 10,50 (or set \
                     [backend.canary].steps), or use --canary N",
                    ));
                }
                None
            }
        };
    let release_task = match &args.release_task {
        Some(text) => {
            let argv = shlex::split(text).ok_or_else(|| {
                Error::refused(format!(
                    "--release-task {text:?} is not valid shell words (an unclosed quote or a \
                     trailing backslash?)"
                ))
            })?;
            Some(
                release_task_argv(argv)
                    .map_err(|e| Error::refused(format!("--release-task {e}")))?,
            )
        }
        None => backend.release_task.clone(),
    };
    let task_timeout = parse_duration("--release-task-timeout", &args.release_task_timeout)?;
    if task_timeout < Duration::from_secs(30) {
        return Err(Error::refused(
            "--release-task-timeout must be at least 30s (SSM's shortest execution timeout)",
        ));
    }
    let smoke = if args.smoke.is_empty() {
        backend.smoke.clone()
    } else {
        args.smoke.clone()
    };
    if let Some(Err(e)) = smoke.iter().map(|c| smoke_command(c)).find(Result::is_err) {
        return Err(Error::refused(format!("--smoke: {e}")));
    }
    let smoke_timeout = parse_duration("--smoke-timeout", &args.smoke_timeout)?;
    if smoke_timeout.is_zero() || smoke_timeout > Duration::from_secs(6 * 3600) {
        return Err(Error::refused(
            "--smoke-timeout must be between 1s and 6h (it is each smoke test's limit)",
        ));
    }
    Ok(Inputs {
        smoke,
        smoke_timeout,
        release_task: release_task.map(|argv| (argv, task_timeout)),
        drain_cap: drain::cap(backend),
        image,
        steps,
        watch: if canary.is_some() {
            Duration::ZERO
        } else {
            watch
        },
        ignore_unreadable: args.watch.ignore_missing_metrics,
        timeout,
        lock_wait,
    })
}

/// How long the on-instance probe waits for a passing answer: what --health-timeout leaves after
/// the health gate's own wait and some slack for SSM, within 10 s to 2 min.
fn ready_seconds(timeout: Duration, judge: Duration) -> u32 {
    let left = timeout.saturating_sub(judge + Duration::from_secs(10));
    left.as_secs().clamp(10, 120) as u32
}

/// What will judge the new colour, in words: said in the plan and the result, so a canary that
/// nobody watches does not pass for a judged one.
fn judged_by(backend: &BackendConfig, inputs: &Inputs) -> String {
    let watched =
        !inputs.watch.is_zero() || inputs.steps.as_ref().is_some_and(|s| !s.interval.is_zero());
    let g = &backend.gates;
    if !watched {
        return "nothing: no watch (give --watch, or set [backend.gates].watch); bgcloud does not \
                judge the new colour after the shift"
            .to_string();
    }
    if !g.reads_cloudwatch() {
        return "target health only: [backend.gates] has no alarms or metrics, so bgcloud judges \
                nothing else"
            .to_string();
    }
    let mut gates: Vec<String> = g.alarms.iter().map(|a| format!("alarm {a}")).collect();
    let limits = [
        ("5xx rate", g.max_5xx_rate.map(|v| v.to_string())),
        (
            "p99",
            g.max_p99_latency
                .map(|d| humantime::format_duration(d).to_string()),
        ),
        (
            "5xx ratio to stable",
            g.max_5xx_ratio_to_stable.map(|v| v.to_string()),
        ),
        (
            "p99 ratio to stable",
            g.max_p99_ratio_to_stable.map(|v| v.to_string()),
        ),
    ];
    gates.extend(
        limits
            .into_iter()
            .filter_map(|(name, v)| v.map(|v| format!("{name} ≤ {v}"))),
    );
    format!(
        "target health and {} (inconclusive: {})",
        gates.join(", "),
        g.inconclusive.as_str()
    )
}

pub enum Outcome {
    Planned(Box<Plan>),
    Deployed(Box<Deployed>),
}

pub async fn run(ctx: &Context, args: &DeployArgs) -> Result<Outcome> {
    let backend = ctx.config.backend()?;
    let inputs = validate(args, backend)?;
    if args.dry_run {
        return Ok(Outcome::Planned(Box::new(
            plan(ctx, backend, &inputs).await?.0,
        )));
    }
    let reason = format!("deploy {}", args.image);
    let work = deploy(ctx, backend, &inputs);
    let deployed = if inputs.steps.is_some() || !inputs.watch.is_zero() {
        // Steps and watches take promote/rollback requests from other runs.
        ctx.locked_rollout(&reason, inputs.lock_wait, inputs.longest(), work)
            .await
    } else {
        ctx.locked_for(&reason, inputs.lock_wait, inputs.longest(), work)
            .await
    };
    let mut deployed = deployed?;
    // A release that has proved itself may put the other colour to sleep ([backend] idle).
    deployed.idle = super::sleep_idle_if_due(ctx, backend).await;
    Ok(Outcome::Deployed(Box::new(deployed)))
}

/// The read-only part: live state, digest, colour, instances, script.
async fn plan(ctx: &Context, backend: &BackendConfig, inputs: &Inputs) -> Result<(Plan, Live)> {
    let live = Live::read(ctx).await?;
    if let Some(canary) = live.canary() {
        return Err(Error::refused(format!(
            "a canary is in progress ({}, canary {canary}): finish it with `bgcloud promote` or \
             undo it with `bgcloud rollback` before deploying again",
            live.weights()
        )));
    }
    if let Some(paused) = rollout::load(ctx).await?.filter(|r| r.paused) {
        if let Some(why) = &paused.inconclusive {
            return Err(Error::refused(format!(
                "the last rollout is paused: its watch was inconclusive ({why}). Decide first: \
                 `bgcloud promote` accepts it, `bgcloud rollback` undoes it; then deploy"
            )));
        }
    }
    let color = live.stable().other();
    let idle_group = [backend.target_group_arn(color)];
    let preview = async {
        match &backend.preview {
            Some(cfg) => preview::plan(&ctx.clients.elb, backend, cfg, &ctx.config.app, color)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let watched =
        !inputs.watch.is_zero() || inputs.steps.as_ref().is_some_and(|s| !s.interval.is_zero());
    let alarms = async {
        match watched {
            true => watch::check_alarms(ctx, backend, inputs.ignore_unreadable).await,
            false => Ok(()),
        }
    };
    let (image, instances, checks, drain, preview, ()) = tokio::try_join!(
        ecr::resolve(&ctx.clients.ecr, &backend.repository, &inputs.image),
        fleet::instances(ctx, backend),
        target_group::health_checks(&ctx.clients.elb, &idle_group),
        drain::for_color(ctx, backend, &live, color),
        preview,
        alarms,
    )?;
    let health_check = checks.into_iter().next().expect("one target group asked");
    let judge = health_check.judge_time();
    if judge >= inputs.timeout {
        return Err(Error::refused(format!(
            "--health-timeout {} is too short: after a launch the ALB needs {} to judge the new \
             container on {color}'s target group, so no deploy could pass. Raise \
             --health-timeout (or [backend].health_timeout) to at least {}, or shorten the \
             target group's health check interval or thresholds",
            humantime::format_duration(inputs.timeout),
            health_check.judge_arithmetic(),
            humantime::format_duration(judge + Duration::from_secs(30))
        )));
    }
    ssm::check_agents(&ctx.clients.ssm, &instances).await?;
    let Image {
        reference,
        digest,
        repository_uri,
    } = image;
    let deployment_id = new_id();
    let region = ctx.clients.region.clone();
    let launch = Launch {
        app: &ctx.config.app,
        color: color.as_str(),
        region: &region,
        repository_uri: &repository_uri,
        digest: &digest,
        deployment_id: &deployment_id,
        host_port: backend.port(color),
        container_port: backend.container_port,
        env: &backend.env,
        secrets: &backend.secrets,
        health_check: &health_check,
        ready_seconds: ready_seconds(inputs.timeout, judge),
        stop_grace_seconds: backend.stop_grace.as_secs(),
    };
    let script = launch.render();
    // On the first instance (sorted, so a retry picks the same one).
    let release_task = inputs
        .release_task
        .as_ref()
        .map(|(argv, timeout)| ReleaseTask {
            argv: argv.clone(),
            instance: instances[0].clone(),
            timeout_seconds: timeout.as_secs_f64(),
            script: launch.release_task(argv),
            output: None,
            seconds: None,
        });
    let to = match &inputs.steps {
        Some(steps) => Weights::split(color, steps.shares[0]),
        None => Weights::all(color),
    };
    let plan = Plan {
        app: ctx.config.app.clone(),
        deployment_id,
        image: reference,
        digest,
        repository_uri,
        color,
        instances,
        from: live.weights(),
        to,
        adopt: live.forward.plain,
        steps: inputs
            .steps
            .as_ref()
            .map(|s| s.shares.clone())
            .unwrap_or_default(),
        interval_seconds: inputs
            .steps
            .as_ref()
            .map_or(0.0, |s| s.interval.as_secs_f64()),
        pause: inputs.steps.as_ref().is_some_and(|s| s.pause),
        watch_seconds: inputs.watch.as_secs_f64(),
        judged_by: judged_by(backend, inputs),
        judge_seconds: judge.as_secs_f64(),
        health_check,
        drain,
        release_task,
        preview,
        smoke: inputs.smoke.clone(),
        smoke_timeout_seconds: inputs.smoke_timeout.as_secs_f64(),
        script,
        desired: Desired::new(ctx.clients.buckets.clone(), &ctx.config, color).location(),
    };
    Ok((plan, live))
}

async fn deploy(ctx: &Context, backend: &BackendConfig, inputs: &Inputs) -> Result<Deployed> {
    let started = Instant::now();
    let (mut plan, live) = plan(ctx, backend, inputs).await?;
    let color = plan.color;
    tracing::info!(
        "deploying {} ({}) to {color} on {}",
        plan.image,
        short_digest(&plan.digest),
        plan.instances.join(", ")
    );
    let release = crate::notify::Subject {
        color: Some(color),
        image: Some(plan.image.clone()),
        digest: Some(plan.digest.clone()),
        weights: Some(plan.from),
    };
    ctx.notify
        .send(crate::notify::Kind::Started, release, None)
        .await;
    if plan.adopt {
        shift::adopt(ctx, backend, &live, color).await?;
    }
    let task_started = Instant::now();
    if let Some(task) = &mut plan.release_task {
        launch::run_release_task(ctx, backend, task, &plan.image).await?;
    }
    let task_seconds = task_started.elapsed();
    let drain_started = Instant::now();
    if let Some(drain) = &plan.drain {
        tracing::info!("draining: {drain}");
        tokio::time::sleep(drain.left()).await;
    }
    let drained_at = Instant::now();
    let drained = drained_at - drain_started;
    // --health-timeout counts from the launch: the drain wait is not the new image's time.
    let deadline = drained_at + inputs.timeout;

    let launched = launch_on_all(ctx, backend, &plan, deadline).await?;
    let launched_at = Instant::now();

    let states = health_gate::gate(
        ctx,
        backend,
        color,
        &plan.health_check,
        launched,
        &BTreeSet::new(),
        deadline,
    )
    .await?;
    let trusted_at = Instant::now();
    health_gate::all_launched(
        color.as_str(),
        backend.port(color),
        &states,
        &plan.instances,
    )?;

    let candidate = Candidate {
        color,
        from: plan.from,
        image: &plan.image,
        digest: &plan.digest,
        probe_path: &plan.health_check.path,
    };
    let (route, smoke_passed) = smoke::through_preview(
        ctx,
        backend,
        &candidate,
        &inputs.smoke,
        inputs.smoke_timeout,
    )
    .await?;
    plan.preview = route;
    let smoked_at = Instant::now();

    // From now on an instance that boots starts this release for the colour (desired.rs).
    // Written before any traffic moves: a failure here leaves traffic untouched.
    let desired = Desired::new(ctx.clients.buckets.clone(), &ctx.config, color);
    if desired.write(&plan.script).await? == Written::Written {
        tracing::info!(
            "desired state for {color} written to {}",
            desired.location()
        );
    }

    // The wait can be long: shift from the listener as it is now, not as it was read before.
    let live = Live::read(ctx).await?;
    if live.weights() != plan.from {
        return Err(Error::failed(format!(
            "the listener changed while {color} was being prepared ({} → {}); traffic was not \
             changed by this deploy. Check `bgcloud status`, then deploy again",
            plan.from,
            live.weights()
        )));
    }
    let previous = live
        .record()
        .and_then(|r| r.backend.release(color.other()))
        .cloned();
    let release = Release {
        image: plan.image.clone(),
        digest: plan.digest.clone(),
        deployment_id: plan.deployment_id.clone(),
        at: now(),
        by: ctx.who.clone(),
        start_seconds: Some((trusted_at - drained_at).as_secs_f64()),
    };
    let shift = shift::apply(
        ctx,
        live,
        "deploy",
        plan.to,
        shift::Gate::Checked,
        Some((color, release)),
        shift::Because::default(),
    )
    .await?;
    let outcome = match &inputs.steps {
        Some(steps) => {
            steps::run(
                ctx,
                backend,
                color,
                &plan.deployment_id,
                steps,
                inputs.watch,
                inputs.ignore_unreadable,
            )
            .await?
        }
        None => {
            rollout::clear(ctx).await?;
            if !inputs.watch.is_zero() {
                watch::after_shift(
                    ctx,
                    backend,
                    color,
                    plan.to,
                    inputs.watch,
                    inputs.ignore_unreadable,
                )
                .await?;
            }
            steps::Outcome {
                ended: format!("{color} has all traffic"),
                moves: Vec::new(),
            }
        }
    };
    // Where traffic ended: the first shift, then each move of the rollout.
    let moves = [vec![shift.to], outcome.moves].concat();
    let timings = Timings {
        release_task: task_seconds.as_secs_f64(),
        drain: drained.as_secs_f64(),
        launch: (launched_at - started - drained - task_seconds).as_secs_f64(),
        health: (trusted_at - launched_at).as_secs_f64(),
        smoke: (smoked_at - trusted_at).as_secs_f64(),
        shift: smoked_at.elapsed().as_secs_f64(),
    };
    Ok(Deployed {
        plan,
        previous,
        smoke_passed,
        traffic: *moves.last().unwrap_or(&shift.to),
        moves,
        shift,
        ended: outcome.ended,
        seconds: started.elapsed().as_secs_f64(),
        timings,
        idle: None,
    })
}

/// Sends the launch script to every instance and waits for it; returns when bgcloud saw it
/// succeed on each.
async fn launch_on_all(
    ctx: &Context,
    backend: &BackendConfig,
    plan: &Plan,
    deadline: Instant,
) -> Result<Vec<Launched>> {
    let comment = format!(
        "bgcloud deploy {} {} to {}",
        ctx.config.app, plan.image, plan.color
    );
    launch::launch(
        ctx,
        backend,
        &plan.instances,
        plan.script.clone(),
        &comment,
        deadline,
    )
    .await
}
