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
        let live = Live::read(ctx).await?;
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
