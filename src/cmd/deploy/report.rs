//! What `bgcloud deploy` prints: the plan (`--dry-run`, and the start of every deploy's JSON)
//! and the result, as text and JSON.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::aws::target_group::HealthCheck;
use crate::backend::drain::Drain;
use crate::backend::launch::ReleaseTask;
use crate::backend::preview::{self, Route};
use crate::backend::script;
use crate::backend::shift::Shifted;
use crate::backend::smoke::Passed;
use crate::model::color::Color;
use crate::model::digest::short_digest;
use crate::model::weights::Weights;
use crate::state::record::Release;

/// What a deploy will do (`--dry-run`) or did.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub app: String,
    pub deployment_id: String,
    pub image: String,
    pub digest: String,
    pub repository_uri: String,
    pub color: Color,
    pub instances: Vec<String>,
    pub from: Weights,
    pub to: Weights,
    /// The listener forwards to one colour only and will first be rewritten as a weighted
    /// forward to both (no traffic moves), so the ALB health-checks the idle colour.
    pub adopt: bool,
    /// Shares the new colour goes through, each held `interval_seconds` while watched; empty:
    /// all at once.
    pub steps: Vec<u8>,
    pub interval_seconds: f64,
    /// Stop at the last step (a canary) instead of promoting.
    pub pause: bool,
    /// The bake time once all traffic is on the new colour.
    pub watch_seconds: f64,
    /// What judges the new colour while it is watched: the gates, target health only, or
    /// nothing (no watch at all).
    pub judged_by: String,
    /// The idle colour's target group health check: the probe mirrors it, and the health gate
    /// waits `judge_seconds` after a launch before it trusts a `healthy` verdict.
    pub health_check: HealthCheck,
    pub judge_seconds: f64,
    /// The wait before the launch while the idle colour finishes requests it got before it
    /// lost its traffic; None: nothing to wait for.
    pub drain: Option<Drain>,
    /// Run once before the containers start (migrations).
    pub release_task: Option<ReleaseTask>,
    /// The header route to the new colour, pointed at it after the health gate.
    pub preview: Option<Route>,
    /// Shell commands run after the health gate, before any user traffic.
    pub smoke: Vec<String>,
    pub smoke_timeout_seconds: f64,
    /// The script SSM runs on each instance; secrets appear as parameter names only.
    pub script: Vec<String>,
    /// Where the script is stored, once gated, for instances that boot later.
    pub desired: String,
}

#[derive(Debug, Serialize)]
pub struct Deployed {
    #[serde(flatten)]
    pub plan: Plan,
    /// What the new colour replaced as stable, for `rollback`.
    pub previous: Option<Release>,
    /// The smoke tests that passed (all of them, or the deploy failed).
    pub smoke_passed: Vec<Passed>,
    pub shift: Shifted,
    /// Every move of the listener's weights this deploy made, in order, each verified: the
    /// first shift, then a stepped rollout's steps and its promotion.
    pub moves: Vec<Weights>,
    /// Where traffic ended (the last move).
    pub traffic: Weights,
    /// How the rollout ended: all traffic moved, promoted after its steps, paused, …
    pub ended: String,
    pub seconds: f64,
    pub timings: Timings,
    /// The other colour put to sleep at the end (`[backend] idle = "stop"`, `idle_after` passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<crate::backend::idle::Slept>,
}

/// Where a deploy's time went, in seconds.
#[derive(Debug, Default, Serialize)]
pub struct Timings {
    /// The release task, when there is one.
    pub release_task: f64,
    /// The drain wait before the launch.
    pub drain: f64,
    /// Until SSM reported the launch script done on every instance (after the drain wait).
    pub launch: f64,
    /// Until the health gate trusted every target.
    pub health: f64,
    /// The preview route and the smoke tests.
    pub smoke: f64,
    /// The shift, its read-back and the record.
    pub shift: f64,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan for {} (dry run: nothing changed, no lock taken)",
            self.app
        )?;
        writeln!(f, "  image     {} = {}", self.image, self.digest)?;
        writeln!(f, "  colour    {} (idle)", self.color)?;
        writeln!(f, "  instances {}", self.instances.join(", "))?;
        writeln!(f, "  traffic   {} → {}", self.from, self.to)?;
        if !self.steps.is_empty() {
            let shares: Vec<String> = self.steps.iter().map(|s| format!("{s} %")).collect();
            writeln!(
                f,
                "  steps     {} each held {}{}",
                shares.join(" → "),
                humantime::format_duration(Duration::from_secs_f64(self.interval_seconds)),
                if self.pause {
                    ", then pause for `bgcloud promote`".to_string()
                } else {
                    " while watched, then 100 %".to_string()
                }
            )?;
        }
        if self.watch_seconds > 0.0 {
            writeln!(
                f,
                "  watch     {} after all traffic is on {}",
                humantime::format_duration(Duration::from_secs_f64(self.watch_seconds)),
                self.color
            )?;
        }
        writeln!(f, "  judged by {}", self.judged_by)?;
        if self.adopt {
            writeln!(
                f,
                "  adopt     the listener forwards to {} only: it will first be rewritten as a \
                 weighted forward {} (no traffic moves) so the ALB health-checks {}",
                self.from.stable(self.color.other()),
                self.from,
                self.color
            )?;
        }
        if let Some(task) = &self.release_task {
            writeln!(
                f,
                "  release   `{}` once on {}, before {}'s containers start (at most {}):",
                task.command(),
                task.instance,
                self.color,
                humantime::format_duration(Duration::from_secs_f64(task.timeout_seconds))
            )?;
            for line in task.script.iter().flat_map(|l| l.lines()) {
                writeln!(f, "    {line}")?;
            }
        }
        if let Some(drain) = &self.drain {
            writeln!(f, "  drain     {drain}")?;
        }
        if let Some(route) = &self.preview {
            writeln!(
                f,
                "  preview   {} → {} once healthy{}",
                route.header_line(),
                self.color,
                match (&route.rule_arn, route.moved_from) {
                    (None, _) => format!(
                        " (a new rule at priority {}, tagged {}={})",
                        route.priority,
                        preview::TAG,
                        self.app
                    ),
                    (Some(arn), Some(from)) => format!(
                        " (rule {arn}, moved from priority {from} to {})",
                        route.priority
                    ),
                    (Some(arn), None) => format!(" (rule {arn}, priority {})", route.priority),
                }
            )?;
            writeln!(
                f,
                "            any other {} value: 503 from the guard rule at priority {}{}",
                route.header,
                route.priority + 1,
                if route.guard_rule_arn.is_some() {
                    ""
                } else {
                    " (made first)"
                }
            )?;
        }
        for cmd in &self.smoke {
            writeln!(
                f,
                "  smoke     sh -c {} (at most {}, before any user traffic)",
                script::quote(cmd),
                humantime::format_duration(Duration::from_secs_f64(self.smoke_timeout_seconds))
            )?;
        }
        let hc = &self.health_check;
        writeln!(
            f,
            "  health    {} {} expecting {}; a healthy verdict is trusted {} after the launch \
             ({})",
            hc.protocol,
            hc.path,
            hc.matcher,
            humantime::format_duration(Duration::from_secs_f64(self.judge_seconds)),
            hc.judge_arithmetic()
        )?;
        writeln!(
            f,
            "  desired   {} (stored once gated: instances that boot later start it)",
            self.desired
        )?;
        writeln!(f, "  script (SSM AWS-RunShellScript on each instance):")?;
        for line in self.script.iter().flat_map(|l| l.lines()) {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Deployed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plan;
        writeln!(
            f,
            "deployed {} ({}) to {} on {} instance(s) in {:.1} s",
            p.image,
            short_digest(&p.digest),
            p.color,
            p.instances.len(),
            self.seconds
        )?;
        let moves: Vec<String> = self.moves.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "traffic: {} → {} (each verified on the listener)",
            p.from,
            moves.join(" → ")
        )?;
        if self.moves.len() > 1 {
            writeln!(f, "traffic ended at: {}", self.traffic)?;
        }
        let t = &self.timings;
        if let Some(task) = &p.release_task {
            writeln!(
                f,
                "release task: `{}` succeeded on {} in {:.1} s",
                task.command(),
                task.instance,
                t.release_task
            )?;
        }
        if !self.smoke_passed.is_empty() {
            let via = p.preview.as_ref().map_or(String::new(), |r| {
                format!(" through {} at {}", r.header_line(), r.url)
            });
            writeln!(
                f,
                "smoke tests: {} passed{via} in {:.1} s",
                self.smoke_passed.len(),
                t.smoke
            )?;
        }
        let drain = if self.plan.drain.is_some() {
            format!("drain {:.1} s, ", t.drain)
        } else {
            String::new()
        };
        writeln!(
            f,
            "time: {drain}launch {:.1} s, health gate {:.1} s (the ALB's judgement: {}), shift {:.1} s",
            t.launch,
            t.health,
            p.health_check.judge_arithmetic(),
            t.shift
        )?;
        writeln!(f, "judged by: {}", p.judged_by)?;
        if !p.steps.is_empty() {
            writeln!(f, "rollout: {}", self.ended)?;
        } else if p.to.get(p.color) < 100 {
            writeln!(
                f,
                "canary: finish with `bgcloud promote`, abort with `bgcloud rollback`"
            )?;
        } else if let Some(slept) = &self.idle {
            write!(f, "idle: {slept}")?;
        } else {
            writeln!(
                f,
                "undo with `bgcloud rollback` ({} is still running)",
                p.color.other()
            )?;
        }
        if let Some(w) = &self.shift.warning {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
