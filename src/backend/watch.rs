//! Bake time: after a verified shift, watch the colour that gained traffic — its target health and
//! the `[backend.gates]` — for a while, and put all traffic back on the colour that lost it the
//! moment something fails. Requests from other runs (`promote`, `rollback`) are honoured between
//! polls.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use crate::aws::cloudwatch::{self, Dimensions};
use crate::aws::targets;
use crate::backend::gates::{self, Reading, Verdict};
use crate::backend::live::Live;
use crate::backend::rollout::{self, Action, Request, Rollout};
use crate::backend::shift::{self, Because, Gate, Shifted};
use crate::config::{BackendConfig, OnInconclusive};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;
use crate::notify::{Kind, Subject};
use crate::output::Waiting;

/// How a watch ended.
#[derive(Debug)]
pub enum Ended {
    Passed,
    /// What failed, in words.
    Breached(String),
    /// Which gates had too little data for the window, in words.
    Inconclusive(String),
    Requested(Request),
}

/// One watch: `gaining` is judged for `duration`; `rollout` is what `status` shows meanwhile.
pub struct Watch<'a> {
    pub gaining: Color,
    pub duration: Duration,
    pub ignore_unreadable: bool,
    pub rollout: &'a mut Rollout,
}

/// The whole metric periods a watch judges: from the first period that starts after the move
/// (the minute of the move mixes both colours' traffic, and smoke-test requests, with the
/// watched one's) to the last period that ends by the watch's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
    pub period: Duration,
}

impl Window {
    pub fn after(moved: SystemTime, duration: Duration, period: Duration) -> Window {
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        };
        let p = period.as_secs_f64().max(1.0);
        let at = |s: f64| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s * p);
        let start = at((secs(moved) / p).ceil());
        let end = at((secs(moved + duration) / p).floor()).max(start);
        Window { start, end, period }
    }

    /// No whole period fits: the metrics cannot judge this watch.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether datapoints reaching `latest` cover the window's last period.
    pub fn covered_by(&self, latest: Option<SystemTime>) -> bool {
        latest.is_some_and(|t| t + self.period >= self.end)
    }
}

pub async fn run(ctx: &Context, backend: &BackendConfig, w: Watch<'_>) -> Result<Ended> {
    let g = &backend.gates;
    let window = Window::after(SystemTime::now(), w.duration, g.period);
    let deadline = Instant::now() + w.duration;
    let arn = backend.target_group_arn(w.gaining);
    let dims = Dimensions::new(
        &backend.listener_arn,
        arn,
        backend.target_group_arn(w.gaining.other()),
    );
    *ctx.interrupt_note.lock().expect("note") = Some(format!(
        "the watch of {} was interrupted: traffic stays at {} % on {} and nothing was rolled \
         back; check `bgcloud status`",
        w.gaining, w.rollout.weight, w.gaining
    ));
    w.rollout.next_at = Some(rollout::at(w.duration));
    w.rollout.inconclusive = None;
    rollout::save(ctx, w.rollout).await?;
    // Only the targets registered now are judged: an instance that joins during the watch
    // (scale-out, a replacement) reads unhealthy while it boots, which says nothing of the
    // release.
    let judged: BTreeSet<(String, Option<i32>)> = targets::targets(&ctx.clients.elb, arn)
        .await?
        .into_iter()
        .map(|t| (t.id, t.port))
        .collect();
    tracing::info!(
        "watching {} for {} ({})",
        w.gaining,
        humantime::format_duration(w.duration),
        if !g.reads_cloudwatch() {
            "target health only: no [backend.gates] alarms or metrics are configured, so bgcloud \
             judges nothing else"
                .to_string()
        } else if g.reads_metrics() && window.is_empty() {
            format!(
                "target health and the alarms; the metrics cannot be judged: the watch holds no \
                 whole {} period after the move",
                humantime::format_duration(g.period)
            )
        } else {
            "target health and the gates".to_string()
        }
    );
    let mut said_settling = false;
    let live = Waiting::start(format!("watching {}", w.gaining), Some(deadline));
    let ended = loop {
        if let Some(request) = rollout::take_request(ctx).await? {
            break Ended::Requested(request);
        }
        let targets = targets::targets(&ctx.clients.elb, arn).await?;
        let bad = targets
            .iter()
            .filter(|t| judged.contains(&(t.id.clone(), t.port)))
            .find(|t| t.state == "unhealthy");
        if let Some(bad) = bad {
            break Ended::Breached(format!("{}'s target {bad}", w.gaining));
        }
        let now = SystemTime::now();
        let over = Instant::now() >= deadline;
        // While the watch runs: the window so far. Once it is over: the whole window, waited
        // for (bounded) until its last period's datapoints are published.
        let upto = if over {
            window.end
        } else {
            now.min(window.end)
        };
        let (readings, latest) = read_gates(ctx, backend, &dims, (window.start, upto)).await;
        let settled = !g.reads_metrics() || window.is_empty() || window.covered_by(latest);
        let last_chance = over && (settled || now >= window.end + g.period * SETTLE_PERIODS);
        let readings: Vec<Reading> = if last_chance {
            readings.into_iter().map(Reading::at_window_end).collect()
        } else {
            readings
        };
        if readings != w.rollout.gates {
            w.rollout.gates = readings.clone();
            rollout::save(ctx, w.rollout).await?;
        }
        let healthy = targets
            .iter()
            .filter(|t| judged.contains(&(t.id.clone(), t.port)) && t.is_healthy())
            .count();
        live.update(
            &std::iter::once(format!("{healthy} of {} targets healthy", judged.len()))
                .chain(readings.iter().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(" · "),
        );
        let failed: Vec<String> = readings
            .iter()
            .filter(|r| r.fails(w.ignore_unreadable))
            .map(ToString::to_string)
            .collect();
        if !failed.is_empty() {
            break Ended::Breached(failed.join("; "));
        }
        if last_chance {
            break match gates::verdict(&readings, w.ignore_unreadable) {
                Verdict::Passed => Ended::Passed,
                Verdict::Breached(why) => Ended::Breached(why),
                Verdict::Inconclusive(why) => Ended::Inconclusive(why),
            };
        }
        if over && !settled && !said_settling {
            said_settling = true;
            tracing::info!(
                "{}'s watch is over; waiting for CloudWatch to publish its last {} (at most \
                 {} more)",
                w.gaining,
                humantime::format_duration(g.period),
                humantime::format_duration(Duration::from_secs(
                    (window.end + g.period * SETTLE_PERIODS)
                        .duration_since(now)
                        .unwrap_or_default()
                        .as_secs()
                ))
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let nap = if left.is_zero() {
            ctx.poll_interval()
        } else {
            left.min(ctx.poll_interval())
        };
        tokio::time::sleep(nap).await;
    };
    drop(live);
    *ctx.interrupt_note.lock().expect("note") = None;
    Ok(ended)
}

/// How long past its window's end a watch waits for the window's datapoints, in periods: the
/// ALB publishes a minute's datapoints within a couple of minutes.
const SETTLE_PERIODS: u32 = 3;

/// Watches `gaining` (now at `weights`) for `duration` after a shift; on a failed gate puts all
/// traffic back on the other colour (exit 1); honours requests from other runs.
pub async fn after_shift(
    ctx: &Context,
    backend: &BackendConfig,
    gaining: Color,
    weights: Weights,
    duration: Duration,
    ignore_unreadable: bool,
) -> Result<()> {
    let mut state = rollout::Rollout {
        color: Some(gaining),
        weight: weights.get(gaining),
        by: ctx.who.clone(),
        ..Default::default()
    };
    let w = Watch {
        gaining,
        duration,
        ignore_unreadable,
        rollout: &mut state,
    };
    match run(ctx, backend, w).await? {
        Ended::Passed => {
            rollout::clear(ctx).await?;
            tracing::info!(
                "{gaining} passed its watch ({})",
                humantime::format_duration(duration)
            );
            Ok(())
        }
        Ended::Breached(reason) => Err(roll_back(ctx, gaining.other(), &reason).await),
        Ended::Inconclusive(reason) => {
            inconclusive(ctx, backend, gaining, &reason, &mut state).await?;
            rollout::clear(ctx).await
        }
        Ended::Requested(request) => {
            let done = honour(ctx, &request, gaining).await?;
            match request.action {
                rollout::Action::Promote => Ok(()),
                rollout::Action::Rollback => Err(Error::failed(format!(
                    "rolled back at the request of {}: {} → {}",
                    request.by, done.from, done.to
                ))),
            }
        }
    }
}

/// Before anything changes: every alarm `[backend.gates].alarms` names must exist (a metric or
/// a composite alarm), or the watch could only fail safe after the launch. Exit 2 naming it;
/// with `--ignore-missing-metrics`, a warning.
pub async fn check_alarms(ctx: &Context, backend: &BackendConfig, ignore: bool) -> Result<()> {
    let names = &backend.gates.alarms;
    if names.is_empty() {
        return Ok(());
    }
    let found = cloudwatch::alarms(&ctx.clients.cloudwatch, names).await;
    let problem = match found {
        Ok(states) => {
            let missing: Vec<&str> = names
                .iter()
                .filter(|n| !states.contains_key(*n))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            format!(
                "[backend.gates].alarms names {}, which this account and region do not have \
                 (DescribeAlarms found no metric or composite alarm of that name): create it, or \
                 fix the name",
                missing.join(", ")
            )
        }
        Err(f) => format!(
            "the alarms of [backend.gates] could not be read, so the watch could not judge them: {}",
            f.explain("DescribeAlarms")
        ),
    };
    if ignore {
        tracing::warn!("{problem} (--ignore-missing-metrics: going on; the watch skips them)");
        return Ok(());
    }
    Err(Error::refused(format!(
        "{problem}. Nothing was changed (or pass --ignore-missing-metrics to go on without them)"
    )))
}

/// A watch of `gaining` ended inconclusive: `[backend.gates].inconclusive` says what follows.
/// `Ok`: go on as if it passed (`pass`). Otherwise the error the run ends with: all traffic back
/// on the other colour (`rollback`, exit 1), or the rollout left where it is, paused for
/// `promote` or `rollback` (`pause`, exit 4).
pub async fn inconclusive(
    ctx: &Context,
    backend: &BackendConfig,
    gaining: Color,
    reason: &str,
    state: &mut Rollout,
) -> Result<()> {
    match backend.gates.inconclusive {
        OnInconclusive::Pass => {
            tracing::warn!(
                "{gaining}'s watch was inconclusive ({reason}); going on as if it passed \
                 ([backend.gates].inconclusive = \"pass\")"
            );
            Ok(())
        }
        OnInconclusive::Rollback => {
            Err(roll_back(ctx, gaining.other(), &format!("inconclusive: {reason}")).await)
        }
        OnInconclusive::Pause => {
            state.paused = true;
            state.next_at = None;
            state.inconclusive = Some(reason.to_string());
            rollout::save(ctx, state).await?;
            let at = state.weight;
            ctx.notify
                .send(
                    Kind::Inconclusive,
                    Subject {
                        color: Some(gaining),
                        weights: Some(Weights::split(gaining, at)),
                        ..Default::default()
                    },
                    Some(reason.to_string()),
                )
                .await;
            Err(Error::Inconclusive(format!(
                "{gaining}'s watch was inconclusive: {reason}. Traffic stays at {} (nothing \
                 judged it as good or bad); the rollout is paused: `bgcloud promote` accepts \
                 it, `bgcloud rollback` undoes it",
                Weights::split(gaining, at)
            )))
        }
    }
}

/// The gates' readings over `(from, to)`, and how far the new colour's published datapoints
/// reach: one DescribeAlarms and one GetMetricData at most.
async fn read_gates(
    ctx: &Context,
    backend: &BackendConfig,
    dims: &Dimensions,
    (from, to): (SystemTime, SystemTime),
) -> (Vec<Reading>, Option<SystemTime>) {
    let g = &backend.gates;
    let cw = &ctx.clients.cloudwatch;
    let mut readings = Vec::new();
    let mut latest = None;
    if !g.alarms.is_empty() {
        match cloudwatch::alarms(cw, &g.alarms).await {
            Ok(states) => readings.extend(gates::judge_alarms(&g.alarms, &states)),
            Err(f) => readings.extend(g.alarms.iter().map(|name| {
                gates::unreadable(&format!("alarm {name}"), f.explain("DescribeAlarms"))
            })),
        }
    }
    if g.reads_metrics() && to <= from {
        // No whole period since the move yet (or none fits the watch): nothing to ask for.
        let none = cloudwatch::ColorMetrics::default();
        readings.extend(
            gates::judge_metrics(g, &none, &none)
                .into_iter()
                .map(|r| r.with_note("no whole metric period since the move yet")),
        );
    } else if g.reads_metrics() {
        match cloudwatch::colors(cw, dims, (from, to), g.period).await {
            Ok((new, stable)) => {
                latest = new.latest;
                readings.extend(gates::judge_metrics(g, &new, &stable))
            }
            Err(f) => readings.push(gates::unreadable("ALB metrics", f.explain("GetMetricData"))),
        }
    }
    (readings, latest)
}

/// After a breach: all traffic back on `to` at once (verified), recorded as an `auto-rollback`
/// with the reason. Returns the error the command ends with (exit 1).
pub async fn roll_back(ctx: &Context, to: Color, reason: &str) -> Error {
    let live = match Live::read(ctx).await {
        Ok(live) => live,
        Err(e) => {
            return Error::failed(format!(
                "{} failed its watch ({reason}), and the listener could not be read to put \
                 traffic back: {e}. Run `bgcloud rollback` now",
                to.other()
            ))
        }
    };
    let because = Because {
        reason: Some(reason.to_string()),
        request: None,
    };
    let from = live.weights();
    match shift::apply(
        ctx,
        live,
        "auto-rollback",
        Weights::all(to),
        Gate::Force,
        None,
        because,
    )
    .await
    {
        Ok(_) => {
            let _ = rollout::clear(ctx).await;
            Error::failed(format!(
                "{} failed its watch: {reason}. Rolled back automatically: {from} → {} \
                 (verified on the listener). Sending traffic back to {} needs `bgcloud rollback \
                 --force` or a new deploy",
                to.other(),
                Weights::all(to),
                to.other()
            ))
        }
        Err(e) => Error::failed(format!(
            "{} failed its watch ({reason}), and putting traffic back on {to} failed: {e}",
            to.other()
        )),
    }
}

/// Carries out a request left by another run: promote (all traffic to `gaining`) or rollback
/// (all traffic to the other colour), recorded with the request's id so that run sees it done.
pub async fn honour(ctx: &Context, request: &Request, gaining: Color) -> Result<Shifted> {
    let live = Live::read(ctx).await?;
    let (to, gate) = match request.action {
        Action::Promote => (Weights::all(gaining), Gate::Refuse),
        Action::Rollback => (Weights::all(gaining.other()), Gate::Force),
    };
    tracing::warn!(
        "{} requested by {}: {} → {to}",
        request.action.as_str(),
        request.by,
        live.weights()
    );
    let because = Because {
        reason: Some(format!("requested by {}", request.by)),
        request: Some(request.id.clone()),
    };
    let shifted = shift::apply(ctx, live, request.action.as_str(), to, gate, None, because).await?;
    rollout::clear(ctx).await?;
    Ok(shifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_window_is_the_whole_periods_after_the_move() {
        let minute = Duration::from_secs(60);
        // Moved at 12:00:30 (43,230 s), watched 5 min: 12:01 to 12:05, four whole minutes; the
        // minute of the move (both colours' traffic, the smoke tests) is not in it.
        let w = Window::after(at(43_230.0), Duration::from_secs(300), minute);
        assert_eq!((w.start, w.end), (at(43_260.0), at(43_500.0)));
        assert!(!w.is_empty());
        // Covered once the last minute's datapoint (12:04) is published.
        assert!(!w.covered_by(Some(at(43_380.0))));
        assert!(w.covered_by(Some(at(43_440.0))));
        assert!(!w.covered_by(None));
        // A move on the minute starts the window there.
        let w = Window::after(at(43_200.0), Duration::from_secs(120), minute);
        assert_eq!((w.start, w.end), (at(43_200.0), at(43_320.0)));
        // A watch shorter than a whole period after the move holds none.
        let w = Window::after(at(43_230.0), Duration::from_secs(60), minute);
        assert!(w.is_empty());
    }
}
