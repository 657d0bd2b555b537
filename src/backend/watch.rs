//! Bake time: after a verified shift, watch the colour that gained traffic — its target health and
//! the `[backend.gates]` — for a while, and put all traffic back on the colour that lost it the
//! moment something fails. Requests from other runs (`promote`, `rollback`) are honoured between
//! polls.

use std::time::{Duration, Instant, SystemTime};

use crate::aws::cloudwatch::{self, Dimensions};
use crate::aws::targets;
use crate::backend::gates::{self, Reading};
use crate::backend::live::Live;
use crate::backend::rollout::{self, Action, Request, Rollout};
use crate::backend::shift::{self, Because, Gate, Shifted};
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;

/// How a watch ended.
#[derive(Debug)]
pub enum Ended {
    Passed,
    /// What failed, in words.
    Breached(String),
    Requested(Request),
}

/// One watch: `gaining` is judged for `duration`; `rollout` is what `status` shows meanwhile.
pub struct Watch<'a> {
    pub gaining: Color,
    pub duration: Duration,
    pub ignore_unreadable: bool,
    pub rollout: &'a mut Rollout,
}

pub async fn run(ctx: &Context, backend: &BackendConfig, w: Watch<'_>) -> Result<Ended> {
    let since = SystemTime::now();
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
    rollout::save(ctx, w.rollout).await?;
    tracing::info!(
        "watching {} for {} (target health{})",
        w.gaining,
        humantime::format_duration(w.duration),
        if backend.gates.reads_cloudwatch() {
            " and the gates"
        } else {
            ""
        }
    );
    let ended = loop {
        if let Some(request) = rollout::take_request(ctx).await? {
            break Ended::Requested(request);
        }
        let targets = targets::targets(&ctx.clients.elb, arn).await?;
        if let Some(bad) = targets.iter().find(|t| t.state == "unhealthy") {
            break Ended::Breached(format!("{}'s target {bad}", w.gaining));
        }
        let readings = read_gates(ctx, backend, &dims, since).await;
        if readings != w.rollout.gates {
            w.rollout.gates = readings.clone();
            rollout::save(ctx, w.rollout).await?;
        }
        let failed: Vec<String> = readings
            .iter()
            .filter(|r| r.fails(w.ignore_unreadable))
            .map(ToString::to_string)
            .collect();
        if !failed.is_empty() {
            break Ended::Breached(failed.join("; "));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Ended::Passed;
        }
        tokio::time::sleep(left.min(ctx.poll_interval())).await;
    };
    *ctx.interrupt_note.lock().expect("note") = None;
    Ok(ended)
}

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

/// The gates' readings now: one DescribeAlarms and one GetMetricData at most.
async fn read_gates(
    ctx: &Context,
    backend: &BackendConfig,
    dims: &Dimensions,
    since: SystemTime,
) -> Vec<Reading> {
    let g = &backend.gates;
    let cw = &ctx.clients.cloudwatch;
    let mut readings = Vec::new();
    if !g.alarms.is_empty() {
        match cloudwatch::alarms(cw, &g.alarms).await {
            Ok(states) => readings.extend(gates::judge_alarms(&g.alarms, &states)),
            Err(f) => readings.extend(g.alarms.iter().map(|name| {
                gates::unreadable(&format!("alarm {name}"), f.explain("DescribeAlarms"))
            })),
        }
    }
    let metric_gates = g.max_5xx_rate.is_some()
        || g.max_p99_latency.is_some()
        || g.max_5xx_ratio_to_stable.is_some()
        || g.max_p99_ratio_to_stable.is_some();
    if metric_gates {
        match cloudwatch::colors(cw, dims, since).await {
            Ok((new, stable)) => readings.extend(gates::judge_metrics(g, &new, &stable)),
            Err(f) => readings.push(gates::unreadable("ALB metrics", f.explain("GetMetricData"))),
        }
    }
    readings
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
