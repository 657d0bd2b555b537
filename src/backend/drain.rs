//! Draining before a container is replaced: a colour that lost its traffic moments ago (a
//! rollback or a promote) may still be answering requests the ALB sent it before; replacing its
//! container now would cut them off. And a listener change reaches the load balancer's nodes
//! only after a while ("requests may be routed by the previous configuration for a short
//! time"; `[backend] listener_propagation`, default 5 s): until then the colour still gets new
//! requests. The deploy waits out the propagation plus the target group's deregistration delay
//! (capped by `[backend] drain_wait_max`), counted from when the record says the colour's weight
//! went to 0.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::aws::target_group;
use crate::aws::targets::targets;
use crate::backend::live::Live;
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::Result;
use crate::model::color::Color;
use crate::output::Waiting;
use crate::state::record::Event;

/// What the deploy waits before replacing the idle colour's container, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drain {
    pub color: Color,
    /// When the record says `color` last lost its traffic (RFC 3339).
    pub lost_traffic_at: String,
    /// The target group's deregistration delay.
    pub delay_seconds: f64,
    /// `[backend] listener_propagation`: new requests may reach the colour for this long after
    /// the write.
    pub propagation_seconds: f64,
    /// `[backend] drain_wait_max`, when it is shorter than the delay.
    pub cap_seconds: Option<f64>,
    /// What is left of the delay now, within the cap.
    pub wait_seconds: f64,
    /// When the wait ends: a later step (a release task) counts towards it.
    #[serde(skip)]
    pub until: SystemTime,
}

impl Drain {
    /// What is left of the wait now.
    pub fn left(&self) -> Duration {
        self.until
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lost its traffic at {}; the load balancer's nodes may route to it for {} more \
             (listener_propagation) and requests sent before may run for the deregistration \
             delay ({}), so the launch waits {:.1} s",
            self.color,
            self.lost_traffic_at,
            humantime::format_duration(Duration::from_secs_f64(self.propagation_seconds)),
            humantime::format_duration(Duration::from_secs_f64(self.delay_seconds)),
            self.wait_seconds
        )?;
        if let Some(cap) = self.cap_seconds {
            write!(f, " (drain_wait_max {cap:.0} s)")?;
        }
        Ok(())
    }
}

/// When `color` last went from some traffic to none, by the newest history entry that changed
/// its weight. None when the newest such change gave it traffic, or there is none.
pub fn lost_traffic(history: &[Event], color: Color) -> Option<(&str, SystemTime)> {
    let change = history.iter().rev().find(|e| match (e.from, e.to) {
        (Some(from), Some(to)) => from.get(color) != to.get(color),
        _ => false,
    })?;
    let (from, to) = (change.from?, change.to?);
    if to.get(color) != 0 || from.get(color) == 0 {
        return None;
    }
    let at = humantime::parse_rfc3339_weak(&change.at).ok()?;
    // Times are recorded to the second, truncated: the change may have come up to a second
    // later than written, so count from the end of that second.
    Some((change.at.as_str(), at + Duration::from_secs(1)))
}

/// The drain wait for a deploy to `color` at `now`, or None when nothing is left to wait: the
/// listener's `propagation` and then the deregistration `delay`, from when it lost its traffic.
pub fn plan(
    history: &[Event],
    color: Color,
    now: SystemTime,
    propagation: Duration,
    delay: Duration,
    cap: Option<Duration>,
) -> Option<Drain> {
    let (written, lost_at) = lost_traffic(history, color)?;
    let since = now.duration_since(lost_at).unwrap_or(Duration::ZERO);
    let left = (propagation + delay).saturating_sub(since);
    let wait = cap.map_or(left, |c| left.min(c));
    if wait.is_zero() {
        return None;
    }
    Some(Drain {
        color,
        lost_traffic_at: written.to_string(),
        delay_seconds: delay.as_secs_f64(),
        propagation_seconds: propagation.as_secs_f64(),
        cap_seconds: cap
            .filter(|c| *c < propagation + delay)
            .map(|c| c.as_secs_f64()),
        wait_seconds: wait.as_secs_f64(),
        until: now + wait,
    })
}

/// The longest a drain wait can be: `drain_wait_max`, else AWS's default deregistration delay
/// (300 s); what the lock's expiry allows for.
pub fn cap(backend: &BackendConfig) -> Duration {
    backend.drain_wait_max.unwrap_or(Duration::from_secs(300))
}

/// The drain wait before replacing `color`'s containers: only when the record says it lost its
/// traffic recently (a listener changed outside bgcloud leaves no such entry, and then there is
/// no wait). The deregistration delay is read only when it can matter.
pub async fn for_color(
    ctx: &Context,
    backend: &BackendConfig,
    live: &Live,
    color: Color,
) -> Result<Option<Drain>> {
    let Some(record) = live.record() else {
        return Ok(None);
    };
    if lost_traffic(&record.history, color).is_none()
        || backend.drain_wait_max == Some(Duration::ZERO)
    {
        return Ok(None);
    }
    let delay =
        target_group::deregistration_delay(&ctx.clients.elb, backend.target_group_arn(color))
            .await?;
    Ok(plan(
        &record.history,
        color,
        SystemTime::now(),
        backend.listener_propagation,
        delay,
        backend.drain_wait_max,
    ))
}

/// After this run deregistered `instance`'s target on `port`: waits until the group no longer
/// lists it (or lists it `unused`), for at most `cap`, reading every `poll`; returns how long it
/// waited and whether the drain was seen to end. AWS shows a deregistered target as `draining`
/// for the whole deregistration delay, even once it has no request left (the ALB guide,
/// "Deregistration delay"), so on a fresh deregistration this ends with the delay; what it saves
/// is a delay already spent (a run killed after taking the target out). Any other state is not
/// the end: DescribeTargetHealth is eventually consistent and may still answer `healthy` just
/// after the deregistration. A failed read is not the end either: it is logged and the wait
/// goes on to the cap.
pub async fn until_deregistered(
    ctx: &Context,
    target_group_arn: &str,
    instance: &str,
    port: i32,
    cap: Duration,
    poll: Duration,
) -> (Duration, bool) {
    let started = std::time::Instant::now();
    let live = Waiting::start(format!("draining {instance}:{port}"), Some(started + cap));
    loop {
        let gone = match targets(&ctx.clients.elb, target_group_arn).await {
            Ok(states) => {
                let state = states
                    .iter()
                    .find(|t| t.id == instance && t.port == Some(port))
                    .map_or("no longer listed", |t| t.state.as_str());
                live.update(state);
                !states
                    .iter()
                    .any(|t| t.id == instance && t.port == Some(port) && t.state != "unused")
            }
            Err(e) => {
                tracing::warn!("reading {instance}'s drain: {e}; waiting on");
                false
            }
        };
        let waited = started.elapsed();
        if gone || waited >= cap {
            return (waited, gone);
        }
        tokio::time::sleep(poll.min(cap - waited)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::Weights;

    fn event(at: &str, from: Weights, to: Weights) -> Event {
        Event {
            id: at.into(),
            kind: "shift".into(),
            at: at.into(),
            by: "me".into(),
            from: Some(from),
            to: Some(to),
            ..Event::default()
        }
    }

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339_weak(s).unwrap()
    }

    const G: Color = Color::Green;
    const B: Color = Color::Blue;

    #[test]
    fn a_rollback_moments_ago_leaves_the_rest_of_the_delay() {
        let h = [
            event("2026-01-01T10:00:00Z", Weights::all(B), Weights::all(G)),
            event("2026-01-01T10:05:00Z", Weights::all(G), Weights::all(B)),
        ];
        let d = plan(
            &h,
            G,
            at("2026-01-01T10:05:04Z"),
            Duration::from_secs(5),
            Duration::from_secs(10),
            None,
        )
        .unwrap();
        // 5 s of propagation and 10 s of delay from the end of second :00, 4 s of it gone.
        assert_eq!(d.wait_seconds, 12.0);
        assert_eq!(d.propagation_seconds, 5.0);
        assert_eq!(d.lost_traffic_at, "2026-01-01T10:05:00Z");
    }

    #[test]
    fn new_requests_reach_a_colour_until_the_listener_change_has_propagated() {
        // Deregistration delay 1 s, propagation 5 s: 3 s after the change, a deploy that counted
        // only the delay would replace the container while the nodes still route to it.
        let h = [event(
            "2026-01-01T10:00:00Z",
            Weights::all(G),
            Weights::all(B),
        )];
        let now = at("2026-01-01T10:00:03Z");
        let one = Duration::from_secs(1);
        let d = plan(&h, G, now, Duration::from_secs(5), one, None).unwrap();
        // From the end of second :00: 5 s + 1 s, 2 s of it gone.
        assert_eq!(d.wait_seconds, 4.0);
        assert!(d.to_string().contains("may route to it for 5s more"), "{d}");
        assert_eq!(plan(&h, G, now, Duration::ZERO, one, None), None);
    }

    #[test]
    fn a_colour_idle_for_longer_than_the_delay_needs_no_wait() {
        let h = [event(
            "2026-01-01T10:00:00Z",
            Weights::all(G),
            Weights::all(B),
        )];
        assert_eq!(
            plan(
                &h,
                G,
                at("2026-01-01T10:01:00Z"),
                Duration::from_secs(5),
                Duration::from_secs(30),
                None
            ),
            None
        );
    }

    #[test]
    fn a_colour_that_never_had_traffic_needs_no_wait() {
        assert_eq!(
            plan(
                &[],
                G,
                at("2026-01-01T10:00:00Z"),
                Duration::from_secs(5),
                Duration::from_secs(30),
                None
            ),
            None
        );
        let h = [event(
            "2026-01-01T10:00:00Z",
            Weights::all(B),
            Weights::all(B),
        )];
        assert_eq!(lost_traffic(&h, G), None);
    }

    #[test]
    fn a_canary_share_taken_away_counts_as_losing_traffic() {
        let h = [
            event(
                "2026-01-01T10:00:00Z",
                Weights::all(B),
                Weights::split(G, 10),
            ),
            event(
                "2026-01-01T10:00:30Z",
                Weights::split(G, 10),
                Weights::all(B),
            ),
        ];
        assert!(lost_traffic(&h, G).is_some());
        // A later change that gave it traffic again is what counts.
        let mut h = h.to_vec();
        h.push(event(
            "2026-01-01T10:01:00Z",
            Weights::all(B),
            Weights::split(G, 5),
        ));
        assert_eq!(lost_traffic(&h, G), None);
    }

    #[test]
    fn the_cap_shortens_the_wait_and_zero_turns_it_off() {
        let h = [event(
            "2026-01-01T10:00:00Z",
            Weights::all(G),
            Weights::all(B),
        )];
        let now = at("2026-01-01T10:00:01Z");
        let d = plan(
            &h,
            G,
            now,
            Duration::from_secs(5),
            Duration::from_secs(300),
            Some(Duration::from_secs(20)),
        )
        .unwrap();
        assert_eq!(d.wait_seconds, 20.0);
        assert_eq!(d.cap_seconds, Some(20.0));
        assert_eq!(
            plan(
                &h,
                G,
                now,
                Duration::from_secs(5),
                Duration::from_secs(300),
                Some(Duration::ZERO)
            ),
            None
        );
    }

    #[test]
    fn events_without_weights_are_skipped() {
        let mut frontend = event("2026-01-01T10:00:05Z", Weights::all(B), Weights::all(B));
        frontend.from = None;
        frontend.to = None;
        let h = [
            event("2026-01-01T10:00:00Z", Weights::all(G), Weights::all(B)),
            frontend,
        ];
        assert!(lost_traffic(&h, G).is_some());
    }
}
