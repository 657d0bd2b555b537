//! `bgcloud sync`: brings every instance in line with the desired state, as explicit steps.
//! Validate → lock → read each colour's desired state → find instances and check their SSM
//! agents → ask each instance what runs (a read-only SSM command) → per colour: relaunch what
//! is missing or stale (a stale container that serves traffic leaves its target group and
//! drains first, one instance at a time; one of a colour that lost its traffic a moment ago
//! waits out the drain as a deploy does) → register missing targets → health gate → record the
//! result for `status`. Traffic is never moved. A colour marked stopped (`bgcloud idle stop`) is
//! left stopped; with `[backend] idle = "stop"` sync is also when the idle colour goes to sleep.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::ssm;
use crate::aws::target_group;
use crate::aws::targets::{self, targets};
use crate::backend::drain::{self, Drain};
use crate::backend::drift::{self, Found, Relaunch};
use crate::backend::fleet;
use crate::backend::health_gate;
use crate::backend::idle::{self, Slept};
use crate::backend::launch::{self, Launched};
use crate::backend::live::Live;
use crate::backend::script;
use crate::cli::{parse_duration, SyncArgs};
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::digest::short_digest;
use crate::model::weights::Weights;
use crate::state::desired::{self, Desired};
use crate::state::record::{now, SyncRecord};

/// One colour's desired state, as stored.
#[derive(Debug, Serialize)]
pub struct Wanted {
    pub color: Color,
    pub digest: String,
    pub location: String,
    #[serde(skip)]
    script: String,
}

/// A colour asleep, and since when.
#[derive(Debug, Serialize)]
pub struct Asleep {
    pub color: Color,
    pub since: String,
}

/// What sync found (`--dry-run`) and will do.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub app: String,
    pub weights: Weights,
    pub instances: Vec<String>,
    pub desired: Vec<Wanted>,
    /// Colours never deployed: nothing to sync for them.
    pub not_deployed: Vec<Color>,
    /// Colours asleep (`bgcloud idle stop`): left stopped.
    pub stopped: Vec<Asleep>,
    /// `--dry-run` with `[backend] idle = "stop"`: the idle colour a sync would put to sleep
    /// first, its `idle_after` having passed.
    pub idle_due: Option<Color>,
    pub relaunch: Vec<Relaunch>,
    /// `(instance, colour)` whose container is right but whose target is not registered.
    pub register: Vec<(String, Color)>,
    /// Colours without traffic that lost it a moment ago: running containers of theirs are
    /// replaced only after this wait.
    pub drains: Vec<Drain>,
}

impl Plan {
    pub fn in_line(&self) -> bool {
        self.relaunch.is_empty() && self.register.is_empty()
    }
}

#[derive(Debug, Serialize)]
pub struct Synced {
    #[serde(flatten)]
    pub plan: Plan,
    pub seconds: f64,
    /// The idle colour put to sleep first (`[backend] idle = "stop"`, `idle_after` passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<Slept>,
}

pub enum Outcome {
    Planned(Plan),
    Synced(Synced),
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sync plan for {} (dry run: nothing changed, no lock taken; the instances were \
             asked what they run)",
            self.app
        )?;
        writeln!(f, "  instances {}", self.instances.join(", "))?;
        for w in &self.desired {
            writeln!(
                f,
                "  {:<9} {} ({})",
                w.color.as_str(),
                short_digest(&w.digest),
                w.location
            )?;
        }
        for c in &self.not_deployed {
            writeln!(f, "  {:<9} never deployed: nothing to sync", c.as_str())?;
        }
        for a in &self.stopped {
            writeln!(
                f,
                "  {:<9} stopped since {} (bgcloud idle stop): left stopped",
                a.color.as_str(),
                a.since
            )?;
        }
        for r in &self.relaunch {
            let how = if r.serving {
                " (serves traffic: out of the target group and drained first)"
            } else {
                ""
            };
            writeln!(f, "  relaunch  {r}{how}")?;
        }
        for (id, c) in &self.register {
            writeln!(f, "  register  {id} in {c}'s target group")?;
        }
        for d in &self.drains {
            writeln!(f, "  drain     {d}")?;
        }
        if let Some(c) = self.idle_due {
            writeln!(
                f,
                "  idle      {c} has had no traffic for idle_after: a sync puts it to sleep first"
            )?;
        }
        if self.in_line() {
            writeln!(f, "  in line   every instance runs the recorded digests")?;
        }
        Ok(())
    }
}

impl fmt::Display for Synced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plan;
        if let Some(slept) = &self.idle {
            write!(f, "idle: {slept}")?;
        }
        if p.in_line() {
            return writeln!(
                f,
                "{}: the fleet is in line ({} instance(s) run the recorded digests); nothing to do",
                p.app,
                p.instances.len()
            );
        }
        writeln!(
            f,
            "synced {} in {:.1} s: {} container(s) relaunched, {} target(s) registered; traffic \
             untouched ({})",
            p.app,
            self.seconds,
            p.relaunch.len(),
            p.register.len(),
            p.weights
        )?;
        for r in &p.relaunch {
            writeln!(f, "  relaunched {r}")?;
        }
        for (id, c) in &p.register {
            writeln!(f, "  registered {id} in {c}'s target group")?;
        }
        Ok(())
    }
}

pub async fn run(ctx: &Context, args: &SyncArgs) -> Result<Outcome> {
    let backend = ctx.config.backend()?;
    let timeout = match &args.health_timeout {
        Some(t) => parse_duration("--health-timeout", t)?,
        None => backend.health_timeout,
    };
    let lock_wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    if args.dry_run {
        let mut plan = plan(ctx, backend, timeout).await?;
        plan.idle_due = idle::due_now(ctx, backend).await.map(|(c, _)| c);
        return Ok(Outcome::Planned(plan));
    }
    // Per colour: a drain and a gate per serving relaunch, then one drain and one gate; and
    // the inspect.
    let per = timeout + drain::cap(backend);
    let mut longest =
        per * 2 * (SERVING_PER_RUN as u32 + 1) + timeout.min(Duration::from_secs(120));
    if backend.idle != crate::config::Idle::Keep {
        longest += backend.stop_longest();
    }
    ctx.locked_for("sync", lock_wait, longest, sync(ctx, backend, timeout))
        .await
        .map(Outcome::Synced)
}

/// The read-only part: desired state, instances, what each runs, what is registered.
async fn plan(ctx: &Context, backend: &BackendConfig, timeout: Duration) -> Result<Plan> {
    let live = Live::read(ctx).await?;
    let desired_of = |c| Desired::new(ctx.clients.buckets.clone(), &ctx.config, c);
    let (blue, green) = (desired_of(Color::Blue), desired_of(Color::Green));
    let (instances, blue_script, green_script) = tokio::try_join!(
        fleet::instances(ctx, backend),
        blue.read_stored(),
        green.read_stored(),
    )?;
    let mut desired = Vec::new();
    let mut not_deployed = Vec::new();
    let mut stopped = Vec::new();
    for (color, object, stored) in [
        (Color::Blue, &blue, blue_script),
        (Color::Green, &green, green_script),
    ] {
        let Some(stored) = stored else {
            not_deployed.push(color);
            continue;
        };
        if let Some(since) = stored.stopped {
            stopped.push(Asleep { color, since });
            continue;
        }
        let script = stored.script;
        let digest = desired::digest_of(&script)
            .ok_or_else(|| {
                Error::failed(format!(
                    "{} is not a launch script bgcloud wrote (no bgcloud.digest label): deploy \
                     {color} again to rewrite it",
                    object.location()
                ))
            })?
            .to_string();
        desired.push(Wanted {
            color,
            digest,
            location: object.location(),
            script,
        });
    }
    if desired.is_empty() {
        return Err(Error::refused(format!(
            "nothing to sync: no colour has a desired state yet ({} and {} are missing); \
             `bgcloud deploy` writes it",
            blue.location(),
            green.location()
        )));
    }
    ssm::check_agents(&ctx.clients.ssm, &instances).await?;
    let reports = inspect(ctx, backend, &instances, timeout).await?;

    let weights = live.weights();
    let mut relaunch = Vec::new();
    let mut register = Vec::new();
    let mut drains = Vec::new();
    for w in &desired {
        let name = format!("{}-{}", ctx.config.app, w.color);
        let redo = drift::relaunches(
            w.color,
            &name,
            &w.digest,
            weights.get(w.color) > 0,
            &reports,
        );
        let port = i32::from(backend.port(w.color));
        let registered = targets(&ctx.clients.elb, backend.target_group_arn(w.color)).await?;
        for id in &instances {
            let own = registered
                .iter()
                .find(|t| &t.id == id && t.port == Some(port));
            match own {
                // Someone else took it out (its Auto Scaling group, a person): not put back.
                Some(t) if t.state == "draining" => tracing::info!(
                    "{id} is draining from {}'s target group, taken out by its Auto Scaling \
                     group or a person: not registered again",
                    w.color
                ),
                Some(_) => {}
                None if !redo.iter().any(|r| &r.instance_id == id) => {
                    register.push((id.clone(), w.color))
                }
                None => {}
            }
        }
        let replaces_running = redo.iter().any(|r| r.running && !r.serving);
        if replaces_running && weights.get(w.color) == 0 {
            drains.extend(drain::for_color(ctx, backend, &live, w.color).await?);
        }
        relaunch.extend(redo);
    }
    Ok(Plan {
        app: ctx.config.app.clone(),
        weights,
        instances,
        desired,
        not_deployed,
        stopped,
        idle_due: None,
        relaunch,
        register,
        drains,
    })
}

/// Asks every instance which colour containers it runs, with which digest (read-only).
async fn inspect(
    ctx: &Context,
    backend: &BackendConfig,
    instances: &[String],
    timeout: Duration,
) -> Result<BTreeMap<String, BTreeMap<String, Found>>> {
    let done = ssm::run(
        &ctx.clients.ssm,
        &ctx.in_flight,
        instances,
        script::inspect(&ctx.config.app),
        ssm::Step {
            what: "the inspect command",
            comment: &format!("bgcloud sync {}: inspect", ctx.config.app),
            on_timeout: "check the instance's SSM agent and Docker, then run `bgcloud sync` again",
        },
        backend.poll_interval,
        Instant::now() + timeout.min(Duration::from_secs(120)),
    )
    .await?;
    Ok(done
        .into_iter()
        .map(|i| (i.instance_id, drift::parse(&i.stdout)))
        .collect())
}

/// Serving containers replaced per colour and run at most (each one drains and is gated on its
/// own), so the lock's expiry covers the run; more are left for the next run, and said so.
const SERVING_PER_RUN: usize = 3;

/// What one colour's repair did and could not do.
#[derive(Default)]
struct Repaired {
    relaunched: Vec<String>,
    registered: Vec<String>,
    problems: Vec<String>,
}

async fn sync(ctx: &Context, backend: &BackendConfig, timeout: Duration) -> Result<Synced> {
    let started = Instant::now();
    // First: a colour that should sleep ([backend] idle) is not relaunched only to be stopped.
    let slept = idle::when_due(ctx, backend).await;
    let plan = plan(ctx, backend, timeout).await?;
    let mut done = Repaired::default();
    for w in &plan.desired {
        let r = repair(ctx, backend, &plan, w, timeout).await;
        done.relaunched.extend(r.relaunched);
        done.registered.extend(r.registered);
        done.problems.extend(r.problems);
    }
    let result = SyncRecord {
        at: now(),
        by: ctx.who.clone(),
        instances: plan.instances.len(),
        relaunched: done.relaunched,
        registered: done.registered,
        problems: done.problems.clone(),
    };
    ctx.store()
        .update(None, |r| r.backend.last_sync = Some(result.clone()))
        .await?;
    if !done.problems.is_empty() {
        return Err(Error::failed(format!(
            "sync could not bring the fleet in line: {}. Traffic was not changed; fix the cause \
             and run `bgcloud sync` again",
            done.problems.join("; ")
        )));
    }
    Ok(Synced {
        plan,
        seconds: started.elapsed().as_secs_f64(),
        idle: slept,
    })
}

/// Brings one colour in line, as far as it can: stale containers that serve traffic one
/// instance at a time (only while another target of the colour is healthy), out of the target
/// group and drained first; then everything else at once; then the gate.
async fn repair(
    ctx: &Context,
    backend: &BackendConfig,
    plan: &Plan,
    wanted: &Wanted,
    timeout: Duration,
) -> Repaired {
    let color = wanted.color;
    let mut done = Repaired::default();
    let check =
        match target_group::health_checks(&ctx.clients.elb, &[backend.target_group_arn(color)])
            .await
        {
            Ok(mut checks) => checks.remove(0),
            Err(e) => {
                done.problems.push(format!("{color}: {e}"));
                return done;
            }
        };
    let ours: Vec<&Relaunch> = plan.relaunch.iter().filter(|r| r.color == color).collect();
    for (n, r) in ours.iter().filter(|r| r.serving).enumerate() {
        if n >= SERVING_PER_RUN {
            done.problems.push(format!(
                "{r}: left for the next run (a run replaces at most {SERVING_PER_RUN} containers \
                 that serve traffic)"
            ));
            continue;
        }
        match replace_serving(ctx, backend, color, &check, wanted, r, timeout).await {
            Ok(()) => done.relaunched.push(r.to_string()),
            Err(e) => done.problems.push(format!("{r}: {e}")),
        }
    }

    if let Some(drain) = plan.drains.iter().find(|d| d.color == color) {
        tracing::info!("draining: {drain}");
        tokio::time::sleep(drain.left()).await;
    }
    let deadline = Instant::now() + timeout;
    let direct: Vec<&&Relaunch> = ours.iter().filter(|r| !r.serving).collect();
    let mut launched = Vec::new();
    if !direct.is_empty() {
        let ids: Vec<String> = direct.iter().map(|r| r.instance_id.clone()).collect();
        match launch::launch(
            ctx,
            backend,
            &ids,
            vec![wanted.script.clone()],
            &comment(ctx, color),
            deadline,
        )
        .await
        {
            Ok(l) => launched = l,
            Err(e) => {
                done.problems
                    .push(format!("{color} on {}: {e}", ids.join(", ")));
                return done;
            }
        }
    }
    // Right containers, missing targets: a fresh registration, judged from now.
    let register: Vec<&String> = plan
        .register
        .iter()
        .filter(|(_, c)| *c == color)
        .map(|(id, _)| id)
        .collect();
    launched.extend(register.iter().map(|id| Launched {
        instance_id: (*id).clone(),
        at: Instant::now(),
    }));
    if launched.is_empty() {
        return done;
    }
    match health_gate::gate(
        ctx,
        backend,
        color,
        &check,
        launched,
        &BTreeSet::new(),
        deadline,
    )
    .await
    {
        Ok(_) => {
            done.relaunched.extend(direct.iter().map(|r| r.to_string()));
            done.registered
                .extend(register.iter().map(|id| format!("{id} {color}")));
        }
        Err(e) => done.problems.push(format!("{color}: {e}")),
    }
    done
}

fn comment(ctx: &Context, color: Color) -> String {
    format!("bgcloud sync {}: {color}", ctx.config.app)
}

/// Replaces one stale container that serves traffic: out of the target group, drained,
/// relaunched, registered again and gated. Refused when no other target of the colour is
/// healthy: the colour would have nothing left to serve with.
async fn replace_serving(
    ctx: &Context,
    backend: &BackendConfig,
    color: Color,
    check: &target_group::HealthCheck,
    wanted: &Wanted,
    r: &Relaunch,
    timeout: Duration,
) -> Result<()> {
    let arn = backend.target_group_arn(color);
    let port = i32::from(backend.port(color));
    let states = targets(&ctx.clients.elb, arn).await?;
    let peers = states
        .iter()
        .filter(|t| t.id != r.instance_id && t.port == Some(port) && t.is_healthy())
        .count();
    if peers == 0 {
        return Err(Error::failed(format!(
            "not replaced: it is the only healthy target {color} has while {color} serves \
             traffic, and taking it out would leave {color} with none. Deploy the recorded \
             image instead (`bgcloud deploy` to the idle colour, then shift back), or add an \
             instance first"
        )));
    }
    let one = [r.instance_id.clone()];
    // A run that was stopped after taking it out (killed, a lost runner) left it draining or
    // gone. Deregistering it again would succeed and change nothing (the API reference); what
    // matters is the wait: a target already gone has nothing left to drain.
    let own = states
        .iter()
        .find(|t| t.id == r.instance_id && t.port == Some(port));
    if own.is_some_and(|t| t.state != "draining") {
        targets::deregister(
            &ctx.clients.elb,
            arn,
            &[(r.instance_id.clone(), Some(port))],
        )
        .await?;
    }
    // Until the group no longer lists it: at most the deregistration delay, capped by
    // `drain_wait_max`.
    if own.is_some() {
        let delay = target_group::deregistration_delay(&ctx.clients.elb, arn).await?;
        let cap = backend.drain_wait_max.map_or(delay, |cap| delay.min(cap));
        tracing::info!(
            "{}: out of {color}'s target group ({peers} other healthy); draining (at most {}) \
             before replacing its container",
            r.instance_id,
            humantime::format_duration(cap)
        );
        let (waited, gone) =
            drain::until_deregistered(ctx, arn, &r.instance_id, port, cap, backend.poll_interval)
                .await;
        if gone {
            tracing::info!(
                "{}: drained after {:.1} s",
                r.instance_id,
                waited.as_secs_f64()
            );
        } else {
            tracing::info!(
                "{}: still draining after {:.1} s (the cap); replacing its container now",
                r.instance_id,
                waited.as_secs_f64()
            );
        }
    }
    let deadline = Instant::now() + timeout;
    let launched = launch::launch(
        ctx,
        backend,
        &one,
        vec![wanted.script.clone()],
        &comment(ctx, color),
        deadline,
    )
    .await?;
    // This run took the target out: registering it again while it still drains is its own doing.
    let retaken = BTreeSet::from([r.instance_id.clone()]);
    health_gate::gate(ctx, backend, color, check, launched, &retaken, deadline).await?;
    Ok(())
}
