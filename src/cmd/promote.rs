//! `bgcloud promote`: all traffic to the canary colour, optionally watched afterwards. While a
//! stepped rollout or a watch runs, the promote is handed to it (see `rollout`).

use crate::backend::live::Live;
use crate::backend::rollout::{self, Action};
use crate::backend::shift::{self, Because, Gate, Shifted};
use crate::backend::watch;
use crate::cli::{parse_duration, PromoteArgs};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;

pub async fn run(ctx: &Context, args: &PromoteArgs) -> Result<Shifted> {
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    let backend = ctx.config.backend()?;
    let watch = args.watch.duration(backend.gates.watch)?;
    let gate = Gate::from_force(args.force.force);
    if args.dry_run.dry_run {
        let live = Live::read(ctx).await?;
        if let Some(why) = inconclusive(ctx, &live).await? {
            let mut kept = shift::preview(ctx, &live, "promote", live.weights(), gate).await?;
            kept.also = Some(format!(
                "{}'s inconclusive watch ({why}) accepted: the paused rollout ends",
                live.stable()
            ));
            return Ok(kept);
        }
        let canary = canary(&live)?;
        return shift::preview(ctx, &live, "promote", Weights::all(canary), gate).await;
    }
    if let Some(done) = rollout::ask_holder(ctx, Action::Promote).await? {
        return Ok(Shifted::answered(ctx, "promote", done));
    }
    let work = async {
        if !watch.is_zero() {
            watch::check_alarms(ctx, backend, args.watch.ignore_missing_metrics).await?;
        }
        let live = Live::read(ctx).await?;
        // A watch that ended inconclusive with all traffic on its colour: promote accepts it.
        if let Some(paused) = accepts_inconclusive(ctx, &live).await? {
            return Ok(paused);
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
            let ignore = args.watch.ignore_missing_metrics;
            watch::after_shift(ctx, backend, canary, all, watch, ignore).await?;
        }
        Ok(shifted)
    };
    if watch.is_zero() {
        ctx.locked("promote", wait, work).await
    } else {
        ctx.locked_rollout("promote", wait, watch, work).await
    }
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
/// when that is the state: promote then accepts that release as it is.
async fn inconclusive(ctx: &Context, live: &Live) -> Result<Option<String>> {
    let stable = live.stable();
    let Some(state) = rollout::load(ctx).await? else {
        return Ok(None);
    };
    let (Some(why), Some(color)) = (state.inconclusive, state.color) else {
        return Ok(None);
    };
    if !state.paused || color != stable || live.weights().get(stable) != 100 {
        return Ok(None);
    }
    Ok(Some(why))
}

/// With all traffic on the stable colour and a rollout paused because its watch was
/// inconclusive, promote accepts that release as it is: the pause ends, no traffic moves.
async fn accepts_inconclusive(ctx: &Context, live: &Live) -> Result<Option<Shifted>> {
    let Some(why) = inconclusive(ctx, live).await? else {
        return Ok(None);
    };
    rollout::clear(ctx).await?;
    let stable = live.stable();
    tracing::info!("{stable}'s inconclusive watch ({why}) accepted: it keeps all traffic");
    let w = live.weights();
    Ok(Some(Shifted::new(
        ctx, "promote", w, w, stable, false, None,
    )))
}
