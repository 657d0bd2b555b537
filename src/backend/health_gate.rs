//! The health gate of a deploy: when the ALB's verdict on a target is about the container the
//! deploy just started, not the one it replaced.
//!
//! The rule. A target whose container bgcloud saw start at `launched` is trusted when it reads
//! `healthy` and either
//! - the judgement time has passed since `launched`:
//!   `(max(HealthyThresholdCount, UnhealthyThresholdCount) + 1) × HealthCheckInterval` (an old
//!   `healthy` survives at most `UnhealthyThresholdCount` failed checks of a broken new
//!   container, and the first of those checks can come up to one interval after the
//!   replacement; an old `unhealthy` needs `HealthyThresholdCount` passes), plus one interval and
//!   one timeout of margin (each load-balancer node checks on its own; how DescribeTargetHealth
//!   combines their verdicts, and how late, is not documented), or
//! - bgcloud registered the target itself after `launched` and it was not registered before
//!   (not even draining): a fresh registration starts at `initial`, so its first `healthy` is
//!   the new container's.
//!
//! A target that reads `unhealthy` once the judgement time has passed fails the deploy: that
//! verdict is about the new container. Before then, `unhealthy` is not a verdict on it (a
//! container still starting, a node's stale view), and is waited out.
//!
//! A target that someone else took out of the group (`draining`: an Auto Scaling group putting
//! its instance on standby or terminating it, a person) is never registered again, and one that
//! leaves during the gate is dropped from it with a note: it gets no traffic, and waiting for it
//! would only run out the deadline. Only a target this run took out itself (`sync` replacing a
//! container) is registered again from `draining`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::Client;

use crate::aws::target_group::HealthCheck;
use crate::aws::targets::{self, targets, TargetState};
use crate::backend::launch::Launched;
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::output::Waiting;

/// What the gate concluded from one read of the target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every instance's target is trusted healthy.
    Trusted,
    /// Not yet: a progress line, and when the last healthy target will be trusted (if all are
    /// healthy now).
    Waiting {
        report: String,
        all_healthy_trusted_in: Option<Duration>,
    },
    /// A target reads unhealthy once the ALB has had the time to judge the new container.
    Failed(String),
    /// Every target left the group during the gate (taken out by someone else): nothing to judge.
    Empty(String),
}

#[derive(Debug, Clone)]
struct Watch {
    launched: Instant,
    fresh: bool,
    /// This run took the target out itself: a `draining` read is its own doing (or a read that
    /// predates the new registration), not a departure.
    retaken: bool,
}

/// The rule, as pure logic over successive reads (unit-tested without AWS).
#[derive(Debug, Clone)]
pub struct Gate {
    what: String,
    port: i32,
    judge: Duration,
    watches: BTreeMap<String, Watch>,
    /// Targets dropped since the caller last asked ([`Gate::take_dropped`]).
    dropped: Vec<String>,
}

impl Gate {
    /// `fresh`: instances whose target bgcloud registered after their launch; `retaken`: those
    /// whose target this run took out of the group itself before registering it again.
    pub fn new(
        what: &str,
        port: u16,
        judge: Duration,
        launched: &[Launched],
        fresh: &BTreeSet<String>,
        retaken: &BTreeSet<String>,
    ) -> Gate {
        let watches = launched
            .iter()
            .map(|l| {
                let watch = Watch {
                    launched: l.at,
                    fresh: fresh.contains(&l.instance_id),
                    retaken: retaken.contains(&l.instance_id),
                };
                (l.instance_id.clone(), watch)
            })
            .collect();
        Gate {
            what: what.to_string(),
            port: i32::from(port),
            judge,
            watches,
            dropped: Vec::new(),
        }
    }

    /// The targets dropped from the gate since the last call, each with why.
    pub fn take_dropped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.dropped)
    }

    pub fn observe(&mut self, now: Instant, states: &[TargetState]) -> Verdict {
        let mut healthy = 0;
        let mut not_healthy = Vec::new();
        let mut went_bad = Vec::new();
        let mut trusted_in = Duration::ZERO;
        let left: Vec<String> = self
            .watches
            .iter()
            .filter(|(id, watch)| {
                !watch.retaken
                    && states
                        .iter()
                        .any(|t| &t.id == *id && t.port == Some(self.port) && t.state == "draining")
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &left {
            self.watches.remove(id);
            self.dropped.push(format!(
                "{id}:{} left {}'s target group during the gate (draining: its Auto Scaling \
                 group or a person took it out); dropped from the gate, it gets no traffic",
                self.port, self.what
            ));
        }
        if self.watches.is_empty() {
            return Verdict::Empty(format!(
                "every target of {} left its target group during the gate ({}: draining, taken \
                 out by an Auto Scaling group or a person); nothing is left to judge",
                self.what,
                left.join(", ")
            ));
        }
        for (id, watch) in &self.watches {
            let state = states
                .iter()
                .find(|t| &t.id == id && t.port == Some(self.port));
            let judged = now >= watch.launched + self.judge;
            match state {
                Some(t) if t.is_healthy() => {
                    healthy += 1;
                    if !watch.fresh {
                        let trust_at = watch.launched + self.judge;
                        trusted_in = trusted_in.max(trust_at.saturating_duration_since(now));
                    }
                }
                Some(t) if t.state == "unhealthy" && judged => went_bad.push(t.to_string()),
                Some(t) => not_healthy.push(t.to_string()),
                None => not_healthy.push(format!("{id}:{} not registered", self.port)),
            }
        }
        if !went_bad.is_empty() {
            return Verdict::Failed(format!(
                "{} reads unhealthy {} after the launch, when the ALB has judged the new \
                 container: its checks fail: {}",
                self.what,
                humantime::format_duration(self.judge),
                went_bad.join(", ")
            ));
        }
        let total = self.watches.len();
        if healthy == total && trusted_in.is_zero() {
            return Verdict::Trusted;
        }
        let mut report = format!("{}: {healthy} of {total} healthy", self.what);
        if !not_healthy.is_empty() {
            report.push_str(&format!("; waiting for {}", not_healthy.join(", ")));
        }
        Verdict::Waiting {
            report,
            all_healthy_trusted_in: (healthy == total).then_some(trusted_in),
        }
    }
}

/// What [`register`] did.
#[derive(Debug, Default)]
pub struct Registered {
    /// Instances registered fresh: not listed at all before, so the ALB's verdict is new.
    pub fresh: BTreeSet<String>,
    /// The group as read, when nothing had to change: it serves as the wait's first poll.
    pub unchanged: Option<Vec<TargetState>>,
    /// Instances whose target was `draining`, taken out by someone else: not registered again.
    pub left_out: Vec<String>,
}

/// Puts `instances` in the target group on `port` and takes out their registrations on other
/// ports (a changed colour port). A target found `draining` is registered again only when this
/// run took it out itself (`retaken`); otherwise someone else did, and it is left out.
pub async fn register(
    elb: &Client,
    target_group_arn: &str,
    what: &str,
    instances: &[String],
    port: u16,
    retaken: &BTreeSet<String>,
) -> Result<Registered> {
    let listed = targets(elb, target_group_arn).await?;
    let on = |id: &str, p: i32| listed.iter().find(|t| t.id == id && t.port == Some(p));
    let port_i32 = i32::from(port);
    let mut fresh = BTreeSet::new();
    let mut add = Vec::new();
    let mut left_out = Vec::new();
    for id in instances {
        match on(id, port_i32) {
            None => {
                fresh.insert(id.clone());
                add.push(id.clone());
            }
            // Registering a draining target again does not clear its verdict for certain:
            // it gets the time rule, not the fresh-registration one.
            Some(t) if t.state == "draining" && retaken.contains(id) => add.push(id.clone()),
            Some(t) if t.state == "draining" => left_out.push(id.clone()),
            Some(_) => {}
        }
    }
    let stale: Vec<&TargetState> = listed
        .iter()
        .filter(|t| {
            instances.contains(&t.id)
                && !left_out.contains(&t.id)
                && t.port != Some(port_i32)
                && t.state != "draining"
        })
        .collect();
    if !add.is_empty() {
        tracing::info!(
            "registering {} on port {port} in {what}'s target group",
            add.join(", ")
        );
        targets::register(elb, target_group_arn, &add, port_i32).await?;
    }
    if !stale.is_empty() {
        let names: Vec<String> = stale
            .iter()
            .map(|t| format!("{}:{}", t.id, t.port.unwrap_or_default()))
            .collect();
        tracing::info!(
            "deregistering {} from {what}'s target group: the colour's port is {port} now",
            names.join(", ")
        );
        let targets: Vec<(String, Option<i32>)> =
            stale.iter().map(|t| (t.id.clone(), t.port)).collect();
        targets::deregister(elb, target_group_arn, &targets).await?;
    }
    if !left_out.is_empty() {
        tracing::warn!(
            "not registering {} in {what}'s target group again: draining, taken out by its Auto \
             Scaling group or a person; left out of this run (`bgcloud sync` brings it in once \
             it is in service and out of the group)",
            left_out.join(", ")
        );
    }
    let unchanged = (add.is_empty() && stale.is_empty()).then_some(listed.clone());
    Ok(Registered {
        fresh,
        unchanged,
        left_out,
    })
}

/// Polls the target group every `poll` (the first poll may be a read just made, `first`) until
/// the gate trusts every target, a target goes bad, or `deadline` passes. Progress goes to
/// stderr when it changes.
#[allow(clippy::too_many_arguments)]
pub async fn wait(
    elb: &Client,
    target_group_arn: &str,
    check: &HealthCheck,
    container: &str,
    mut gate: Gate,
    mut first: Option<Vec<TargetState>>,
    poll: Duration,
    deadline: Instant,
) -> Result<Vec<TargetState>> {
    let live = Waiting::start("health gate", Some(deadline)).at_most_every(REPORT_EVERY);
    loop {
        let states = match first.take() {
            Some(states) => states,
            None => targets(elb, target_group_arn).await?,
        };
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let verdict = gate.observe(now, &states);
        for note in gate.take_dropped() {
            tracing::warn!("{note}");
        }
        let (report, trusted_in) = match verdict {
            Verdict::Trusted => return Ok(states),
            Verdict::Empty(why) => {
                return Err(Error::failed(format!(
                    "{why}. Traffic was not changed; deploy again once the instances are in \
                     service"
                )))
            }
            Verdict::Failed(why) => {
                return Err(Error::failed(format!(
                    "{why}. Traffic was not changed. Check the container's logs on the instance \
                     (`docker logs {container}`) and the target group's health check ({} {} \
                     expecting {}), then deploy a fixed image",
                    check.protocol, check.path, check.matcher
                )))
            }
            Verdict::Waiting {
                report,
                all_healthy_trusted_in,
            } => (report, all_healthy_trusted_in),
        };
        if let Some(wait) = trusted_in.filter(|w| *w > left) {
            return Err(Error::failed(format!(
                "{report}, but the ALB needs {} after the launch to judge the new container and \
                 --health-timeout leaves {} ({} more would be needed). Traffic was not changed; \
                 raise --health-timeout",
                check.judge_arithmetic(),
                secs(left),
                secs(wait - left),
            )));
        }
        if left < poll {
            return Err(Error::failed(format!(
                "{} did not become healthy in time: {report}. Traffic was not changed. Check the \
                 container's logs on the instance and the target group's health check ({} {} \
                 expecting {}), then deploy again (or raise --health-timeout)",
                gate.what, check.protocol, check.path, check.matcher
            )));
        }
        // A new line when the states change, not every poll of a countdown (the live line's
        // clock says the time left). The load balancer's nodes may disagree for a while, and
        // reads can flip between their views: a changed report is said at most every
        // REPORT_EVERY.
        let trusting = trusted_in.map(|w| format!("trusting in {}", secs(w)));
        live.update_noting(&report, trusting.as_deref());
        tokio::time::sleep(poll).await;
    }
}

/// Registers the launched instances' targets where missing and waits until the ALB has judged
/// their new containers healthy (the rule above), by `deadline`; the group as last read.
/// `retaken`: instances whose target this run took out of the group itself.
#[allow(clippy::too_many_arguments)]
pub async fn gate(
    ctx: &Context,
    backend: &BackendConfig,
    color: Color,
    check: &HealthCheck,
    mut launched: Vec<Launched>,
    retaken: &BTreeSet<String>,
    deadline: Instant,
) -> Result<Vec<TargetState>> {
    let arn = backend.target_group_arn(color);
    let port = backend.port(color);
    let mut ids: Vec<String> = launched.iter().map(|l| l.instance_id.clone()).collect();
    let registered = register(&ctx.clients.elb, arn, color.as_str(), &ids, port, retaken).await?;
    launched.retain(|l| !registered.left_out.contains(&l.instance_id));
    ids.retain(|id| !registered.left_out.contains(id));
    if launched.is_empty() {
        return Err(Error::failed(format!(
            "every target of {color} is draining, taken out of its target group by an Auto \
             Scaling group or a person ({}); nothing is left to judge. Traffic was not changed; \
             deploy again once the instances are in service",
            registered.left_out.join(", ")
        )));
    }
    tracing::info!(
        "container running on {}; waiting until the ALB has judged {color}'s new containers \
         ({}, at most {} from now)",
        ids.join(", "),
        check.judge_arithmetic(),
        humantime::format_duration(Duration::from_secs(
            deadline.saturating_duration_since(Instant::now()).as_secs()
        ))
    );
    let gate = Gate::new(
        color.as_str(),
        port,
        check.judge_time(),
        &launched,
        &registered.fresh,
        retaken,
    );
    wait(
        &ctx.clients.elb,
        arn,
        check,
        &format!("{}-{color}", ctx.config.app),
        gate,
        registered.unchanged,
        backend.poll_interval,
        deadline,
    )
    .await
}

/// Refuses the shift when the colour's target group holds a target this deploy did not launch
/// and gate (an instance an Auto Scaling group registered during the deploy, or one registered
/// by hand): it would get the new colour's traffic with whatever it runs. Draining and unused
/// targets (a stopped instance) get no requests and do not count.
pub fn all_launched(
    what: &str,
    port: u16,
    states: &[TargetState],
    launched: &[String],
) -> Result<()> {
    let strangers: Vec<String> = states
        .iter()
        .filter(|t| {
            t.port == Some(i32::from(port)) && !matches!(t.state.as_str(), "draining" | "unused")
        })
        .filter(|t| !launched.contains(&t.id))
        .map(|t| t.to_string())
        .collect();
    if strangers.is_empty() {
        return Ok(());
    }
    Err(Error::failed(format!(
        "{what}'s target group also holds {}, which this deploy did not launch (an instance \
         that joined during the deploy, or a target registered outside bgcloud). Traffic was not \
         changed. Deploy again: instances running by then are launched too (or deregister the \
         target if it does not belong to the app)",
        strangers.join(", ")
    )))
}

/// The shortest time between two progress lines of the health gate.
const REPORT_EVERY: Duration = Duration::from_secs(2);

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64().ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, state: &str) -> TargetState {
        TargetState {
            id: id.into(),
            port: Some(8082),
            state: state.into(),
            reason: (state != "healthy").then(|| "Target.ResponseCodeMismatch".into()),
            description: None,
        }
    }

    fn gate(t0: Instant, fresh: &[&str]) -> Gate {
        let launched = ["i-1", "i-2"].map(|id| Launched {
            instance_id: id.into(),
            at: t0,
        });
        let fresh = fresh.iter().map(|s| s.to_string()).collect();
        Gate::new(
            "green",
            8082,
            Duration::from_secs(3),
            &launched,
            &fresh,
            &BTreeSet::new(),
        )
    }

    #[test]
    fn a_target_the_deploy_did_not_launch_stops_the_shift() {
        let launched = vec!["i-1".to_string(), "i-2".to_string()];
        let mut states = vec![state("i-1", "healthy"), state("i-2", "healthy")];
        assert!(all_launched("green", 8082, &states, &launched).is_ok());
        // Draining, or on another port: no new requests from this colour.
        states.push(state("i-9", "draining"));
        let mut other_port = state("i-8", "healthy");
        other_port.port = Some(8081);
        states.push(other_port);
        assert!(all_launched("green", 8082, &states, &launched).is_ok());
        states.push(state("i-3", "healthy"));
        let err = all_launched("green", 8082, &states, &launched)
            .unwrap_err()
            .to_string();
        assert!(err.contains("i-3:8082 healthy"), "{err}");
        assert!(err.contains("Traffic was not changed"), "{err}");
        assert!(!err.contains("i-9") && !err.contains("i-8"), "{err}");
    }

    #[test]
    fn a_target_that_starts_draining_is_dropped_unless_this_run_took_it_out() {
        let t0 = Instant::now();
        let mut g = gate(t0, &[]);
        let later = t0 + Duration::from_secs(3);
        let v = g.observe(later, &[state("i-1", "healthy"), state("i-2", "draining")]);
        assert_eq!(v, Verdict::Trusted, "i-1 alone is left to judge");
        let dropped = g.take_dropped();
        assert_eq!(dropped.len(), 1);
        assert!(
            dropped[0].starts_with("i-2:8082 left green's target group"),
            "{dropped:?}"
        );
        assert!(g.take_dropped().is_empty(), "said once");
        // Both gone: nothing to judge is a failure, not a pass.
        let mut g = gate(t0, &[]);
        let v = g.observe(later, &[state("i-1", "draining"), state("i-2", "draining")]);
        assert!(
            matches!(v, Verdict::Empty(ref why) if why.contains("i-1, i-2")),
            "{v:?}"
        );
        // A target this run took out itself is waited for, not dropped.
        let launched = ["i-1", "i-2"].map(|id| Launched {
            instance_id: id.into(),
            at: t0,
        });
        let retaken = BTreeSet::from(["i-2".to_string()]);
        let mut g = Gate::new(
            "green",
            8082,
            Duration::from_secs(3),
            &launched,
            &BTreeSet::new(),
            &retaken,
        );
        let v = g.observe(later, &[state("i-1", "healthy"), state("i-2", "draining")]);
        assert!(
            matches!(v, Verdict::Waiting { ref report, .. } if report.contains("i-2:8082 draining")),
            "{v:?}"
        );
        assert!(g.take_dropped().is_empty());
    }

    #[test]
    fn a_stale_healthy_is_not_trusted_before_the_judge_time() {
        let t0 = Instant::now();
        let mut g = gate(t0, &[]);
        let both = [state("i-1", "healthy"), state("i-2", "healthy")];
        match g.observe(t0 + Duration::from_millis(500), &both) {
            Verdict::Waiting {
                all_healthy_trusted_in: Some(w),
                report,
            } => {
                assert_eq!(w, Duration::from_millis(2500));
                assert_eq!(report, "green: 2 of 2 healthy");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            g.observe(t0 + Duration::from_secs(3), &both),
            Verdict::Trusted
        );
    }

    #[test]
    fn unhealthy_is_a_verdict_only_once_the_alb_had_time_to_judge() {
        let t0 = Instant::now();
        let mut g = gate(t0, &[]);
        g.observe(t0, &[state("i-1", "healthy"), state("i-2", "healthy")]);
        // A node's view flips, or the new container is still starting: not a verdict yet.
        let v = g.observe(
            t0 + Duration::from_secs(1),
            &[state("i-1", "unhealthy"), state("i-2", "healthy")],
        );
        assert!(
            matches!(
                v,
                Verdict::Waiting {
                    all_healthy_trusted_in: None,
                    ..
                }
            ),
            "{v:?}"
        );
        match g.observe(
            t0 + Duration::from_secs(3),
            &[state("i-1", "unhealthy"), state("i-2", "healthy")],
        ) {
            Verdict::Failed(why) => {
                assert!(
                    why.contains("i-1:8082 unhealthy (Target.ResponseCodeMismatch")
                        && why.contains("reads unhealthy 3s after the launch"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unhealthy_before_any_healthy_read_is_waited_for() {
        let t0 = Instant::now();
        let mut g = gate(t0, &[]);
        let v = g.observe(t0, &[state("i-1", "unhealthy"), state("i-2", "initial")]);
        assert!(
            matches!(
                v,
                Verdict::Waiting {
                    all_healthy_trusted_in: None,
                    ..
                }
            ),
            "{v:?}"
        );
        let both = [state("i-1", "healthy"), state("i-2", "healthy")];
        assert!(matches!(
            g.observe(t0 + Duration::from_secs(2), &both),
            Verdict::Waiting { .. }
        ));
        assert_eq!(
            g.observe(t0 + Duration::from_secs(4), &both),
            Verdict::Trusted
        );
    }

    #[test]
    fn a_fresh_registration_is_trusted_on_its_first_healthy_read() {
        let t0 = Instant::now();
        let mut g = gate(t0, &["i-1", "i-2"]);
        let v = g.observe(t0, &[state("i-1", "initial"), state("i-2", "healthy")]);
        assert!(matches!(v, Verdict::Waiting { .. }));
        let both = [state("i-1", "healthy"), state("i-2", "healthy")];
        assert_eq!(
            g.observe(t0 + Duration::from_millis(100), &both),
            Verdict::Trusted
        );
    }

    #[test]
    fn a_missing_target_is_named() {
        let t0 = Instant::now();
        let mut g = gate(t0, &[]);
        match g.observe(t0, &[state("i-1", "healthy")]) {
            Verdict::Waiting { report, .. } => {
                assert!(report.contains("i-2:8082 not registered"), "{report}")
            }
            other => panic!("{other:?}"),
        }
    }
}
