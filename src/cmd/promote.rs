//! `bgcloud promote`: all traffic to the canary colour, optionally watched afterwards. While a
//! stepped rollout or a watch runs, the promote is handed to it (see `rollout`).

use crate::backend::live::Live;
use crate::backend::rollout::{self, Action};
use crate::backend::shift::{self, Because, Gate, Shifted};
use crate::backend::watch;
use crate::cli::{parse_duration, PromoteArgs};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::weights::Weights;

pub async fn run(ctx: &Context, args: &PromoteArgs) -> Result<Shifted> {
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    let backend = ctx.config.backend()?;
    let watch = args.watch.duration(backend.gates.watch)?;
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
        let Some(canary) = live.canary() else {
            return Err(Error::refused(format!(
                "no canary in progress ({}): nothing to promote. Start one with \
                 `bgcloud deploy --image TAG --canary N` or `bgcloud shift --to COLOUR --weight N`",
                live.weights()
            )));
        };
        let shifted = shift::apply(
            ctx,
            live,
            "promote",
            Weights::all(canary),
            Gate::from_force(args.force.force),
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

/// With all traffic on the stable colour and a rollout paused because its watch was
/// inconclusive, promote accepts that release as it is: the pause ends, no traffic moves.
async fn accepts_inconclusive(ctx: &Context, live: &Live) -> Result<Option<Shifted>> {
    let stable = live.stable();
    let Some(state) = rollout::load(ctx).await? else {
        return Ok(None);
    };
    let (Some(why), Some(color)) = (&state.inconclusive, state.color) else {
        return Ok(None);
    };
    if !state.paused || color != stable || live.weights().get(stable) != 100 {
        return Ok(None);
    }
    rollout::clear(ctx).await?;
    tracing::info!("{stable}'s inconclusive watch ({why}) accepted: it keeps all traffic");
    Ok(Some(Shifted {
        app: ctx.config.app.clone(),
        action: "promote",
        from: live.weights(),
        to: live.weights(),
        stable,
        canary: None,
        changed: false,
        verified: true,
        warning: None,
    }))
}
