//! One module per command, and what the traffic commands share.

use std::future::Future;
use std::time::Duration;

use crate::backend::live::Health;
use crate::backend::rollout::{self, Action};
use crate::backend::shift::Shifted;
use crate::backend::watch;
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};

pub mod deploy;
pub mod frontend;
pub mod help;
pub mod history;
pub mod idle;
pub mod init;
pub mod lock;
pub mod promote;
pub mod rollback;
pub mod shift;
pub mod status;
pub mod status_watch;
pub mod sync;

/// Runs a promote or rollback (`run`, given how long to wait for the lock) without waiting for
/// the lock first, so the common case does not read it. When another run holds it and takes
/// requests (a stepped rollout or a watch), `action` is handed to that run, which carries it out
/// within a poll; when it holds it otherwise, the lock is waited for up to `wait`.
async fn locked_or_handed<F, W>(
    ctx: &Context,
    action: Action,
    wait: Duration,
    run: F,
) -> Result<Shifted>
where
    F: Fn(Duration) -> W,
    W: Future<Output = Result<Shifted>>,
{
    match run(Duration::ZERO).await {
        // Held by a run that takes requests: handed to it. Otherwise (or released in between)
        // one more try, waiting as asked.
        Err(Error::Locked(_)) => match rollout::ask_holder(ctx, action).await? {
            Some(done) => Ok(Shifted::answered(ctx, action.as_str(), done)),
            None => run(wait).await,
        },
        other => other,
    }
}

/// After a deploy or a promote, once its own lock is released: with `[backend] idle = "stop"`,
/// the idle colour goes to sleep when due, under a plain lock of its own. Not inside the
/// command's lock: a rollout's lock takes requests, and a rollback handed to it while it stops a
/// colour would wait for an answer that comes only after the stop; under a plain lock a rollback
/// meanwhile waits for it (`--lock-wait`) or exits 3. Another run holding the lock: not now, the
/// next command does it.
async fn sleep_idle_if_due(
    ctx: &Context,
    backend: &BackendConfig,
) -> Option<crate::backend::idle::Slept> {
    if backend.idle == crate::config::Idle::Keep {
        return None;
    }
    let work = async { Ok(crate::backend::idle::when_due(ctx, backend).await) };
    match ctx
        .locked_for("idle stop", Duration::ZERO, backend.stop_longest(), work)
        .await
    {
        Ok(slept) => slept,
        Err(e) => {
            tracing::info!("idle: not checked now ({e}); the next deploy, promote or sync does it");
            None
        }
    }
}

/// What a traffic change reads while it takes the lock: both colours' health and, when a watch
/// follows, that its alarms exist (a watch that could not read them is refused before any move).
async fn read_ahead(
    ctx: &Context,
    backend: &BackendConfig,
    watch: Duration,
    ignore_unreadable: bool,
) -> Result<Health> {
    let alarms = async {
        match watch.is_zero() {
            true => Ok(()),
            false => watch::check_alarms(ctx, backend, ignore_unreadable).await,
        }
    };
    let (health, ()) = tokio::try_join!(Health::read(ctx), alarms)?;
    Ok(health)
}
