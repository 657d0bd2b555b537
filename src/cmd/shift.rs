//! `bgcloud shift`: N % to a colour, the rest to the other: the traffic primitive
//! (`backend::shift`) as a command, optionally watched afterwards.

use crate::backend::live::Live;
use crate::backend::shift::{apply, preview, Because, Gate, Shifted};
use crate::backend::watch;
use crate::cli::{parse_duration, ShiftArgs};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::{parse_percent, Weights};

pub async fn run(ctx: &Context, args: &ShiftArgs) -> Result<Shifted> {
    let percent = parse_percent(&args.weight, 0, 100)
        .map_err(|e| Error::refused(format!("--weight: {e}")))?;
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    let backend = ctx.config.backend()?;
    let watch = args.watch.duration(backend.gates.watch)?;
    let reason = format!("shift {percent} % to {}", args.to);
    let gate = Gate::from_force(args.force.force);
    let ignore = args.watch.ignore_missing_metrics;
    if args.dry_run.dry_run {
        // The same reads as below, without the lock.
        let (health, mut live) = tokio::try_join!(
            super::read_ahead(ctx, backend, watch, ignore),
            Live::read(ctx)
        )?;
        live.health = Some(health);
        return preview(ctx, &live, "shift", Weights::split(args.to, percent), gate).await;
    }
    // As for a rollback: both colours' health (and the watch's alarms) read while the lock is
    // taken, then the listener and the record, then the write.
    let ahead = super::read_ahead(ctx, backend, watch, ignore);
    let rollout = (!watch.is_zero()).then_some(backend.health_timeout + watch);
    ctx.locked_ahead(&reason, wait, rollout, ahead, |health| async move {
        let mut live = Live::read(ctx).await?;
        live.health = Some(health);
        let to = Weights::split(args.to, percent);
        let from = live.weights();
        let shifted = apply(ctx, live, "shift", to, gate, None, Because::default()).await?;
        // The colour that gained traffic is watched; a shift that only takes traffic away
        // has nothing to watch.
        let gaining = Color::BOTH.into_iter().find(|&c| to.get(c) > from.get(c));
        if let (Some(gaining), false) = (gaining, watch.is_zero()) {
            watch::after_shift(ctx, backend, gaining, to, watch, ignore).await?;
        }
        Ok(shifted)
    })
    .await
}
