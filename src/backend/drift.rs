//! What each instance runs against the desired state: reads the inspect script's output
//! (`script::inspect`) and says, per instance and colour, what `bgcloud sync` has to do.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::color::Color;
use crate::model::digest::short_digest;

/// One colour's container on one instance, as the inspect script reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Running {
        digest: String,
    },
    /// It exists but is not running (exited, restarting, created, …).
    NotRunning {
        status: String,
    },
    Missing,
}

/// The inspect output: container name → what was found. Lines it does not understand are
/// skipped (the caller treats a container without a line as not reported).
pub fn parse(stdout: &str) -> BTreeMap<String, Found> {
    let mut found = BTreeMap::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(status)) = (words.next(), words.next()) else {
            continue;
        };
        let state = match (status, words.next()) {
            ("missing", _) => Found::Missing,
            ("running", Some(digest)) => Found::Running {
                digest: digest.to_string(),
            },
            ("running", None) => Found::Running {
                digest: String::new(),
            },
            (other, _) => Found::NotRunning {
                status: other.to_string(),
            },
        };
        found.insert(name.to_string(), state);
    }
    found
}

/// Why a colour's container on an instance must be started again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relaunch {
    pub instance_id: String,
    pub color: Color,
    pub reason: String,
    /// It runs another digest and serves traffic: take it out of the target group and let it
    /// drain before replacing it, one instance at a time.
    pub serving: bool,
    /// A running container is replaced (not a missing or stopped one): requests may be in
    /// flight on it.
    pub running: bool,
}

impl fmt::Display for Relaunch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.instance_id, self.color, self.reason)
    }
}

/// What must be relaunched for `color` (container `name`, desired `digest`) on `instances`,
/// given each instance's inspect output. `has_traffic`: the colour has weight now.
pub fn relaunches(
    color: Color,
    name: &str,
    digest: &str,
    has_traffic: bool,
    reports: &BTreeMap<String, BTreeMap<String, Found>>,
) -> Vec<Relaunch> {
    let mut out = Vec::new();
    for (instance_id, found) in reports {
        let running = matches!(found.get(name), Some(Found::Running { .. }));
        let (reason, serving) = match found.get(name) {
            Some(Found::Running { digest: d }) if d == digest => continue,
            Some(Found::Running { digest: d }) => (
                format!(
                    "runs {} instead of the recorded {}",
                    if d.is_empty() || d.starts_with('<') {
                        "an image without bgcloud's digest label".to_string()
                    } else {
                        short_digest(d).to_string()
                    },
                    short_digest(digest)
                ),
                has_traffic,
            ),
            Some(Found::NotRunning { status }) => (format!("{name} is {status}"), false),
            Some(Found::Missing) => (format!("no {name} container"), false),
            None => (
                format!("{name} was not reported by the inspect script"),
                false,
            ),
        };
        out.push(Relaunch {
            instance_id: instance_id.clone(),
            color,
            reason,
            serving,
            running,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn inspect_output_parses_every_state() {
        let out =
            format!("shop-blue running {D1}\nshop-green exited {D2}\n\ngarbage\nshop-x missing\n");
        let found = parse(&out);
        assert_eq!(
            found["shop-blue"],
            Found::Running {
                digest: D1.to_string()
            }
        );
        assert_eq!(
            found["shop-green"],
            Found::NotRunning {
                status: "exited".into()
            }
        );
        assert_eq!(found["shop-x"], Found::Missing);
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn only_what_differs_is_relaunched_and_a_serving_stale_one_drains_first() {
        let mut reports = BTreeMap::new();
        reports.insert(
            "i-ok".to_string(),
            parse(&format!("shop-green running {D1}")),
        );
        reports.insert(
            "i-old".to_string(),
            parse(&format!("shop-green running {D2}")),
        );
        reports.insert("i-gone".to_string(), parse("shop-green missing"));
        reports.insert(
            "i-down".to_string(),
            parse(&format!("shop-green exited {D1}")),
        );
        reports.insert("i-silent".to_string(), parse(""));
        let live = relaunches(Color::Green, "shop-green", D1, true, &reports);
        let by: BTreeMap<&str, &Relaunch> =
            live.iter().map(|r| (r.instance_id.as_str(), r)).collect();
        assert!(!by.contains_key("i-ok"));
        assert!(by["i-old"].serving && by["i-old"].running);
        assert!(by["i-old"]
            .reason
            .contains("sha256:222222222222 instead of the recorded sha256:111111111111"));
        assert!(!by["i-gone"].serving && !by["i-gone"].running);
        assert!(by["i-gone"].reason.contains("no shop-green"));
        assert!(!by["i-down"].serving && by["i-down"].reason.contains("exited"));
        assert!(by["i-silent"].reason.contains("not reported"));
        // The same drift on a colour without traffic needs no drain.
        let idle = relaunches(Color::Green, "shop-green", D1, false, &reports);
        assert!(idle.iter().all(|r| !r.serving));
    }
}
