//! `bgcloud promote`: all traffic to the canary colour.

use crate::cli::{parse_duration, TrafficArgs};
use crate::cmd::shift::{self, Gate, Shifted};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::live::Live;
use crate::weights::Weights;

pub async fn run(ctx: &Context, args: &TrafficArgs) -> Result<Shifted> {
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    ctx.config.backend()?;
    ctx.locked("promote", wait, async {
        let live = Live::read(ctx).await?;
        let Some(canary) = live.canary() else {
            return Err(Error::refused(format!(
                "no canary in progress ({}): nothing to promote. Start one with \
                 `bgcloud deploy --image TAG --canary N` or `bgcloud shift --to COLOUR --weight N`",
                live.weights()
            )));
        };
        shift::apply(
            ctx,
            live,
            "promote",
            Weights::all(canary),
            Gate::from_force(args.force.force),
            None,
        )
        .await
    })
    .await
}
