//! The idle colour asleep (`[backend] idle = "stop"`, `bgcloud idle stop|start`): its targets
//! out of its group (drained), its containers stopped but kept, and the fact stored twice — in
//! its desired state, which instances read (`script::asleep`: a booting instance and `sync` do
//! not start it), and in the record, which `status` and `rollback` read. A start runs the kept
//! launch script, registers the targets and waits for the health gate; it never moves traffic.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::aws::{ssm, target_group, targets};
use crate::backend::drain;
use crate::backend::fleet;
use crate::backend::health_gate;
use crate::backend::launch;
use crate::backend::live::Live;
use crate::backend::rollout::Rollout;
use crate::backend::script;
use crate::config::{BackendConfig, Idle};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;
use crate::state::desired::{Desired, Stored};
use crate::state::record::{new_id, now, Event, Record, Stopped, HISTORY_LEN};

/// What a stop or a start did (or, for `--dry-run`, would do).
#[derive(Debug, Serialize)]
pub struct Slept {
    pub app: String,
    /// "stop" or "start".
    pub action: &'static str,
    pub color: Color,
    /// The colour with all traffic, untouched.
    pub live: Color,
    pub instances: Vec<String>,
    /// Targets taken out of (stop) or put in (start) the colour's group.
    pub targets: Vec<String>,
    /// When the colour went to sleep (stop; a start: when it had).
    pub since: Option<String>,
    /// About how long a start takes: what a rollback costs while it sleeps.
    pub start_seconds: f64,
    /// It already was as asked: a start did nothing; a stop only sent the stop command again
    /// (for a container an interrupted stop left running).
    pub already: bool,
    pub dry_run: bool,
    pub seconds: f64,
}

impl fmt::Display for Slept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, live) = (self.color, self.live);
        let cost = format!("about {:.0} s: start + health gate", self.start_seconds);
        match (self.action, self.already, self.dry_run) {
            ("stop", true, _) => writeln!(
                f,
                "{c} is already stopped (since {}; its containers were told to stop again); a \
                 rollback starts it first ({cost})",
                self.since.as_deref().unwrap_or("?")
            ),
            ("stop", false, true) => writeln!(
                f,
                "idle stop plan for {} (dry run: nothing changed): {c}'s targets ({}) out of its \
                 group and drained, its desired state marked stopped, its container stopped (kept) \
                 on {}; {live} keeps all traffic. A rollback would then start {c} first ({cost})",
                self.app,
                list(&self.targets),
                list(&self.instances)
            ),
            ("stop", false, false) => writeln!(
                f,
                "{c} stopped on {} instance(s) in {:.1} s: {} target(s) out of its group, \
                 containers kept; {live} keeps all traffic. A rollback now starts {c} first \
                 ({cost}); `bgcloud idle start` starts it without moving traffic",
                self.instances.len(),
                self.seconds,
                self.targets.len()
            ),
            (_, true, _) => writeln!(f, "{c} is not stopped: nothing to start"),
            (_, false, true) => writeln!(
                f,
                "idle start plan for {} (dry run: nothing changed): {c} (stopped since {}) \
                 launched on {}, registered and judged healthy ({cost}); traffic untouched",
                self.app,
                self.since.as_deref().unwrap_or("?"),
                list(&self.instances)
            ),
            (_, false, false) => writeln!(
                f,
                "{c} started on {} instance(s) and judged healthy in {:.1} s; traffic untouched \
                 ({live} keeps all of it)",
                self.instances.len(),
                self.seconds
            ),
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// The colour a stop would put to sleep: the one without traffic while the other has all of it
/// and no rollout is under way; refused otherwise (exit 2, nothing changed).
pub fn idle_color(live: &Live, rollout: Option<&Rollout>) -> Result<Color> {
    if let Some(canary) = live.canary() {
        return Err(Error::refused(format!(
            "a canary is in progress ({}, canary {canary}): both colours serve traffic. Finish \
             it with `bgcloud promote` or undo it with `bgcloud rollback` first",
            live.weights()
        )));
    }
    if let Some(r) = rollout {
        return Err(Error::refused(format!(
            "a rollout is under way ({r}): its colour is still being judged. Let it end first \
             (`bgcloud status` shows it)"
        )));
    }
    Ok(live.stable().other())
}

/// When `[backend] idle = "stop"` says the idle colour should sleep now: one colour has all of
/// `weights` (the listener's) and the other has been idle for at least `after` — since it lost
/// its traffic by the record's history (the record must describe the listener), or since a
/// person woke it (`idle start`), whichever came later; no rollout is under way; the idle colour
/// was deployed and does not sleep already (or began to and its stop command has not succeeded:
/// then it is due again).
pub fn due(
    weights: Weights,
    record: Option<&Record>,
    rollout: Option<&Rollout>,
    after: Duration,
    now: SystemTime,
) -> Option<Color> {
    let record = record.filter(|r| r.backend.weights == Some(weights))?;
    if rollout.is_some() {
        return None;
    }
    let color = Color::BOTH.into_iter().find(|&c| weights.get(c) == 0)?;
    record.backend.release(color)?;
    match &record.backend.stopped {
        Some(s) if s.color == color && s.pending => return Some(color),
        Some(s) if s.color == color => return None,
        _ => {}
    }
    let at = |e: &Event| humantime::parse_rfc3339_weak(&e.at).ok();
    let lost = match drain::lost_traffic(&record.history, color) {
        Some((_, lost)) => lost,
        // The history keeps the last HISTORY_LEN entries: the loss came before the oldest.
        None if record.history.len() >= HISTORY_LEN => at(record.history.first()?)?,
        None => return None,
    };
    // A person woke it: idle again from then (times are kept to the second: its end).
    let woke = record
        .history
        .iter()
        .rev()
        .find(|e| e.kind == "idle-start" && e.color == Some(color))
        .and_then(at)
        .map(|t| t + Duration::from_secs(1));
    let idle_since = woke.map_or(lost, |w| w.max(lost));
    (now.duration_since(idle_since).unwrap_or(Duration::ZERO) >= after).then_some(color)
}

/// The colour the record says is asleep.
pub fn asleep(record: &Record) -> Option<Color> {
    record.backend.stopped.as_ref().map(|s| s.color)
}

/// After a deploy, a promote or a sync (holding the lock): puts the idle colour to sleep when
/// `[backend] idle` says it is time, and says what it did (part of the command's result). A
/// failure is a warning, not the command's: what the command did stands, and the next one tries
/// again.
pub async fn when_due(ctx: &Context, backend: &BackendConfig) -> Option<Slept> {
    let (color, live) = due_now(ctx, backend).await?;
    if let Idle::Stop { after } = backend.idle {
        tracing::info!(
            "idle: {color} has had no traffic for at least {} (idle_after): it sleeps now",
            humantime::format_duration(after)
        );
    }
    match stop(ctx, backend, &live, color, false).await {
        Ok(slept) => Some(slept),
        Err(e) => {
            tracing::warn!(
                "idle: stopping {color} failed ({e}); traffic is unchanged. Run `bgcloud idle \
                 stop` to try again"
            );
            None
        }
    }
}

/// The colour `[backend] idle` would put to sleep now ([`due`] on what is live), and what
/// is live; None with `idle = "keep"` or when what is live cannot be read (a warning).
pub async fn due_now(ctx: &Context, backend: &BackendConfig) -> Option<(Color, Live)> {
    let Idle::Stop { after } = backend.idle else {
        return None;
    };
    let read = tokio::try_join!(Live::read(ctx), crate::backend::rollout::load(ctx));
    let (live, rollout) = match read {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!("idle: could not read what is live ({e})");
            return None;
        }
    };
    let now = SystemTime::now();
    let color = due(live.weights(), live.record(), rollout.as_ref(), after, now)?;
    Some((color, live))
}

/// The colour's stored desired state, refused when it was never deployed.
async fn stored(ctx: &Context, color: Color) -> Result<(Desired, Stored)> {
    let desired = Desired::new(ctx.clients.buckets.clone(), &ctx.config, color);
    match desired.read_stored().await? {
        Some(s) => Ok((desired, s)),
        None => Err(Error::refused(format!(
            "{color} was never deployed ({} is missing): there is nothing to stop or start",
            desired.location()
        ))),
    }
}

/// About how long starting `color` takes: its last measured start, else the health check's
/// arithmetic and 10 s for SSM and the container.
fn start_estimate(live: &Live, check: &target_group::HealthCheck, color: Color) -> f64 {
    live.record()
        .and_then(|r| r.backend.release(color))
        .and_then(|r| r.start_seconds)
        .unwrap_or_else(|| (check.judge_time() + Duration::from_secs(10)).as_secs_f64())
}

/// Puts `color` (with no traffic) to sleep: waits out what is left of its drain, takes its
/// targets out of its group and waits until they are gone, marks its desired state and the
/// record stopped (from then on no instance starts it), then stops its containers. Again on a
/// colour that sleeps: finishes what an interrupted stop left, keeping when it went to sleep.
pub async fn stop(
    ctx: &Context,
    backend: &BackendConfig,
    live: &Live,
    color: Color,
    dry_run: bool,
) -> Result<Slept> {
    let started = Instant::now();
    let arn = backend.target_group_arn(color);
    let group = [arn];
    let port = i32::from(backend.port(color));
    let ((desired, stored), instances, registered, mut checks) = tokio::try_join!(
        stored(ctx, color),
        fleet::instances(ctx, backend),
        targets::targets(&ctx.clients.elb, arn),
        target_group::health_checks(&ctx.clients.elb, &group),
    )?;
    let start_seconds = start_estimate(live, &checks.remove(0), color);
    // Its targets on its port: all of them are waited for, those not draining yet taken out.
    let present: Vec<&targets::TargetState> = registered
        .iter()
        .filter(|t| t.port == Some(port) && t.state != "unused")
        .collect();
    let recorded = live
        .record()
        .and_then(|r| r.backend.stopped.clone())
        .filter(|s| s.color == color);
    let mut slept = Slept {
        app: ctx.config.app.clone(),
        action: "stop",
        color,
        live: color.other(),
        instances: instances.clone(),
        targets: present.iter().map(|t| format!("{}:{port}", t.id)).collect(),
        since: recorded
            .as_ref()
            .map(|s| s.since.clone())
            .or_else(|| stored.stopped.clone()),
        start_seconds,
        already: stored.stopped.is_some()
            && present.is_empty()
            && recorded.as_ref().is_some_and(|s| !s.pending),
        dry_run,
        seconds: 0.0,
    };
    if dry_run {
        return Ok(slept);
    }
    ssm::check_agents(&ctx.clients.ssm, &instances).await?;
    // Kept when it already slept (or began to): since when it sleeps.
    let since = slept.since.clone().unwrap_or_else(now);
    let mut mark = Stopped {
        color,
        since: since.clone(),
        by: ctx.who.clone(),
        start_seconds,
        pending: true,
    };
    if !slept.already {
        // The record first: from here on `rollback` and `shift` know the colour sleeps, whatever
        // happens next (a rollback then starts it; nothing sends traffic to an empty group).
        let first = recorded.is_none();
        ctx.store()
            .update(None, |r| {
                r.backend.stopped = Some(mark.clone());
                if first {
                    r.push(event("idle-stop", color, &mark.by));
                }
            })
            .await?;
        take_out(ctx, backend, live, color, &present).await?;
        // Before any container stops: an instance booting from now on leaves it stopped.
        let body = [
            script::asleep(&ctx.config.app, color.as_str(), &since),
            stored.launch(),
        ]
        .concat();
        desired.write(&body).await?;
    }
    // Also when it already slept: a container an interrupted stop left running stops now (a
    // stopped one, or none, is left as it is).
    let grace = backend.stop_grace.as_secs();
    ssm::run(
        &ctx.clients.ssm,
        &ctx.in_flight,
        &instances,
        launch::sent(script::stop(&ctx.config.app, color.as_str(), grace)),
        ssm::Step {
            what: "the stop command",
            comment: &format!("bgcloud idle stop {}: {color}", ctx.config.app),
            on_timeout: "check the instance's SSM agent and Docker, then run `bgcloud idle stop` \
                         again",
        },
        backend.poll_interval,
        Instant::now() + Duration::from_secs(120) + backend.stop_grace,
    )
    .await
    .map_err(|e| {
        Error::failed(format!(
            "{e}\n{color} is marked stopped and out of its group (no traffic reaches it); its \
             container may still run on the instances above. Run `bgcloud idle stop` again"
        ))
    })?;
    if !slept.already {
        mark.pending = false;
        ctx.store()
            .update(None, |r| r.backend.stopped = Some(mark.clone()))
            .await?;
    }
    slept.since = Some(since);
    slept.seconds = started.elapsed().as_secs_f64();
    Ok(slept)
}

/// Takes the sleeping colour's targets out: after what is left of the listener's propagation
/// since the colour lost its traffic (the nodes may still route to it by the previous weights),
/// the targets not draining yet are deregistered, and every one of `present` is waited for until
/// the group no longer lists it (requests a tester sent through the preview route finish).
async fn take_out(
    ctx: &Context,
    backend: &BackendConfig,
    live: &Live,
    color: Color,
    present: &[&targets::TargetState],
) -> Result<()> {
    if present.is_empty() {
        return Ok(());
    }
    let arn = backend.target_group_arn(color);
    let port = i32::from(backend.port(color));
    let lost = live
        .record()
        .and_then(|r| drain::lost_traffic(&r.history, color))
        .map(|(_, at)| at);
    if let Some(wait) = lost
        .map(|at| at + backend.listener_propagation)
        .and_then(|end| end.duration_since(SystemTime::now()).ok())
    {
        tracing::info!(
            "{color} lost its traffic a moment ago: waiting {:.1} s for the load balancer's \
             nodes (listener_propagation)",
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
    }
    let out: Vec<(String, Option<i32>)> = present
        .iter()
        .filter(|t| t.state != "draining")
        .map(|t| (t.id.clone(), Some(port)))
        .collect();
    if !out.is_empty() {
        targets::deregister(&ctx.clients.elb, arn, &out).await?;
    }
    let delay = target_group::deregistration_delay(&ctx.clients.elb, arn).await?;
    let cap = backend.drain_wait_max.map_or(delay, |cap| delay.min(cap));
    tracing::info!(
        "{color}: {} target(s) out of its group; draining (at most {})",
        present.len(),
        humantime::format_duration(cap)
    );
    // One after another: all were taken out at once, so the first wait is the drain and the
    // others find their target gone.
    for t in present {
        drain::until_deregistered(ctx, arn, &t.id, port, cap, backend.poll_interval).await;
    }
    Ok(())
}

/// Wakes `color`: runs its kept launch script on every instance, registers its targets and waits
/// for the health gate (by `deadline`), then marks its desired state running and records the
/// start. Traffic is not moved. A colour that does not sleep: `already`, nothing done.
pub async fn start(
    ctx: &Context,
    backend: &BackendConfig,
    live: &Live,
    color: Color,
    timeout: Duration,
    dry_run: bool,
) -> Result<Slept> {
    let started = Instant::now();
    let group = [backend.target_group_arn(color)];
    let ((desired, stored), instances, mut checks) = tokio::try_join!(
        stored(ctx, color),
        fleet::instances(ctx, backend),
        target_group::health_checks(&ctx.clients.elb, &group),
    )?;
    let check = checks.remove(0);
    let recorded = live.record().and_then(|r| r.backend.stopped.clone());
    let marked = recorded.as_ref().filter(|s| s.color == color);
    let mut slept = Slept {
        app: ctx.config.app.clone(),
        action: "start",
        color,
        live: live.stable(),
        instances: instances.clone(),
        targets: Vec::new(),
        since: stored
            .stopped
            .clone()
            .or_else(|| marked.map(|s| s.since.clone())),
        start_seconds: marked
            .map_or_else(|| start_estimate(live, &check, color), |s| s.start_seconds),
        already: stored.stopped.is_none() && marked.is_none(),
        dry_run,
        seconds: 0.0,
    };
    if slept.already || dry_run {
        return Ok(slept);
    }
    ssm::check_agents(&ctx.clients.ssm, &instances).await?;
    tracing::info!(
        "starting {color} (stopped since {}): about {:.0} s (start + health gate)",
        slept.since.as_deref().unwrap_or("?"),
        slept.start_seconds
    );
    let deadline = Instant::now() + timeout;
    let launched = launch::launch(
        ctx,
        backend,
        &instances,
        stored.launch(),
        &format!("bgcloud idle start {}: {color}", ctx.config.app),
        deadline,
    )
    .await?;
    // Its targets were taken out by bgcloud's own stop: registering them again while they still
    // drain is this colour's doing, not an Auto Scaling group's.
    let retaken: BTreeSet<String> = instances.iter().cloned().collect();
    let states =
        health_gate::gate(ctx, backend, color, &check, launched, &retaken, deadline).await?;
    health_gate::all_launched(color.as_str(), backend.port(color), &states, &instances)?;
    let seconds = started.elapsed().as_secs_f64();

    desired.write(&stored.launch()).await?;
    let by = ctx.who.clone();
    ctx.store()
        .update(None, |r| {
            r.backend.stopped = None;
            if let Some(release) = match color {
                Color::Blue => r.backend.blue.as_mut(),
                Color::Green => r.backend.green.as_mut(),
            } {
                release.start_seconds = Some(seconds);
            }
            r.push(event("idle-start", color, &by));
        })
        .await?;
    slept.targets = instances
        .iter()
        .map(|id| format!("{id}:{}", backend.port(color)))
        .collect();
    slept.seconds = seconds;
    Ok(slept)
}

fn event(kind: &str, color: Color, by: &str) -> Event {
    Event {
        id: new_id(),
        kind: kind.to_string(),
        at: now(),
        by: by.to_string(),
        color: Some(color),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::record::Release;

    const T0: &str = "2026-12-08T10:00:00Z";

    /// Green deployed, then all traffic moved to blue at T0 (green lost it then).
    fn record() -> Record {
        let mut r = Record::default();
        r.backend.weights = Some(Weights::all(Color::Blue));
        r.backend.green = Some(Release {
            image: "v1".into(),
            digest: "sha256:1".into(),
            deployment_id: "d1".into(),
            at: T0.into(),
            by: "me".into(),
            start_seconds: None,
        });
        r.push(Event {
            kind: "deploy".into(),
            at: T0.into(),
            from: Some(Weights::all(Color::Green)),
            to: Some(Weights::all(Color::Blue)),
            ..Event::default()
        });
        r
    }

    fn at(offset: u64) -> SystemTime {
        humantime::parse_rfc3339(T0).unwrap() + Duration::from_secs(offset)
    }

    #[test]
    fn the_idle_colour_sleeps_once_the_live_one_has_held_all_traffic_for_idle_after() {
        let (blue, r, hour) = (
            Weights::all(Color::Blue),
            record(),
            Duration::from_secs(3600),
        );
        // Times are recorded to the second: counted from the end of that second.
        assert_eq!(due(blue, Some(&r), None, hour, at(3600)), None);
        assert_eq!(
            due(blue, Some(&r), None, hour, at(3601)),
            Some(Color::Green)
        );
        assert_eq!(
            due(blue, Some(&r), None, Duration::ZERO, at(1)),
            Some(Color::Green)
        );
        // Not while a rollout is under way, nor during a canary, nor on a listener changed
        // outside bgcloud, nor without a record.
        let rollout = Rollout::default();
        assert_eq!(due(blue, Some(&r), Some(&rollout), hour, at(9999)), None);
        let split = Weights::split(Color::Green, 10);
        let mut canary = r.clone();
        canary.backend.weights = Some(split);
        assert_eq!(due(split, Some(&canary), None, hour, at(9999)), None);
        let green = Weights::all(Color::Green);
        assert_eq!(due(green, Some(&r), None, hour, at(9999)), None);
        assert_eq!(due(blue, None, None, hour, at(9999)), None);
        // Not a colour never deployed, nor one that already sleeps.
        let mut never = r.clone();
        never.backend.green = None;
        assert_eq!(due(blue, Some(&never), None, hour, at(9999)), None);
        let mut asleep = r.clone();
        let mut mark = Stopped {
            color: Color::Green,
            since: T0.into(),
            by: "me".into(),
            start_seconds: 40.0,
            pending: false,
        };
        asleep.backend.stopped = Some(mark.clone());
        assert_eq!(due(blue, Some(&asleep), None, hour, at(9999)), None);
        // … unless its stop command never succeeded: then at once, to send it again.
        mark.pending = true;
        asleep.backend.stopped = Some(mark);
        assert_eq!(
            due(blue, Some(&asleep), None, hour, at(1)),
            Some(Color::Green)
        );
    }

    #[test]
    fn a_colour_woken_by_hand_is_idle_again_from_then_and_a_long_history_does_not_hide_the_loss() {
        let (blue, hour) = (Weights::all(Color::Blue), Duration::from_secs(3600));
        let mut r = record();
        r.push(Event {
            kind: "idle-start".into(),
            at: "2026-12-08T12:00:00Z".into(),
            color: Some(Color::Green),
            ..Event::default()
        });
        assert_eq!(due(blue, Some(&r), None, hour, at(3 * 3600)), None);
        assert_eq!(
            due(blue, Some(&r), None, hour, at(3 * 3600 + 1)),
            Some(Color::Green)
        );
        // The entry where green lost its traffic has fallen out of the kept history: green has
        // been idle at least since the oldest entry kept.
        let mut long = record();
        for _ in 0..HISTORY_LEN {
            long.push(Event {
                kind: "frontend-deploy".into(),
                at: "2026-12-08T11:00:00Z".into(),
                ..Event::default()
            });
        }
        assert!(drain::lost_traffic(&long.history, Color::Green).is_none());
        assert_eq!(due(blue, Some(&long), None, hour, at(3600)), None);
        assert_eq!(
            due(blue, Some(&long), None, hour, at(2 * 3600)),
            Some(Color::Green)
        );
    }
}
