//! `[backend.gates]`: what the bake-time watch after a shift checks on the new colour.

use std::time::Duration;

use serde::Deserialize;

use super::check::Check;
use crate::error::Result;

/// What a watch does when a gate had too little data for its window to be judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnInconclusive {
    /// The rollout stays at its weight and the run exits 4: `promote` or `rollback` decide.
    #[default]
    Pause,
    /// Treated as a breach: all traffic back on the other colour.
    Rollback,
    /// Treated as passed, with a warning.
    Pass,
}

impl OnInconclusive {
    pub fn as_str(&self) -> &'static str {
        match self {
            OnInconclusive::Pause => "pause",
            OnInconclusive::Rollback => "rollback",
            OnInconclusive::Pass => "pass",
        }
    }
}

/// The ALB publishes one datapoint per minute per metric.
pub const ALB_PERIOD: Duration = Duration::from_secs(60);

/// `[backend.gates]`: what a watch (bake time) checks on the colour that gained traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct GatesConfig {
    /// Default bake time after a shift (`--watch`); zero: no watch.
    pub watch: Duration,
    /// CloudWatch alarms that must not be in ALARM.
    pub alarms: Vec<String>,
    /// HTTPCode_Target_5XX_Count ÷ RequestCount of the new colour over the watch so far.
    pub max_5xx_rate: Option<f64>,
    /// Requests the new colour must have served before the rates are judged.
    pub min_requests: u64,
    /// TargetResponseTime p99 of the new colour.
    pub max_p99_latency: Option<Duration>,
    pub max_5xx_ratio_to_stable: Option<f64>,
    pub max_p99_ratio_to_stable: Option<f64>,
    /// UnHealthyHostCount of the new colour's group (its highest over the window).
    pub max_unhealthy_hosts: Option<u64>,
    /// A gate without enough data for its window: pause (exit 4), roll back, or pass.
    pub inconclusive: OnInconclusive,
    /// The metrics' period: the ALB's one minute. A watch's window is whole periods, from the
    /// first one after the move; only an emulator that publishes faster wants less.
    pub period: Duration,
}

impl Default for GatesConfig {
    fn default() -> Self {
        GatesConfig {
            watch: Duration::ZERO,
            alarms: Vec::new(),
            max_5xx_rate: None,
            min_requests: 50,
            max_p99_latency: None,
            max_5xx_ratio_to_stable: None,
            max_p99_ratio_to_stable: None,
            max_unhealthy_hosts: None,
            inconclusive: OnInconclusive::default(),
            period: ALB_PERIOD,
        }
    }
}

impl GatesConfig {
    /// Whether any CloudWatch gate is configured (target health is always watched).
    pub fn reads_cloudwatch(&self) -> bool {
        !self.alarms.is_empty() || self.reads_metrics()
    }

    /// Whether any gate reads the ALB's metrics.
    pub fn reads_metrics(&self) -> bool {
        self.max_5xx_rate.is_some()
            || self.max_p99_latency.is_some()
            || self.max_5xx_ratio_to_stable.is_some()
            || self.max_p99_ratio_to_stable.is_some()
            || self.max_unhealthy_hosts.is_some()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGates {
    watch: Option<String>,
    alarms: Option<Vec<String>>,
    max_5xx_rate: Option<f64>,
    min_requests: Option<i64>,
    max_p99_latency: Option<String>,
    max_5xx_ratio_to_stable: Option<f64>,
    max_p99_ratio_to_stable: Option<f64>,
    inconclusive: Option<String>,
    period: Option<String>,
    max_unhealthy_hosts: Option<i64>,
}

impl RawGates {
    pub(super) fn validate(self, c: &Check) -> Result<GatesConfig> {
        let min_requests = match self.min_requests {
            None => 50,
            Some(n) if n >= 1 => n as u64,
            Some(n) => {
                return Err(c.err(
                    "[backend.gates].min_requests",
                    format_args!("= {n} must be at least 1"),
                ))
            }
        };
        if let Some(bad) = self.alarms.iter().flatten().find(|a| a.trim().is_empty()) {
            return Err(c.err(
                "[backend.gates].alarms",
                format_args!("has {bad:?}: give CloudWatch alarm names"),
            ));
        }
        if let Some(rate) = self.max_5xx_rate.filter(|r| *r >= 1.0) {
            return Err(c.err(
                "[backend.gates].max_5xx_rate",
                format_args!("= {rate} is a share of requests: use a value below 1 (0.01 is 1 %)"),
            ));
        }
        let inconclusive = match self.inconclusive.as_deref() {
            None | Some("pause") => OnInconclusive::Pause,
            Some("rollback") => OnInconclusive::Rollback,
            Some("pass") => OnInconclusive::Pass,
            Some(other) => {
                return Err(c.err(
                    "[backend.gates].inconclusive",
                    format_args!(
                        "= {other:?} is not one of \"pause\" (stay at the weight, exit 4), \
                         \"rollback\" or \"pass\""
                    ),
                ))
            }
        };
        let max_unhealthy_hosts = match self.max_unhealthy_hosts {
            None => None,
            Some(n) if n >= 0 => Some(n as u64),
            Some(n) => {
                return Err(c.err(
                    "[backend.gates].max_unhealthy_hosts",
                    format_args!("= {n} must be 0 or more (0: any unhealthy target fails)"),
                ))
            }
        };
        Ok(GatesConfig {
            inconclusive,
            max_unhealthy_hosts,
            period: c.duration("[backend.gates].period", self.period, ALB_PERIOD)?,
            watch: c.duration_or_zero("[backend.gates].watch", self.watch)?,
            alarms: self.alarms.unwrap_or_default(),
            max_5xx_rate: c.positive("[backend.gates].max_5xx_rate", self.max_5xx_rate)?,
            min_requests,
            max_p99_latency: self
                .max_p99_latency
                .map(|t| c.duration("[backend.gates].max_p99_latency", Some(t), Duration::ZERO))
                .transpose()?,
            max_5xx_ratio_to_stable: c.positive(
                "[backend.gates].max_5xx_ratio_to_stable",
                self.max_5xx_ratio_to_stable,
            )?,
            max_p99_ratio_to_stable: c.positive(
                "[backend.gates].max_p99_ratio_to_stable",
                self.max_p99_ratio_to_stable,
            )?,
        })
    }
}
