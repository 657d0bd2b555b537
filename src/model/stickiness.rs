//! Target-group stickiness on the weighted forward: while it is on, a client the load balancer
//! sent to a colour keeps going there for the duration, whatever the weights say.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The forward action's `TargetGroupStickinessConfig`, when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stickiness {
    /// 1 s to 7 days.
    pub duration_seconds: u32,
}

impl fmt::Display for Stickiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = std::time::Duration::from_secs(u64::from(self.duration_seconds));
        write!(f, "{}", humantime::format_duration(d))
    }
}

/// What a listener write does to stickiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickyWrite {
    /// As it is on the listener.
    Keep,
    /// Off: traffic leaves a colour because it is bad, and sticky clients must leave it too.
    Off,
    /// On again with the user's setting (a deploy after bgcloud turned it off).
    Restore(Stickiness),
}
