//! `bgcloud lock status` and `bgcloud lock release --force`.

use std::fmt;

use serde::Serialize;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::state::lock::LockInfo;

#[derive(Debug, Serialize)]
pub struct LockState {
    pub location: String,
    pub held: bool,
    pub expired: bool,
    pub lock: Option<LockInfo>,
    /// True when `release --force` deleted it.
    pub released: bool,
}

impl fmt::Display for LockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.lock, self.released) {
            (Some(info), true) => {
                writeln!(f, "released the lock {} (it was {info})", self.location)
            }
            (Some(info), false) => writeln!(f, "lock {}: {info}", self.location),
            (None, _) => writeln!(f, "lock {}: free", self.location),
        }
    }
}

pub async fn status(ctx: &Context) -> Result<LockState> {
    let lock = ctx.lock();
    let current = lock.read().await?.map(|(info, _)| info);
    Ok(LockState {
        location: lock.location(),
        held: current.is_some(),
        expired: current.as_ref().is_some_and(LockInfo::expired),
        lock: current,
        released: false,
    })
}

pub async fn release(ctx: &Context, force: bool) -> Result<LockState> {
    if !force {
        return Err(Error::refused(
            "releasing someone else's lock can let two deployments run at once: check \
             `bgcloud lock status`, make sure that run is gone, then pass --force",
        ));
    }
    let mut state = status(ctx).await?;
    if state.lock.is_some() {
        ctx.lock().delete().await?;
        state.released = true;
        state.held = false;
    }
    Ok(state)
}
