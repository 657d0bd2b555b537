//! A stepped rollout after a deploy's first shift: each share in turn, held for an interval while
//! the colour is watched, then 100 % (and the bake-time watch) unless it pauses at the last step.
//! A failed watch puts all traffic back on the other colour; requests from other runs end it.

use std::time::Duration;

use crate::backend::live::Live;
use crate::backend::rollout::{self, Action, Rollout};
use crate::backend::shift::{self, Because, Gate};
use crate::backend::watch::{self, Ended, Watch};
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;

/// The steps of one rollout, as the deploy resolved them.
#[derive(Debug, Clone)]
pub struct Steps {
    pub shares: Vec<u8>,
    pub interval: Duration,
    pub pause: bool,
}

/// How a rollout that did not fail ended: in words, and the moves it made after the deploy's
/// first shift (each verified on the listener), the last being where traffic is now.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ended: String,
    pub moves: Vec<Weights>,
}

/// Runs the steps of `color` (already at the first share); returns how the rollout ended.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &Context,
    backend: &BackendConfig,
    color: Color,
    deployment_id: &str,
    steps: &Steps,
    watch_after: Duration,
    ignore_unreadable: bool,
) -> Result<Outcome> {
    let mut moves = Vec::new();
    let mut state = Rollout {
        deployment_id: deployment_id.to_string(),
        color: Some(color),
        steps: steps.shares.clone(),
        step: 1,
        weight: steps.shares[0],
        by: ctx.who.clone(),
        ..Default::default()
    };
    for (i, &share) in steps.shares.iter().enumerate() {
        if i > 0 {
            moves.push(move_to(ctx, "step", Weights::split(color, share)).await?);
            state.step = i + 1;
            state.weight = share;
        }
        tracing::info!(
            "step {} of {}: {color} at {share} %",
            i + 1,
            steps.shares.len()
        );
        if steps.interval.is_zero() {
            continue;
        }
        let w = Watch {
            gaining: color,
            duration: steps.interval,
            ignore_unreadable,
            rollout: &mut state,
        };
        match watch::run(ctx, backend, w).await? {
            Ended::Passed => {}
            Ended::Breached(reason) => {
                return Err(watch::roll_back(ctx, color.other(), &reason).await)
            }
            Ended::Inconclusive(reason) => {
                watch::inconclusive(ctx, backend, color, &reason, &mut state).await?
            }
            Ended::Requested(request) => {
                let done = watch::honour(ctx, &request, color).await?;
                return match request.action {
                    Action::Promote => Ok(Outcome {
                        ended: format!(
                            "promoted at step {} at the request of {} ({} → {})",
                            i + 1,
                            request.by,
                            done.from,
                            done.to
                        ),
                        moves: [moves, vec![done.to]].concat(),
                    }),
                    Action::Rollback => Err(Error::failed(format!(
                        "rolled back at step {} at the request of {}: {} → {}",
                        i + 1,
                        request.by,
                        done.from,
                        done.to
                    ))),
                };
            }
        }
    }
    let last = *steps.shares.last().expect("at least one step");
    if steps.pause {
        state.paused = true;
        state.next_at = None;
        rollout::save(ctx, &state).await?;
        return Ok(Outcome {
            ended: format!(
                "paused at {color} {last} %: continue with `bgcloud promote`, or `bgcloud rollback`"
            ),
            moves,
        });
    }
    moves.push(move_to(ctx, "promote", Weights::all(color)).await?);
    rollout::clear(ctx).await?;
    if !watch_after.is_zero() {
        watch::after_shift(
            ctx,
            backend,
            color,
            Weights::all(color),
            watch_after,
            ignore_unreadable,
        )
        .await?;
    }
    Ok(Outcome {
        ended: format!(
            "promoted to {color} 100 % after {} step(s)",
            steps.shares.len()
        ),
        moves,
    })
}

/// The next share, from the listener as it is now, verified and recorded; the weights read back.
async fn move_to(ctx: &Context, action: &'static str, to: Weights) -> Result<Weights> {
    let live = Live::read(ctx).await?;
    let done = shift::apply(
        ctx,
        live,
        action,
        to,
        Gate::Checked,
        None,
        Because::default(),
    )
    .await?;
    Ok(done.to)
}
