//! The traffic move at the heart of bgcloud: checks the receiving colour's health, writes the
//! weights, verifies them by reading the listener back (putting the previous weights back if the
//! write or its read-back fails), records the change and tells `[notify]`. Every command that
//! moves traffic — shift, promote, rollback, a deploy's shift and steps, an auto-rollback — goes
//! through [`apply`].

use std::fmt;

use serde::Serialize;

use crate::aws::listener;
use crate::aws::targets;
use crate::backend::idle::Slept;
use crate::backend::live::Live;
use crate::backend::rollout;
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::stickiness::{Stickiness, StickyWrite};
use crate::model::weights::Weights;
use crate::state::record::{new_id, now, Event, Release};

/// The result of a traffic change.
#[derive(Debug, Serialize)]
pub struct Shifted {
    pub app: String,
    pub action: &'static str,
    pub from: Weights,
    pub to: Weights,
    pub stable: Color,
    pub canary: Option<Color>,
    /// False when the weights already were `to` and nothing was written.
    pub changed: bool,
    /// The weights as read back from the listener after the write.
    pub verified: bool,
    /// Set when the traffic change worked but recording it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// `--dry-run`: `from` and `to` are what the command would write; nothing was.
    pub dry_run: bool,
    /// What the change would do beside the weights (stickiness turned off or back on in the same
    /// write; a paused rollout accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub also: Option<String>,
    /// The idle colour put to sleep after the change (`[backend] idle = "stop"`, promote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<Slept>,
}

impl Shifted {
    /// What a request handed to the running rollout came to.
    pub fn answered(ctx: &Context, action: &'static str, done: rollout::Answered) -> Shifted {
        let stable = done.to.stable(done.from.stable(Color::Blue));
        tracing::info!("carried out by the running rollout of {}", done.holder);
        Shifted {
            app: ctx.config.app.clone(),
            action,
            from: done.from,
            to: done.to,
            stable,
            canary: done.to.canary(stable),
            changed: done.from != done.to,
            verified: true,
            warning: None,
            dry_run: false,
            also: None,
            idle: None,
        }
    }
}

impl fmt::Display for Shifted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            match self.changed {
                true => writeln!(f, "{} would move: {} → {}", self.action, self.from, self.to)?,
                false => writeln!(
                    f,
                    "{}: already at {}, nothing to change",
                    self.action, self.to
                )?,
            }
            if let Some(also) = &self.also {
                writeln!(f, "{also}")?;
            }
            return writeln!(f, "{}", crate::output::DRY_RUN_DONE);
        }
        if self.changed {
            writeln!(
                f,
                "{}: {} → {} (verified on the listener)",
                self.action, self.from, self.to
            )?;
        } else {
            writeln!(
                f,
                "{}: already at {}, nothing changed",
                self.action, self.to
            )?;
        }
        match self.canary {
            Some(c) => writeln!(
                f,
                "stable {}, canary {c} at {} %",
                self.stable,
                self.to.get(c)
            )?,
            None => writeln!(f, "{} is live", self.stable)?,
        }
        if let Some(slept) = &self.idle {
            write!(f, "idle: {slept}")?;
        }
        Ok(())
    }
}

/// How a traffic change checks the health of the colour that gains traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Refuse (exit 2) when it has no healthy target; warn when some are not healthy.
    Refuse,
    /// `--force`: check and warn, never refuse.
    Force,
    /// The caller has just waited for every target to be healthy (deploy).
    Checked,
}

impl Gate {
    pub fn from_force(force: bool) -> Gate {
        if force {
            Gate::Force
        } else {
            Gate::Refuse
        }
    }
}

/// Why a traffic change happened, when it is more than a person's plain command.
#[derive(Debug, Clone, Default)]
pub struct Because {
    /// An auto-rollback's failed gate, or who asked for it.
    pub reason: Option<String>,
    /// The id of the request from another run that this change carries out (recorded even when
    /// the weights were already there, so that run sees it done).
    pub request: Option<String>,
}

/// Moves traffic from what `live` says to `to`, gated by `gate`. If the write or its read-back
/// fails, puts the previous weights back. `release` records what a deploy put on a colour.
pub async fn apply(
    ctx: &Context,
    live: Live,
    action: &'static str,
    to: Weights,
    gate: Gate,
    release: Option<(Color, Release)>,
    because: Because,
) -> Result<Shifted> {
    let backend = ctx.config.backend()?;
    let from = live.weights();
    let previous_stable = live.stable();
    let result = |changed: bool, warning: Option<String>| {
        Shifted::new(ctx, action, from, to, previous_stable, changed, warning)
    };
    if from == to && because.request.is_none() {
        return Ok(result(false, None));
    }
    check_gaining(ctx, &live, to, gate).await?;

    tracing::info!("{action}: {from} → {to} on {}", live.forward.resource);
    warn_sticky_split(&live, to);
    let sticky = sticky_write(action, &live);
    let before = live.forward.stickiness();
    match sticky {
        StickyWrite::Off => tracing::warn!(
            "target-group stickiness ({}) turned off in this same write: clients bound to {} \
             leave it now instead of staying for the stickiness duration. The next deploy turns \
             it back on",
            before.map_or(String::new(), |s| s.to_string()),
            Color::BOTH
                .into_iter()
                .find(|&c| to.get(c) < from.get(c))
                .map_or("the colour losing traffic".into(), |c| c.to_string())
        ),
        StickyWrite::Restore(s) => tracing::info!(
            "target-group stickiness back on ({s}), as it was before bgcloud's last rollback"
        ),
        StickyWrite::Keep => {}
    }
    if from != to || sticky != StickyWrite::Keep {
        let written = listener::write(&ctx.clients.elb, backend, &live.forward, to, sticky).await;
        if let Err(e) = written {
            return Err(restore(ctx, from, before, e).await);
        }
        if from != to {
            ctx.moved(action, from, to);
        }
    }

    // The listener is the truth and it is already verified; a failed record write is reported
    // but does not undo a good traffic change.
    let event = Event {
        id: new_id(),
        kind: action.to_string(),
        at: now(),
        by: ctx.who.clone(),
        from: Some(from),
        to: Some(to),
        color: Color::BOTH.into_iter().find(|&c| to.get(c) > from.get(c)),
        image: release.as_ref().map(|(_, r)| r.image.clone()),
        digest: release.as_ref().map(|(_, r)| r.digest.clone()),
        release: None,
        reason: because.reason.clone(),
        request: because.request.clone(),
    };
    let lost = Color::BOTH.into_iter().find(|&c| to.get(c) < from.get(c));
    // For the notification: the colour that gained traffic and what it runs.
    let shown = event.color.unwrap_or_else(|| to.stable(previous_stable));
    let runs = match &release {
        Some((_, r)) => Some(r.clone()),
        None => live
            .record()
            .and_then(|r| r.backend.release(shown))
            .cloned(),
    };
    let recorded = ctx
        .store()
        .update(Some(live.record), |r| {
            r.backend.weights = Some(to);
            r.backend.previous_stable = Some(previous_stable);
            // The user's stickiness setting, kept while bgcloud has it off (to restore it).
            match sticky {
                StickyWrite::Off => {
                    r.backend.stickiness = before;
                    r.backend.stickiness_off = true;
                }
                StickyWrite::Restore(_) => r.backend.stickiness_off = false,
                StickyWrite::Keep if before.is_some() => {
                    r.backend.stickiness = before;
                    r.backend.stickiness_off = false;
                }
                StickyWrite::Keep => {}
            }
            match &release {
                Some((Color::Blue, rel)) => r.backend.blue = Some(rel.clone()),
                Some((Color::Green, rel)) => r.backend.green = Some(rel.clone()),
                None => {}
            }
            if action == "auto-rollback" {
                r.backend.rolled_back = lost;
            } else if let Some((c, _)) = &release {
                // A new release on the colour that was rolled back clears the mark.
                if r.backend.rolled_back == Some(*c) {
                    r.backend.rolled_back = None;
                }
                // … and wakes a stopped one (the deploy launched it).
                if r.backend.stopped.as_ref().is_some_and(|s| s.color == *c) {
                    r.backend.stopped = None;
                }
            }
            r.push(event.clone());
        })
        .await;
    let warning = recorded.err().map(|e| {
        let msg = format!("traffic is at {to} (verified), but recording it failed: {e}");
        tracing::warn!("{msg}");
        msg
    });
    ctx.notify
        .traffic(action, shown, runs.as_ref(), to, because.reason.as_deref())
        .await;
    Ok(result(from != to, warning))
}

/// Refuses (or, with --force, warns about) a change that gives traffic to a colour without a
/// healthy target.
async fn check_gaining(ctx: &Context, live: &Live, to: Weights, gate: Gate) -> Result<()> {
    let backend = ctx.config.backend()?;
    let from = live.weights();
    let gaining = Color::BOTH.into_iter().filter(|&c| to.get(c) > from.get(c));
    for color in gaining.filter(|_| gate != Gate::Checked) {
        // Asleep: no container runs, --force or not; a rollback starts it first.
        if let Some(s) = live
            .record()
            .and_then(|r| r.backend.stopped.as_ref())
            .filter(|s| s.color == color)
        {
            return Err(Error::refused(format!(
                "{color} is stopped (since {}, `bgcloud idle stop`): no container of it runs. \
                 Start it with `bgcloud idle start` (about {:.0} s), or `bgcloud rollback`, \
                 which starts it first",
                s.since, s.start_seconds
            )));
        }
        let arn = backend.target_group_arn(color);
        let targets = match live.health.as_ref().and_then(|h| h.of(color)) {
            Some(read) => read.to_vec(),
            None => targets::targets(&ctx.clients.elb, arn).await?,
        };
        let healthy = targets.iter().filter(|t| t.is_healthy()).count();
        let listing = if targets.is_empty() {
            "no targets registered".to_string()
        } else {
            targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if healthy == 0 && gate == Gate::Refuse {
            return Err(Error::refused(format!(
                "{color} has no healthy targets in {arn} ({listing}); bgcloud will not send \
                 traffic to it. Fix the targets (see `bgcloud status`) or pass --force"
            )));
        }
        if healthy < targets.len() || healthy == 0 {
            tracing::warn!(
                "{color}: {healthy} of {} targets healthy ({listing})",
                targets.len()
            );
        }
    }
    Ok(())
}

/// What [`apply`] would do, checked as it checks (the health of the colour that gains traffic,
/// refusals included) and written nowhere: `--dry-run`.
pub async fn preview(
    ctx: &Context,
    live: &Live,
    action: &'static str,
    to: Weights,
    gate: Gate,
) -> Result<Shifted> {
    let from = live.weights();
    if from != to {
        check_gaining(ctx, live, to, gate).await?;
    }
    let mut shifted = Shifted::new(ctx, action, from, to, live.stable(), from != to, None);
    shifted.dry_run = true;
    shifted.verified = false;
    shifted.also = match sticky_write(action, live) {
        StickyWrite::Off => Some(format!(
            "in the same write: target-group stickiness ({}) turned off, so clients bound to the \
             colour losing traffic leave it at once",
            live.forward
                .stickiness()
                .map_or(String::new(), |s| s.to_string())
        )),
        StickyWrite::Restore(s) => Some(format!(
            "in the same write: target-group stickiness back on ({s})"
        )),
        StickyWrite::Keep => None,
    };
    Ok(shifted)
}

impl Shifted {
    pub fn new(
        ctx: &Context,
        action: &'static str,
        from: Weights,
        to: Weights,
        previous_stable: Color,
        changed: bool,
        warning: Option<String>,
    ) -> Shifted {
        let stable = to.stable(previous_stable);
        Shifted {
            app: ctx.config.app.clone(),
            action,
            from,
            to,
            stable,
            canary: to.canary(stable),
            changed,
            verified: true,
            warning,
            dry_run: false,
            also: None,
            idle: None,
        }
    }
}

/// A listener that forwards to one colour only leaves the other `unused`: the ALB would never
/// check the new containers. Rewrite it as a weighted forward to both, the idle colour at 0
/// (no traffic moves), and read it back.
pub async fn adopt(ctx: &Context, backend: &BackendConfig, live: &Live, idle: Color) -> Result<()> {
    let weights = live.weights();
    listener::write(
        &ctx.clients.elb,
        backend,
        &live.forward,
        weights,
        StickyWrite::Keep,
    )
    .await?;
    tracing::warn!(
        "{} forwarded to {} only; rewrote it as a weighted forward {weights} so the ALB \
         health-checks {idle} (no traffic moved)",
        live.forward.resource,
        weights.stable(idle.other()),
    );
    Ok(())
}

/// Says, once a run, what target-group stickiness means for a split (a canary, a step): the
/// share is of new clients, and a client keeps its colour for the stickiness duration.
pub fn warn_sticky_split(live: &Live, to: Weights) {
    static SAID: std::sync::Once = std::sync::Once::new();
    let (Some(s), true) = (live.forward.stickiness(), to.blue > 0 && to.green > 0) else {
        return;
    };
    SAID.call_once(|| {
        tracing::warn!(
            "target-group stickiness is on ({s}): the split {to} applies to clients the load \
             balancer has not bound yet; a client sent to a colour keeps going there for up to \
             {s}, whatever the weights. A rollback (by hand or by a gate) turns stickiness off in \
             the same write, so bound clients leave the bad colour at once"
        )
    });
}

/// What a traffic change does to stickiness. Moving traffic away from a colour because it is
/// bad (`rollback`, `auto-rollback`) turns it off in the same write, or sticky clients would stay
/// on the bad colour for the stickiness duration; the next deploy turns the user's setting back
/// on. Anything else keeps it as it is (a promote included).
fn sticky_write(action: &str, live: &Live) -> StickyWrite {
    let record = live.record().map(|r| &r.backend);
    match action {
        "rollback" | "auto-rollback" if live.forward.stickiness().is_some() => StickyWrite::Off,
        "deploy" => match (live.forward.stickiness(), record) {
            (None, Some(r)) if r.stickiness_off => {
                r.stickiness.map_or(StickyWrite::Keep, StickyWrite::Restore)
            }
            _ => StickyWrite::Keep,
        },
        _ => StickyWrite::Keep,
    }
}

/// After a failed write: put the listener back at `from` (and the stickiness it had), so a
/// failure part-way never leaves traffic where it was not verified to be. Where the failed write
/// may have been applied (a 5xx after the change, a lost answer), `from` is written even when a
/// read shows it: `Describe*` right after a write may still show the state before it.
async fn restore(
    ctx: &Context,
    from: Weights,
    sticky: Option<Stickiness>,
    failure: listener::WriteFailed,
) -> Error {
    let listener::WriteFailed {
        error: failure,
        maybe_applied,
    } = failure;
    let Ok(backend) = ctx.config.backend() else {
        return failure;
    };
    let elb = &ctx.clients.elb;
    let back = sticky.map_or(StickyWrite::Off, StickyWrite::Restore);
    let outcome = match listener::read(elb, backend).await {
        Ok(now) if !maybe_applied && now.weights == from && now.stickiness() == sticky => {
            format!("the listener is still at {from}")
        }
        Ok(now) => match listener::write(elb, backend, &now, from, back).await {
            Ok(_) => format!("traffic was put back to {from} (verified)"),
            Err(e) => {
                let reads = listener::read(elb, backend)
                    .await
                    .map_or("cannot be read".to_string(), |l| {
                        format!("reads {}", l.weights)
                    });
                format!(
                    "putting traffic back to {from} failed too: {}; the listener {reads} now \
                     (a failed write may still be applied): run `bgcloud status` now",
                    e.error
                )
            }
        },
        Err(e) => {
            format!("the listener could not be read to check it ({e}); run `bgcloud status` now")
        }
    };
    Error::failed(format!("{failure}\n{outcome}"))
}
