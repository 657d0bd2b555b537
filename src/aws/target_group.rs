//! A target group's health-check settings (DescribeTargetGroups): what the on-instance probe
//! mirrors, and how long the ALB needs to judge a new container.

use std::fmt;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::TargetGroup;
use aws_sdk_elasticloadbalancingv2::Client;
use serde::Serialize;

use crate::error::{aws, Error, Result};

/// How the ALB checks a target group's targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// A fixed port, or `None` for `traffic-port` (the target's own port).
    pub port: Option<u16>,
    pub path: String,
    pub matcher: Matcher,
    #[serde(with = "secs")]
    pub interval: Duration,
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

impl HealthCheck {
    /// How long a target must have read `healthy` since its container was replaced before that
    /// verdict is the new container's: the ALB keeps an old verdict until
    /// `max(healthy, unhealthy)` checks of the new container, one interval apart, have passed,
    /// and the first of them can come up to one interval after the replacement. Plus a margin of
    /// one more interval and one check's timeout: every load-balancer node checks each target on
    /// its own schedule, and when (and how late) DescribeTargetHealth reflects their verdicts is
    /// not documented.
    pub fn judge_time(&self) -> Duration {
        self.interval * (self.healthy_threshold.max(self.unhealthy_threshold) + 2) + self.timeout
    }

    /// "(max(2, 2) + 1) × 10s + 10s + 5s = 45s", for messages and the arithmetic in
    /// docs/guide/health-gate.md.
    pub fn judge_arithmetic(&self) -> String {
        let interval = humantime::format_duration(self.interval);
        format!(
            "(max({}, {}) + 1) × {interval} + {interval} + {} = {}",
            self.healthy_threshold,
            self.unhealthy_threshold,
            humantime::format_duration(self.timeout),
            humantime::format_duration(self.judge_time())
        )
    }

    fn from_sdk(tg: &TargetGroup) -> Result<HealthCheck> {
        let arn = tg.target_group_arn().unwrap_or_default();
        let port = match tg.health_check_port() {
            None | Some("traffic-port") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| {
                Error::failed(format!(
                    "target group {arn} has health check port {p:?}, which is not a port number"
                ))
            })?),
        };
        let code = tg.matcher().and_then(|m| m.http_code()).unwrap_or("200");
        let matcher = Matcher::parse(code).map_err(|e| {
            Error::refused(format!(
                "target group {arn}: health check matcher {code:?} {e}; bgcloud mirrors it in the \
                 on-instance readiness probe: set an HTTP matcher such as 200 or 200-399"
            ))
        })?;
        let count = |v: Option<i32>, default: u32| v.map_or(default, |n| n.max(1) as u32);
        Ok(HealthCheck {
            protocol: tg
                .health_check_protocol()
                .map_or("HTTP", |p| p.as_str())
                .to_string(),
            port,
            path: tg.health_check_path().unwrap_or("/").to_string(),
            matcher,
            interval: Duration::from_secs(count(tg.health_check_interval_seconds(), 30).into()),
            timeout: Duration::from_secs(count(tg.health_check_timeout_seconds(), 5).into()),
            healthy_threshold: count(tg.healthy_threshold_count(), 5),
            unhealthy_threshold: count(tg.unhealthy_threshold_count(), 2),
        })
    }
}

/// Reads the health-check settings of `arns`, in that order.
pub async fn health_checks(elb: &Client, arns: &[&str]) -> Result<Vec<HealthCheck>> {
    let out = elb
        .describe_target_groups()
        .set_target_group_arns(Some(arns.iter().map(ToString::to_string).collect()))
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_target_group_not_found_exception())
            {
                Error::refused(format!(
                    "target group {} does not exist: check blue_target_group_arn / \
                     green_target_group_arn in the config",
                    arns.join(" or ")
                ))
            } else {
                aws("reading the target groups' health-check settings")(e)
            }
        })?;
    arns.iter()
        .map(|arn| {
            let tg = out
                .target_groups()
                .iter()
                .find(|t| t.target_group_arn() == Some(*arn))
                .ok_or_else(|| {
                    Error::refused(format!(
                        "target group {arn} does not exist: check the target group ARNs in the config"
                    ))
                })?;
            HealthCheck::from_sdk(tg)
        })
        .collect()
}

/// How long a target group lets a deregistered target finish its requests
/// (`deregistration_delay.timeout_seconds`; AWS's default is 300 s).
pub async fn deregistration_delay(elb: &Client, arn: &str) -> Result<Duration> {
    let out = elb
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(aws("reading the target group's deregistration delay"))?;
    let seconds = out
        .attributes()
        .iter()
        .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| a.value())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(300);
    Ok(Duration::from_secs(seconds))
}

/// An ALB success-code matcher: `200`, `200-399`, `200,302`, or a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Inclusive ranges.
    pub ranges: Vec<(u16, u16)>,
}

impl Matcher {
    pub fn parse(text: &str) -> std::result::Result<Matcher, String> {
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let code = |s: &str| {
                s.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| format!("is not an HTTP status matcher ({part:?})"))
            };
            let (lo, hi) = (code(lo)?, code(hi)?);
            if lo > hi {
                return Err(format!("has an empty range ({part:?})"));
            }
            ranges.push((lo, hi));
        }
        Ok(Matcher { ranges })
    }

    pub fn matches(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| lo <= status && status <= hi)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_forms_parse_and_match() {
        let single = Matcher::parse("200").unwrap();
        assert!(single.matches(200) && !single.matches(302));
        let range = Matcher::parse("200-399").unwrap();
        assert!(range.matches(302) && range.matches(399) && !range.matches(404));
        let list = Matcher::parse("200,302").unwrap();
        assert!(list.matches(302) && !list.matches(301) && !list.matches(500));
        assert_eq!(
            Matcher::parse("200, 300-302").unwrap().to_string(),
            "200,300-302"
        );
        for bad in ["", "abc", "399-200", "2000", "12"] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn judge_time_is_the_longer_threshold_plus_one_interval_and_a_margin() {
        let hc = HealthCheck {
            protocol: "HTTP".into(),
            port: None,
            path: "/".into(),
            matcher: Matcher::parse("200").unwrap(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            healthy_threshold: 5,
            unhealthy_threshold: 2,
        };
        // 6 intervals of the old verdict's life, then one more interval and a timeout for the
        // nodes that check on their own schedules.
        assert_eq!(hc.judge_time(), Duration::from_secs(215));
        assert_eq!(
            hc.judge_arithmetic(),
            "(max(5, 2) + 1) × 30s + 30s + 5s = 3m 35s"
        );
    }
}
