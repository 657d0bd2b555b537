//! `bgcloud idle stop|start`: the idle colour put to sleep now (whatever `idle_after` says) or
//! woken without moving traffic, as steps: validate → lock → read what is live and any rollout →
//! the idle colour (refused during a canary or a rollout) → `backend::idle`.

use crate::backend::idle::{self, Slept};
use crate::backend::live::Live;
use crate::backend::rollout;
use crate::cli::{parse_duration, IdleArgs};
use crate::context::Context;
use crate::error::Result;

pub async fn stop(ctx: &Context, args: &IdleArgs) -> Result<Slept> {
    let backend = ctx.config.backend()?;
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    if args.health_timeout.is_some() {
        return Err(crate::error::Error::refused(
            "--health-timeout is for `bgcloud idle start` (a stop waits for no health check)",
        ));
    }
    let work = async {
        let (live, state) = tokio::try_join!(Live::read(ctx), rollout::load(ctx))?;
        let color = idle::idle_color(&live, state.as_ref())?;
        idle::stop(ctx, backend, &live, color, args.dry_run.dry_run).await
    };
    if args.dry_run.dry_run {
        return work.await;
    }
    ctx.locked_for("idle stop", wait, backend.stop_longest(), work)
        .await
}

pub async fn start(ctx: &Context, args: &IdleArgs) -> Result<Slept> {
    let backend = ctx.config.backend()?;
    let wait = parse_duration("--lock-wait", &args.lock.lock_wait)?;
    let timeout = match &args.health_timeout {
        Some(t) => parse_duration("--health-timeout", t)?,
        None => backend.health_timeout,
    };
    let work = async {
        let (live, state) = tokio::try_join!(Live::read(ctx), rollout::load(ctx))?;
        let color = idle::idle_color(&live, state.as_ref())?;
        idle::start(ctx, backend, &live, color, timeout, args.dry_run.dry_run).await
    };
    if args.dry_run.dry_run {
        return work.await;
    }
    ctx.locked_for("idle start", wait, timeout, work).await
}
