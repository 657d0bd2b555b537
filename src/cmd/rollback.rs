//! `bgcloud rollback`: all traffic back to the previous stable colour, at once. The old colour's
//! containers were kept running, so this is one listener write — unless it sleeps
//! (`bgcloud idle stop`): then it is started and judged healthy first, and the cost said up front.

use std::time::Duration;

use crate::backend::idle;
use crate::backend::live::{Health, Live};
use crate::backend::rollout::{self, Action};
use crate::backend::shift::{self, Because, Gate, Shifted};
use crate::cli::{parse_duration, TrafficArgs};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;

/// Where rollback sends traffic: the stable colour before bgcloud's last change when the
/// record still describes the listener; otherwise the stable colour when a canary is running
/// (abort it), else the other colour.
pub fn target(live: &Live) -> Color {
    if live.record_matches() {
        if let Some(previous) = live.record().and_then(|r| r.backend.previous_stable) {
            return previous;
        }
    } else if live.record().is_some() {
        tracing::warn!(
            "the listener ({}) was changed outside bgcloud since its last recorded change; \
             rolling back from what the listener says",
            live.weights()
        );
    }
    match live.canary() {
        Some(_) => live.stable(),
        None => live.stable().other(),
    }
}

pub async fn run(ctx: &Context, args: &TrafficArgs) -> Result<Shifted> {
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    ctx.config.backend()?;
    let gate = Gate::from_force(args.force.force);
    if args.dry_run.dry_run {
        let live = Live::read(ctx).await?;
        let to = checked_target(&live, args.force.force)?;
        if live.record().and_then(idle::asleep) == Some(to) {
            // Started and gated before the move: the health check is the start's own.
            let backend = ctx.config.backend()?;
            let timeout = backend.health_timeout;
            let woke = idle::start(ctx, backend, &live, to, timeout, true).await?;
            let mut shifted =
                shift::preview(ctx, &live, "rollback", Weights::all(to), Gate::Checked).await?;
            let first = format!("first, {to} is started: {}", woke.to_string().trim_end());
            shifted.also = Some(match shifted.also.take() {
                Some(also) => format!("{first}; then {also}"),
                None => first,
            });
            return Ok(shifted);
        }
        return shift::preview(ctx, &live, "rollback", Weights::all(to), gate).await;
    }
    // The critical path, when production is on fire: both colours' health is read while the
    // lock is taken, then the listener and the record together, then the listener is written
    // (docs/guide/traffic.md#rollback). A held lock costs the fast path nothing: then a stepped
    // rollout or a watch in progress takes the rollback itself, within a poll.
    super::locked_or_handed(ctx, Action::Rollback, wait, |wait| {
        locked(ctx, args, gate, wait)
    })
    .await
}

/// The rollback under the lock (waiting up to `wait` for it).
async fn locked(ctx: &Context, args: &TrafficArgs, gate: Gate, wait: Duration) -> Result<Shifted> {
    ctx.locked_ahead("rollback", wait, None, Health::read(ctx), |health| async {
        let mut live = Live::read(ctx).await?;
        live.health = Some(health);
        let to = checked_target(&live, args.force.force)?;
        if live.record().and_then(idle::asleep) == Some(to) {
            live = wake(ctx, &live, to).await?;
        }
        let shifted = shift::apply(
            ctx,
            live,
            "rollback",
            Weights::all(to),
            gate,
            None,
            Because::default(),
        )
        .await?;
        rollout::clear(ctx).await?;
        Ok(shifted)
    })
    .await
}

/// Starts `to`, asleep, before traffic moves to it, saying the cost first; the listener, the
/// record and the health as they are after the start.
async fn wake(ctx: &Context, live: &Live, to: Color) -> Result<Live> {
    let backend = ctx.config.backend()?;
    let from = live.weights();
    let stopped = live.record().and_then(|r| r.backend.stopped.clone());
    if let Some(s) = &stopped {
        tracing::warn!(
            "{to} is stopped (since {}, by {}): starting it first, about {:.0} s (start + health \
             gate); {} keeps all traffic meanwhile",
            s.since,
            s.by,
            s.start_seconds,
            live.stable()
        );
    }
    idle::start(ctx, backend, live, to, backend.health_timeout, false)
        .await
        .map_err(|e| {
            Error::failed(format!(
                "rollback: {to} is stopped and could not be started: {e}\nTraffic was not \
                 changed ({from}). Fix the cause, then `bgcloud idle start` and `bgcloud \
                 rollback` again"
            ))
        })?;
    let (mut live, health) = tokio::try_join!(Live::read(ctx), Health::read(ctx))?;
    live.health = Some(health);
    Ok(live)
}

/// [`target`], refused when it is the colour a watch rolled back (unless `force`) or already has
/// all traffic.
fn checked_target(live: &Live, force: bool) -> Result<Color> {
    let to = target(live);
    let rolled_back = live.record().and_then(|r| r.backend.rolled_back);
    if rolled_back == Some(to) && !force {
        let why = live
            .record()
            .and_then(|r| r.history.iter().rev().find(|e| e.kind == "auto-rollback"))
            .map(|e| {
                format!(
                    " at {} ({})",
                    e.at,
                    e.reason.as_deref().unwrap_or("a failed gate")
                )
            })
            .unwrap_or_default();
        return Err(Error::refused(format!(
            "{to} was rolled back automatically{why}; rolling back to it would send traffic \
             to what failed its watch. Pass --force if that is what you want, or deploy a \
             fixed image"
        )));
    }
    if live.weights().get(to) == 100 {
        return Err(Error::refused(format!(
            "nothing to roll back: {to} already has all traffic and is the previous stable \
             colour on record. To move traffic anyway use `bgcloud shift --to {}`",
            to.other()
        )));
    }
    Ok(to)
}
