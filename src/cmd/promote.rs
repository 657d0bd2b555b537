//! `bgcloud promote`: all traffic to the canary colour, optionally watched afterwards. While a
//! stepped rollout or a watch runs, the promote is handed to it (see `rollout`).

use std::time::Duration;

use crate::backend::live::Live;
use crate::backend::rollout::{self, Action};
use crate::backend::shift::{self, Because, Gate, Shifted};
use crate::backend::watch;
use crate::cli::{parse_duration, PromoteArgs};
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;

pub async fn run(ctx: &Context, args: &PromoteArgs) -> Result<Shifted> {
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    let backend = ctx.config.backend()?;
    let watch = args.watch.duration(backend.gates.watch)?;
    let gate = Gate::from_force(args.force.force);
    let ignore = args.watch.ignore_missing_metrics;
    if args.dry_run.dry_run {
        // The same reads as below, without the lock.
        let (health, mut live, state) = tokio::try_join!(
            super::read_ahead(ctx, backend, watch, ignore),
            Live::read(ctx),
            rollout::load(ctx)
        )?;
        live.health = Some(health);
        if let Some(why) = inconclusive(&live, state) {
            let mut kept = shift::preview(ctx, &live, "promote", live.weights(), gate).await?;
            kept.also = Some(format!(
                "no weight changes; {}'s inconclusive watch ({why}) would be accepted and the \
                 paused rollout would end",
                live.stable()
            ));
            return Ok(kept);
        }
        let canary = canary(&live)?;
        return shift::preview(ctx, &live, "promote", Weights::all(canary), gate).await;
    }
    let mut shifted = super::locked_or_handed(ctx, Action::Promote, wait, |wait| {
        locked(ctx, backend, gate, watch, ignore, wait)
    })
    .await?;
    shifted.idle = super::sleep_idle_if_due(ctx, backend).await;
    Ok(shifted)
}

/// The promote under the lock (waiting up to `wait` for it). As for a rollback, both colours'
/// health (and the watch's alarms) are read while the lock is taken, then the listener, the
/// record and the rollout state together, then the listener is written.
async fn locked(
    ctx: &Context,
    backend: &BackendConfig,
    gate: Gate,
    watch: Duration,
    ignore: bool,
    wait: Duration,
) -> Result<Shifted> {
    let ahead = super::read_ahead(ctx, backend, watch, ignore);
    let rollout = (!watch.is_zero()).then_some(watch);
    ctx.locked_ahead("promote", wait, rollout, ahead, |health| async move {
        let (mut live, state) = tokio::try_join!(Live::read(ctx), rollout::load(ctx))?;
        live.health = Some(health);
        // A watch that ended inconclusive with all traffic on its colour: promote accepts it.
        if let Some(why) = inconclusive(&live, state) {
            rollout::clear(ctx).await?;
            let stable = live.stable();
            tracing::info!("{stable}'s inconclusive watch ({why}) accepted: it keeps all traffic");
            let w = live.weights();
            return Ok(Shifted::new(ctx, "promote", w, w, stable, false, None));
        }
        let canary = canary(&live)?;
        let shifted = shift::apply(
            ctx,
            live,
            "promote",
            Weights::all(canary),
            gate,
            None,
            Because::default(),
        )
        .await?;
        // A paused stepped rollout ends here.
        rollout::clear(ctx).await?;
        if !watch.is_zero() {
            let all = Weights::all(canary);
            watch::after_shift(ctx, backend, canary, all, watch, ignore).await?;
        }
        Ok(shifted)
    })
    .await
}

/// The colour a promote gives all traffic to: the canary, refused when there is none.
fn canary(live: &Live) -> Result<Color> {
    live.canary().ok_or_else(|| {
        Error::refused(format!(
            "no canary in progress ({}): nothing to promote. Start one with \
             `bgcloud deploy --image TAG --canary N` or `bgcloud shift --to COLOUR --weight N`",
            live.weights()
        ))
    })
}

/// Why the watch of the rollout paused with all traffic on the stable colour was inconclusive,
/// when `state` (the rollout state) says that is where things are: promote then accepts that
/// release as it is, the pause ends and no traffic moves.
fn inconclusive(live: &Live, state: Option<rollout::Rollout>) -> Option<String> {
    let stable = live.stable();
    let state = state?;
    let (Some(why), Some(color)) = (state.inconclusive, state.color) else {
        return None;
    };
    (state.paused && color == stable && live.weights().get(stable) == 100).then_some(why)
}
