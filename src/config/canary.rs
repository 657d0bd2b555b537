//! `[backend.canary]`: a deploy's default stepped rollout (its shares and the time between).

use std::time::Duration;

use serde::Deserialize;

use super::check::Check;
use crate::error::Result;

/// `[backend.canary]`: the default stepped rollout of a deploy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanaryConfig {
    pub steps: Vec<u8>,
    pub interval: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    steps: Option<Vec<i64>>,
    interval: Option<String>,
}

impl RawCanary {
    pub(super) fn validate(self, c: &Check) -> Result<CanaryConfig> {
        let steps = match self.steps {
            None => Vec::new(),
            Some(steps) => crate::model::weights::steps(&steps)
                .map_err(|e| c.err("[backend.canary].steps", e))?,
        };
        let interval = c.duration(
            "[backend.canary].interval",
            self.interval,
            Duration::from_secs(300),
        )?;
        Ok(CanaryConfig { steps, interval })
    }
}
