//! The gates a watch judges on the colour that gained traffic: CloudWatch alarms and the ALB's
//! metrics (5xx rate and p99 latency, also relative to the stable colour). Pure judging; the reads
//! are in `aws::cloudwatch`. As AWS publishes them: no datapoints means "not judged yet" (the ALB
//! sends nothing for a minute without requests, and sends late), an alarm in INSUFFICIENT_DATA is
//! not in ALARM, and a gate that cannot be read fails safe unless told to ignore it.
//!
//! A gate's verdict at the end of its window is passed, breached, or **inconclusive**: still not
//! judged once the window's datapoints had every chance to arrive (too few requests, no
//! datapoints, an alarm in INSUFFICIENT_DATA). Inconclusive is never "passed": what happens then
//! is `[backend.gates].inconclusive` (pause by default).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::aws::cloudwatch::ColorMetrics;
use crate::config::GatesConfig;

/// Where a stable colour served no 5xx at all, ratios are taken against this rate (0.1 %), so
/// one error on the new colour is not an infinite ratio.
const STABLE_5XX_FLOOR: f64 = 0.001;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Breached,
    /// Not enough data yet; the watch goes on.
    NotJudged,
    /// Still not enough data when the window ended.
    Inconclusive,
    Unreadable,
}

/// One gate's latest judgement, for `status` and for the reason of a rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub name: String,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Reading {
    fn new(name: &str, value: Option<f64>, limit: Option<f64>, state: State) -> Reading {
        Reading {
            name: name.to_string(),
            value,
            limit,
            state,
            note: None,
        }
    }

    fn note(mut self, note: impl Into<String>) -> Reading {
        self.note = Some(note.into());
        self
    }

    /// The reading with `note` in place of its own.
    pub fn with_note(self, note: &str) -> Reading {
        self.note(note)
    }

    /// Whether this reading fails the watch.
    pub fn fails(&self, ignore_unreadable: bool) -> bool {
        match self.state {
            State::Breached => true,
            State::Unreadable => !ignore_unreadable,
            State::Ok | State::NotJudged | State::Inconclusive => false,
        }
    }

    /// This reading as the window's last word: not judged by then is inconclusive.
    pub fn at_window_end(mut self) -> Reading {
        if self.state == State::NotJudged {
            self.state = State::Inconclusive;
        }
        self
    }
}

/// What a set of final readings comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// What failed, in words.
    Breached(String),
    /// Which gates had too little data, in words.
    Inconclusive(String),
}

/// The verdict of the readings at a window's end (after [`Reading::at_window_end`]).
pub fn verdict(readings: &[Reading], ignore_unreadable: bool) -> Verdict {
    let words = |keep: &dyn Fn(&Reading) -> bool| {
        readings
            .iter()
            .filter(|r| keep(r))
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let failed = words(&|r| r.fails(ignore_unreadable));
    if !failed.is_empty() {
        return Verdict::Breached(failed);
    }
    let open = words(&|r| matches!(r.state, State::Inconclusive | State::NotJudged));
    if !open.is_empty() {
        return Verdict::Inconclusive(open);
    }
    Verdict::Passed
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        match (self.value, self.limit) {
            (Some(v), Some(l)) => write!(f, " {} (limit {})", num(v), num(l))?,
            (Some(v), None) => write!(f, " {}", num(v))?,
            _ => {}
        }
        let state = match self.state {
            State::Ok => "ok",
            State::Breached => "BREACHED",
            State::NotJudged => "not judged yet",
            State::Inconclusive => "INCONCLUSIVE",
            State::Unreadable => "UNREADABLE",
        };
        write!(f, ": {state}")?;
        if let Some(n) = &self.note {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// The requests routed to the colour that failed: the 5xx its targets answered, plus those no
/// target answered at all. The ALB's metrics page: RequestCount counts every request a target
/// was chosen for; HTTPCode_Target_*_Count only what targets answered ("does not include any
/// response codes generated by the load balancer"); so RequestCount − Σ HTTPCode_Target_{2,3,4,
/// 5}XX_Count is what got the load balancer's own 502/504 (a crashed, refusing or hanging
/// target), of which TargetConnectionErrorCount is the part that never connected (taken when
/// it is the larger: the metrics may not land in the same period).
pub fn failed_requests(m: &ColorMetrics) -> f64 {
    let requests = m.requests.unwrap_or(0.0);
    let unanswered = (requests - m.answered.unwrap_or(0.0)).max(0.0);
    m.errors_5xx.unwrap_or(0.0) + unanswered.max(m.connection_errors.unwrap_or(0.0))
}

/// The failure rate of `m` ([`failed_requests`] ÷ requests), once `min_requests` were served.
fn rate_5xx(m: &ColorMetrics, min_requests: u64) -> Result<f64, String> {
    let requests = m.requests.unwrap_or(0.0);
    if requests < min_requests as f64 {
        return Err(format!("{requests:.0} of {min_requests} requests seen"));
    }
    Ok(failed_requests(m) / requests)
}

/// Judges the metric gates of `gates` from the new and the stable colour's figures.
pub fn judge_metrics(
    gates: &GatesConfig,
    new: &ColorMetrics,
    stable: &ColorMetrics,
) -> Vec<Reading> {
    let mut out = Vec::new();
    let min = gates.min_requests;
    if let Some(limit) = gates.max_5xx_rate {
        out.push(match rate_5xx(new, min) {
            Ok(rate) => {
                let by_target = new.errors_5xx.unwrap_or(0.0);
                let reading = threshold("5xx_rate", rate, limit);
                let failed = failed_requests(new);
                match failed > by_target {
                    // Say where the failures came from when the load balancer made some.
                    true => reading.note(format!(
                        "{failed:.0} failed: {by_target:.0} 5xx from targets, {:.0} without a \
                         target's answer",
                        failed - by_target
                    )),
                    false => reading,
                }
            }
            Err(why) => Reading::new("5xx_rate", None, Some(limit), State::NotJudged).note(why),
        });
    }
    if let Some(limit) = gates.max_unhealthy_hosts {
        let limit = limit as f64;
        out.push(match new.unhealthy_hosts {
            Some(n) => threshold("unhealthy_hosts", n, limit),
            None => Reading::new("unhealthy_hosts", None, Some(limit), State::NotJudged)
                .note("no datapoints yet"),
        });
    }
    // A latency judged on a handful of requests is one cold request: the same minimum applies.
    let enough = |m: &ColorMetrics| rate_5xx(m, min).map(|_| ());
    if let Some(limit) = gates.max_p99_latency {
        let limit = limit.as_secs_f64();
        out.push(match (enough(new), new.p99) {
            (Ok(()), Some(p99)) => threshold("p99_latency_s", p99, limit),
            (Err(why), _) => {
                Reading::new("p99_latency_s", None, Some(limit), State::NotJudged).note(why)
            }
            (Ok(()), None) => Reading::new("p99_latency_s", None, Some(limit), State::NotJudged)
                .note("no datapoints yet"),
        });
    }
    if let Some(limit) = gates.max_5xx_ratio_to_stable {
        out.push(match (rate_5xx(new, min), rate_5xx(stable, min)) {
            (Ok(n), Ok(s)) => threshold("5xx_ratio_to_stable", n / s.max(STABLE_5XX_FLOOR), limit),
            (Err(why), _) => {
                Reading::new("5xx_ratio_to_stable", None, Some(limit), State::NotJudged)
                    .note(format!("new colour: {why}"))
            }
            (_, Err(why)) => {
                Reading::new("5xx_ratio_to_stable", None, Some(limit), State::NotJudged)
                    .note(format!("stable colour: {why}"))
            }
        });
    }
    if let Some(limit) = gates.max_p99_ratio_to_stable {
        let not_yet = |why: String| {
            Reading::new("p99_ratio_to_stable", None, Some(limit), State::NotJudged).note(why)
        };
        out.push(match (enough(new), enough(stable), new.p99, stable.p99) {
            (Err(why), _, _, _) => not_yet(format!("new colour: {why}")),
            (_, Err(why), _, _) => not_yet(format!("stable colour: {why}")),
            (Ok(()), Ok(()), Some(n), Some(s)) if s > 0.0 => {
                threshold("p99_ratio_to_stable", n / s, limit)
            }
            _ => not_yet("no datapoints yet for both colours".into()),
        });
    }
    out
}

fn threshold(name: &str, value: f64, limit: f64) -> Reading {
    let state = if value > limit {
        State::Breached
    } else {
        State::Ok
    };
    Reading::new(name, Some(value), Some(limit), state)
}

/// Judges the alarms: `states` maps the alarms that exist to their state (OK, ALARM,
/// INSUFFICIENT_DATA); a configured alarm missing from it does not exist, which fails safe.
pub fn judge_alarms(names: &[String], states: &BTreeMap<String, String>) -> Vec<Reading> {
    names
        .iter()
        .map(|name| {
            let gate = format!("alarm {name}");
            match states.get(name).map(String::as_str) {
                Some("ALARM") => Reading::new(&gate, None, None, State::Breached).note("in ALARM"),
                Some("INSUFFICIENT_DATA") => {
                    Reading::new(&gate, None, None, State::NotJudged).note("INSUFFICIENT_DATA")
                }
                Some(_) => Reading::new(&gate, None, None, State::Ok),
                None => Reading::new(&gate, None, None, State::Unreadable)
                    .note("no such alarm in this account and region"),
            }
        })
        .collect()
}

/// A gate that could not be read at all (an API error, no permission).
pub fn unreadable(name: &str, why: String) -> Reading {
    Reading::new(name, None, None, State::Unreadable).note(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gates() -> GatesConfig {
        GatesConfig {
            watch: Duration::from_secs(60),
            max_5xx_rate: Some(0.01),
            max_p99_latency: Some(Duration::from_millis(800)),
            max_5xx_ratio_to_stable: Some(2.0),
            max_p99_ratio_to_stable: Some(1.5),
            ..GatesConfig::default()
        }
    }

    fn m(requests: f64, errors: f64, p99: f64) -> ColorMetrics {
        ColorMetrics {
            requests: Some(requests),
            errors_5xx: Some(errors),
            p99: Some(p99),
            // Every request answered by a target (the errors are target 5xx).
            answered: Some(requests),
            ..ColorMetrics::default()
        }
    }

    fn state(readings: &[Reading], name: &str) -> State {
        readings.iter().find(|r| r.name == name).unwrap().state
    }

    #[test]
    fn rates_wait_for_min_requests() {
        let r = judge_metrics(&gates(), &m(49.0, 49.0, 0.1), &m(1000.0, 0.0, 0.1));
        assert_eq!(state(&r, "5xx_rate"), State::NotJudged);
        let r = judge_metrics(&gates(), &m(100.0, 2.0, 0.1), &m(1000.0, 0.0, 0.1));
        assert_eq!(state(&r, "5xx_rate"), State::Breached);
        let r = judge_metrics(&gates(), &m(100.0, 1.0, 0.1), &m(1000.0, 0.0, 0.1));
        assert_eq!(
            state(&r, "5xx_rate"),
            State::Ok,
            "1 % is the limit, not above it"
        );
    }

    #[test]
    fn no_datapoints_is_not_judged_and_does_not_fail() {
        let r = judge_metrics(&gates(), &ColorMetrics::default(), &ColorMetrics::default());
        assert!(r.iter().all(|g| g.state == State::NotJudged), "{r:?}");
        assert!(!r.iter().any(|g| g.fails(false)));
    }

    #[test]
    fn a_window_that_ends_without_a_judgement_is_inconclusive_never_passed() {
        let r: Vec<Reading> =
            judge_metrics(&gates(), &ColorMetrics::default(), &ColorMetrics::default())
                .into_iter()
                .map(Reading::at_window_end)
                .collect();
        assert!(r.iter().all(|g| g.state == State::Inconclusive), "{r:?}");
        assert!(
            matches!(verdict(&r, false), Verdict::Inconclusive(why) if why.contains("5xx_rate"))
        );
        // One gate judged, one not: still inconclusive.
        let r: Vec<Reading> = judge_metrics(&gates(), &m(100.0, 0.0, 0.1), &m(10.0, 0.0, 0.1))
            .into_iter()
            .map(Reading::at_window_end)
            .collect();
        assert_eq!(state(&r, "5xx_rate"), State::Ok);
        assert_eq!(state(&r, "5xx_ratio_to_stable"), State::Inconclusive);
        assert!(matches!(verdict(&r, false), Verdict::Inconclusive(_)));
        // A breach wins over anything inconclusive.
        let r: Vec<Reading> = judge_metrics(&gates(), &m(100.0, 9.0, 0.1), &m(10.0, 0.0, 0.1))
            .into_iter()
            .map(Reading::at_window_end)
            .collect();
        assert!(matches!(verdict(&r, false), Verdict::Breached(why) if why.contains("5xx_rate")));
        let judged: Vec<Reading> =
            judge_metrics(&gates(), &m(100.0, 0.0, 0.1), &m(100.0, 0.0, 0.1));
        assert_eq!(verdict(&judged, false), Verdict::Passed);
    }

    #[test]
    fn requests_no_target_answered_count_as_failures() {
        // 100 routed to the canary: 60 answered 200, none answered 5xx, 40 got the load
        // balancer's own 502/504 (a crashing or hanging target).
        let crashing = ColorMetrics {
            requests: Some(100.0),
            answered: Some(60.0),
            errors_5xx: Some(0.0),
            connection_errors: Some(25.0),
            ..ColorMetrics::default()
        };
        assert_eq!(failed_requests(&crashing), 40.0);
        let r = judge_metrics(&gates(), &crashing, &m(1000.0, 0.0, 0.1));
        assert_eq!(state(&r, "5xx_rate"), State::Breached);
        let why = r.iter().find(|g| g.name == "5xx_rate").unwrap().to_string();
        assert!(
            why.contains("40 failed: 0 5xx from targets, 40 without a target's answer"),
            "{why}"
        );
        // Connection errors published where the answers' metrics are not (yet): still counted.
        let refused = ColorMetrics {
            requests: Some(100.0),
            answered: Some(100.0),
            connection_errors: Some(10.0),
            ..ColorMetrics::default()
        };
        assert_eq!(failed_requests(&refused), 10.0);
    }

    #[test]
    fn the_unhealthy_hosts_gate_reads_the_highest_count() {
        let g = GatesConfig {
            max_unhealthy_hosts: Some(0),
            ..GatesConfig::default()
        };
        let sick = ColorMetrics {
            unhealthy_hosts: Some(1.0),
            ..ColorMetrics::default()
        };
        let r = judge_metrics(&g, &sick, &ColorMetrics::default());
        assert_eq!(state(&r, "unhealthy_hosts"), State::Breached);
        let r = judge_metrics(&g, &ColorMetrics::default(), &ColorMetrics::default());
        assert_eq!(state(&r, "unhealthy_hosts"), State::NotJudged);
    }

    #[test]
    fn one_slow_cold_request_does_not_judge_the_latency() {
        let r = judge_metrics(&gates(), &m(1.0, 0.0, 3.0), &m(1000.0, 0.0, 0.1));
        assert_eq!(state(&r, "p99_latency_s"), State::NotJudged);
        assert_eq!(state(&r, "p99_ratio_to_stable"), State::NotJudged);
        let r = judge_metrics(&gates(), &m(50.0, 0.0, 3.0), &m(1000.0, 0.0, 0.1));
        assert_eq!(state(&r, "p99_latency_s"), State::Breached);
    }

    #[test]
    fn ratios_compare_with_the_stable_colour() {
        // 0.6 % vs 0.2 %: a 3x ratio, over the 2x limit, though under the absolute 1 %.
        let r = judge_metrics(&gates(), &m(1000.0, 6.0, 0.2), &m(1000.0, 2.0, 0.2));
        assert_eq!(state(&r, "5xx_rate"), State::Ok);
        assert_eq!(state(&r, "5xx_ratio_to_stable"), State::Breached);
        // A clean stable colour: the floor keeps one error from being an infinite ratio.
        let r = judge_metrics(&gates(), &m(1000.0, 1.0, 0.2), &m(1000.0, 0.0, 0.2));
        assert_eq!(state(&r, "5xx_ratio_to_stable"), State::Ok);
        let r = judge_metrics(&gates(), &m(1000.0, 0.0, 0.9), &m(1000.0, 0.0, 0.5));
        assert_eq!(state(&r, "p99_latency_s"), State::Breached);
        assert_eq!(state(&r, "p99_ratio_to_stable"), State::Breached);
    }

    #[test]
    fn alarms_in_alarm_fail_and_missing_ones_fail_safe() {
        let states = BTreeMap::from([
            ("a".to_string(), "OK".to_string()),
            ("b".to_string(), "ALARM".to_string()),
            ("c".to_string(), "INSUFFICIENT_DATA".to_string()),
        ]);
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let r = judge_alarms(&names, &states);
        let s: Vec<State> = r.iter().map(|g| g.state).collect();
        assert_eq!(
            s,
            [
                State::Ok,
                State::Breached,
                State::NotJudged,
                State::Unreadable
            ]
        );
        assert!(r[3].fails(false) && !r[3].fails(true));
    }
}
