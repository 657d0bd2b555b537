//! A stepped rollout or a watch as other runs see it: its state (`<prefix><app>/rollout.json`,
//! shown by `status`) and the `promote`/`rollback` requests that other shells leave for it
//! (`<prefix><app>/request.json`), which the running command honours within one poll interval.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::aws::s3::object::{Condition, Object};
use crate::backend::gates::Reading;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;
use crate::state::record::{new_id, now};

/// What `status` shows of a rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub deployment_id: String,
    pub color: Option<Color>,
    /// The shares the new colour goes through (100 after the last unless paused).
    pub steps: Vec<u8>,
    /// 1-based step now; 0 while only watching (after a promote or shift).
    pub step: usize,
    /// The new colour's share now.
    pub weight: u8,
    /// When the next step (or the end of the watch) is due, RFC 3339.
    pub next_at: Option<String>,
    pub paused: bool,
    /// Paused because a watch ended without a verdict: which gates had too little data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<String>,
    pub gates: Vec<Reading>,
    pub by: String,
    pub updated_at: String,
}

impl fmt::Display for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let color = self.color.map_or("?", |c| c.as_str());
        if self.steps.is_empty() {
            write!(f, "watching {color} at {} %", self.weight)?;
        } else {
            let steps: Vec<String> = self.steps.iter().map(|s| format!("{s} %")).collect();
            write!(
                f,
                "{color} at {} %, step {} of {} ({})",
                self.weight,
                self.step,
                self.steps.len(),
                steps.join(" → ")
            )?;
        }
        if let (true, Some(why)) = (self.paused, &self.inconclusive) {
            write!(
                f,
                ", paused: its watch was inconclusive ({why}); `bgcloud promote` accepts it, \
                 `bgcloud rollback` undoes it"
            )?;
        } else if self.paused {
            write!(f, ", paused: continue with `bgcloud promote`")?;
        } else if let Some(next) = &self.next_at {
            write!(f, ", next at {next}")?;
        }
        for g in &self.gates {
            write!(f, "\n    gate {g}")?;
        }
        Ok(())
    }
}

fn object(ctx: &Context, name: &str) -> Object {
    let key = format!("{}{}/{name}.json", ctx.config.state.prefix, ctx.config.app);
    Object::new(ctx.clients.buckets.clone(), &ctx.config.state.bucket, key)
}

pub async fn load(ctx: &Context) -> Result<Option<Rollout>> {
    Ok(object(ctx, "rollout")
        .get()
        .await?
        .and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok()))
}

/// Writes the rollout's state (only the lock holder writes it).
pub async fn save(ctx: &Context, rollout: &Rollout) -> Result<()> {
    let mut rollout = rollout.clone();
    rollout.updated_at = now();
    let body = serde_json::to_vec_pretty(&rollout).expect("rollout serializes");
    object(ctx, "rollout").put(body, Condition::None).await?;
    Ok(())
}

/// The rollout is over (promoted, rolled back, or replaced by another change).
pub async fn clear(ctx: &Context) -> Result<()> {
    object(ctx, "rollout").delete().await
}

/// RFC 3339 for a point `after` from now.
pub fn at(after: Duration) -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now() + after).to_string()
}

// --- requests from other runs -------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Promote,
    Rollback,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Rollback => "rollback",
        }
    }
}

/// A `promote` or `rollback` that another run asked the lock holder to carry out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub action: Action,
    pub by: String,
    pub at: String,
}

/// The pending request, taken (deleted) so it is honoured once.
pub async fn take_request(ctx: &Context) -> Result<Option<Request>> {
    let obj = object(ctx, "request");
    let Some((bytes, etag)) = obj.get().await? else {
        return Ok(None);
    };
    let Ok(request) = serde_json::from_slice::<Request>(&bytes) else {
        obj.delete().await?;
        return Ok(None);
    };
    Ok(obj.delete_version(&etag).await?.then_some(request))
}

/// What a request came to, as the running command recorded it.
#[derive(Debug, Clone)]
pub struct Answered {
    pub holder: String,
    pub from: Weights,
    pub to: Weights,
}

/// If the lock is held by a run that takes requests (a stepped rollout or a watch), leaves
/// `action` for it and waits until it has been carried out. `None`: nobody to ask, go on as
/// usual (take the lock yourself).
pub async fn ask_holder(ctx: &Context, action: Action) -> Result<Option<Answered>> {
    let Some((holder, _)) = ctx.lock().read().await? else {
        return Ok(None);
    };
    if !holder.takes_requests || holder.expired() {
        return Ok(None);
    }
    let request = Request {
        id: new_id(),
        action,
        by: ctx.who.clone(),
        at: now(),
    };
    let obj = object(ctx, "request");
    let body = serde_json::to_vec_pretty(&request).expect("request serializes");
    if obj.put(body, Condition::Absent).await?.is_none() {
        return Err(Error::Locked(format!(
            "another promote or rollback request is already waiting for the running rollout \
             ({holder}); check `bgcloud status`"
        )));
    }
    tracing::info!(
        "{} requested from the running rollout ({holder}); waiting for it to take effect",
        action.as_str()
    );
    let poll = ctx.poll_interval();
    let deadline = Instant::now() + (poll * 10).max(Duration::from_secs(60));
    loop {
        tokio::time::sleep(poll).await;
        let record = ctx.store().load().await?;
        let done = record.as_ref().and_then(|(r, _)| {
            r.history
                .iter()
                .rev()
                .find(|e| e.request.as_deref() == Some(request.id.as_str()))
        });
        if let Some(event) = done {
            return Ok(Some(Answered {
                holder: holder.owner.clone(),
                from: event.from.unwrap_or(Weights { blue: 0, green: 0 }),
                to: event.to.unwrap_or(Weights { blue: 0, green: 0 }),
            }));
        }
        if Instant::now() >= deadline {
            // Not taken in time: withdraw it, so it cannot take effect unexpectedly later.
            if let Some((_, etag)) = obj.get().await? {
                obj.delete_version(&etag).await?;
            }
            return Err(Error::Locked(format!(
                "the running rollout ({holder}) did not take the {} request in time; it was \
                 withdrawn. Check `bgcloud status`; if that run is gone (killed, its runner \
                 lost), release its lock with `bgcloud lock release --force` and run `bgcloud {}` \
                 again",
                action.as_str(),
                action.as_str()
            )));
        }
    }
}
