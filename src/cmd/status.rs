//! `bgcloud status`: the traffic split, target health per colour, and what each colour runs.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::targets::{self, TargetState};
use crate::backend::live::Live;
use crate::backend::preview::{self, Route};
use crate::backend::rollout::{self, Rollout};
use crate::context::Context;
use crate::error::Result;
use crate::model::color::Color;
use crate::model::digest::short_digest;
use crate::model::stickiness::Stickiness;
use crate::model::weights::Weights;
use crate::state::record::{Stopped, SyncRecord};

#[derive(Debug, Serialize)]
pub struct Status {
    pub app: String,
    pub listener_arn: String,
    pub rule_arn: Option<String>,
    pub weights: Weights,
    pub stable: Color,
    pub canary: Option<Color>,
    /// False when the listener was changed outside bgcloud since its last recorded change.
    pub record_matches: bool,
    pub colors: Colors,
    /// A stepped rollout or watch: running (a run holds the lock and watches it), paused, or
    /// left behind by a run that stopped.
    pub rollout: Option<RolloutStatus>,
    /// The last `bgcloud sync`'s stored result (status itself asks no instance).
    pub last_sync: Option<SyncRecord>,
    /// Target-group stickiness on the forward, when on.
    pub stickiness: Option<Stickiness>,
    /// bgcloud turned stickiness off in a rollback (it was this); the next deploy restores it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stickiness_off: Option<Stickiness>,
    /// The preview route, when `[backend.preview]` is configured.
    pub preview: Option<Route>,
    /// Why the preview route could not be read (the rest of the status still stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RolloutStatus {
    #[serde(flatten)]
    pub state: Rollout,
    /// A run holds the lock and is carrying it out now.
    pub running: bool,
}

#[derive(Debug, Serialize)]
pub struct Colors {
    pub blue: ColorStatus,
    pub green: ColorStatus,
}

#[derive(Debug, Serialize)]
pub struct ColorStatus {
    pub weight: u8,
    pub role: &'static str,
    pub target_group_arn: String,
    pub port: u16,
    pub targets: Vec<TargetState>,
    pub image: Option<String>,
    pub digest: Option<String>,
    pub deployment_id: Option<String>,
    pub deployed_at: Option<String>,
    pub deployed_by: Option<String>,
    /// Asleep (`bgcloud idle stop`): since when, and what a rollback to it costs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

pub async fn run(ctx: &Context) -> Result<Status> {
    run_cached(ctx, &mut Cache::default()).await
}

/// What `status --watch` keeps between polls: the preview route changes only when a deploy
/// points it, and ELB's Describe* calls share one throttling budget per account and region with
/// a deploy that may be running, so it is read again at most every [`PREVIEW_AGE`]; its URL
/// (the listener's protocol and port, the load balancer's DNS name) once.
#[derive(Default)]
pub struct Cache {
    preview: Option<(Instant, Option<Route>, Option<String>)>,
    preview_url: Option<String>,
}

pub const PREVIEW_AGE: Duration = Duration::from_secs(30);

/// [`run`] with what an earlier poll read.
pub async fn run_cached(ctx: &Context, cache: &mut Cache) -> Result<Status> {
    let backend = ctx.config.backend()?;
    let elb = &ctx.clients.elb;
    let lock = ctx.lock();
    let (live, blue, green, rollout, lock) = tokio::try_join!(
        Live::read(ctx),
        targets::targets(elb, &backend.blue_target_group_arn),
        targets::targets(elb, &backend.green_target_group_arn),
        rollout::load(ctx),
        lock.read(),
    )?;
    // A preview rule that cannot be read (DescribeTags denied, two rules tagged for the app)
    // does not hide the traffic split.
    let fresh = cache
        .preview
        .as_ref()
        .filter(|(at, _, _)| at.elapsed() < PREVIEW_AGE);
    let (preview, preview_problem) = match fresh {
        Some((_, route, problem)) => (route.clone(), problem.clone()),
        None => {
            let next = live.stable().other();
            let url = cache.preview_url.as_deref();
            let read = match preview::read(elb, backend, &ctx.config.app, next, url).await {
                Ok(p) => (p, None),
                Err(e) => (None, Some(e.to_string())),
            };
            if let Some(route) = &read.0 {
                cache.preview_url = Some(route.url.clone());
            }
            cache.preview = Some((Instant::now(), read.0.clone(), read.1.clone()));
            read
        }
    };
    let running = lock.is_some_and(|(l, _)| l.takes_requests && !l.expired());
    let stable = live.stable();
    let canary = live.canary();
    let color = |c: Color, targets: Vec<TargetState>| {
        let release = live.record().and_then(|r| r.backend.release(c));
        ColorStatus {
            weight: live.weights().get(c),
            role: if c == stable {
                "stable"
            } else if Some(c) == canary {
                "canary"
            } else {
                "idle"
            },
            target_group_arn: backend.target_group_arn(c).to_string(),
            port: backend.port(c),
            targets,
            image: release.map(|r| r.image.clone()),
            digest: release.map(|r| r.digest.clone()),
            deployment_id: release.map(|r| r.deployment_id.clone()),
            deployed_at: release.map(|r| r.at.clone()),
            deployed_by: release.map(|r| r.by.clone()),
            stopped: live
                .record()
                .and_then(|r| r.backend.stopped.clone())
                .filter(|s| s.color == c),
        }
    };
    Ok(Status {
        app: ctx.config.app.clone(),
        listener_arn: backend.listener_arn.clone(),
        rule_arn: backend.rule_arn.clone(),
        weights: live.weights(),
        stable,
        canary,
        record_matches: live.record_matches() || live.record().is_none(),
        colors: Colors {
            blue: color(Color::Blue, blue),
            green: color(Color::Green, green),
        },
        rollout: rollout.map(|state| RolloutStatus { state, running }),
        last_sync: live.record().and_then(|r| r.backend.last_sync.clone()),
        stickiness: live.forward.stickiness(),
        stickiness_off: live
            .record()
            .filter(|r| r.backend.stickiness_off && live.forward.stickiness().is_none())
            .and_then(|r| r.backend.stickiness),
        preview,
        preview_problem,
    })
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} is live", self.app, self.stable)?;
        match self.canary {
            Some(c) => writeln!(f, ", canary {c} at {} %", self.weights.get(c))?,
            None => writeln!(f)?,
        }
        match &self.rule_arn {
            Some(rule) => writeln!(f, "  rule      {rule}")?,
            None => writeln!(f, "  listener  {}", self.listener_arn)?,
        }
        for (c, s) in [
            (Color::Blue, &self.colors.blue),
            (Color::Green, &self.colors.green),
        ] {
            write!(f, "  {c:<6} {:>3} %  {:<7}", s.weight, s.role)?;
            match (&s.image, &s.digest) {
                (Some(image), Some(digest)) => {
                    write!(f, " {image} ({})", short_digest(digest))?;
                    if let (Some(at), Some(by)) = (&s.deployed_at, &s.deployed_by) {
                        write!(f, ", deployed {at} by {by}")?;
                    }
                    writeln!(f)?;
                }
                _ => writeln!(f, " (no deploy recorded)")?,
            }
            if let Some(stopped) = s.stopped.as_ref().filter(|s| s.pending) {
                writeln!(
                    f,
                    "           {c}: going to sleep since {} (out of traffic; its stop command \
                     has not succeeded on every instance yet: run `bgcloud idle stop` again)",
                    stopped.since
                )?;
            } else if let Some(stopped) = &s.stopped {
                writeln!(
                    f,
                    "           {c}: stopped since {} by {} (rollback takes about {:.0} s: start \
                     + health gate; `bgcloud idle start` starts it now)",
                    stopped.since, stopped.by, stopped.start_seconds
                )?;
            } else if s.targets.is_empty() {
                writeln!(f, "           no targets registered on port {}", s.port)?;
            }
            for t in &s.targets {
                writeln!(f, "           {t}")?;
            }
        }
        if let Some(s) = &self.stickiness {
            writeln!(
                f,
                "  sticky    on ({s}): a client stays on the colour it was sent to for up to {s}, \
                 whatever the weights"
            )?;
        }
        if let Some(s) = &self.stickiness_off {
            writeln!(
                f,
                "  sticky    off: bgcloud turned it off in a rollback (it was {s}); the next \
                 deploy turns it back on"
            )?;
        }
        if let Some(p) = &self.preview {
            writeln!(f, "  preview   {p}")?;
        }
        if let Some(why) = &self.preview_problem {
            writeln!(f, "  preview   unreadable: {why}")?;
        }
        if let Some(r) = &self.rollout {
            let how = if r.running {
                ""
            } else if r.state.paused {
                " (no run is watching it)"
            } else {
                " (no run is carrying it out: it was interrupted or crashed)"
            };
            // The state's first line, what runs it, then its gates one a line.
            let text = r.state.to_string();
            let (first, gates) = text.split_once('\n').unwrap_or((&text, ""));
            writeln!(f, "  rollout   {first}{how}")?;
            if !gates.is_empty() {
                writeln!(f, "{gates}")?;
            }
        }
        if let Some(s) = &self.last_sync {
            write!(f, "  sync      last {} by {}: ", s.at, s.by)?;
            if !s.problems.is_empty() {
                writeln!(f, "not in line: {}", s.problems.join("; "))?;
            } else if s.relaunched.is_empty() && s.registered.is_empty() {
                writeln!(f, "{} instance(s) in line, nothing to do", s.instances)?;
            } else {
                writeln!(
                    f,
                    "brought in line ({} relaunched, {} registered)",
                    s.relaunched.len(),
                    s.registered.len()
                )?;
            }
        }
        if !self.record_matches {
            writeln!(
                f,
                "  note: the listener was changed outside bgcloud since its last recorded change"
            )?;
        }
        Ok(())
    }
}
