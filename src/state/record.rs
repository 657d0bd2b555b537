//! The deployment record in the state bucket: what each colour runs, what the last traffic
//! change replaced, and a history. Written with S3 compare-and-swap (`If-None-Match: *` to
//! create, `If-Match: <etag>` to replace) so two writers never silently overwrite each other.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::aws::s3::object::{Condition, Object};
use crate::aws::s3::Buckets;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::stickiness::Stickiness;
use crate::model::weights::Weights;

/// How many history entries the record keeps.
pub const HISTORY_LEN: usize = 50;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub backend: BackendRecord,
    #[serde(default)]
    pub frontend: FrontendRecord,
    #[serde(default)]
    pub history: Vec<Event>,
}

/// The frontend's releases as bgcloud made them (what is live is read from CloudFront).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrontendRecord {
    pub current: Option<String>,
    /// Where `frontend rollback` goes by default.
    pub previous: Option<String>,
    #[serde(default)]
    pub releases: Vec<SiteRelease>,
}

/// One frontend release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRelease {
    pub id: String,
    pub files: usize,
    pub uploaded: usize,
    pub copied: usize,
    pub bytes_uploaded: u64,
    pub bytes_skipped: u64,
    pub at: String,
    pub by: String,
    pub previous: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRecord {
    /// Weights bgcloud last set and verified; if the listener differs, someone changed it
    /// outside bgcloud and the rest of this record is advisory.
    pub weights: Option<Weights>,
    /// The stable colour before the last traffic change: where `rollback` goes.
    pub previous_stable: Option<Color>,
    #[serde(default)]
    pub blue: Option<Release>,
    #[serde(default)]
    pub green: Option<Release>,
    /// A colour a watch took traffic away from automatically: `rollback` to it needs --force
    /// until a deploy puts a new release on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<Color>,
    /// What the last `bgcloud sync` found and did (status shows it without asking instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<SyncRecord>,
    /// The forward's target-group stickiness as the user set it (last seen on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<Stickiness>,
    /// bgcloud turned stickiness off in a rollback; the next deploy turns it back on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stickiness_off: bool,
    /// The idle colour, asleep (`[backend] idle = "stop"`, `bgcloud idle stop`): its containers
    /// stopped, its targets out of its group. What `status` says and what `rollback` starts
    /// first; the instances read the same fact from the desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

/// A colour whose containers bgcloud stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    pub color: Color,
    pub since: String,
    pub by: String,
    /// About how long a start takes (launch + health gate): the colour's last measured start,
    /// else the health check's arithmetic; what a rollback then costs.
    pub start_seconds: f64,
    /// Marked, but the stop command has not succeeded on every instance yet: the next stop
    /// (`idle stop`, or a deploy, promote or sync with `idle = "stop"`) sends it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// The stored result of a `bgcloud sync`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub at: String,
    pub by: String,
    pub instances: usize,
    /// `<instance> <colour>: <why>` for each container started again.
    pub relaunched: Vec<String>,
    /// `<instance> <colour>` for each target registered.
    pub registered: Vec<String>,
    /// What could not be brought in line; empty: the fleet matched the desired state.
    pub problems: Vec<String>,
}

impl BackendRecord {
    pub fn release(&self, color: Color) -> Option<&Release> {
        match color {
            Color::Blue => self.blue.as_ref(),
            Color::Green => self.green.as_ref(),
        }
    }
}

/// What a colour runs, as recorded by the deploy that put it there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub image: String,
    pub digest: String,
    pub deployment_id: String,
    pub at: String,
    pub by: String,
    /// How long its start took (launch + health gate), as last measured: what starting this
    /// colour again after `bgcloud idle stop` will about cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_seconds: Option<f64>,
}

/// One entry of the history: a deploy or a traffic change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub at: String,
    pub by: String,
    /// Backend events: the weights before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Weights>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Weights>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Frontend events: the release that went live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Why, when it was not a person's plain command (an auto-rollback's failed gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The id of the request from another run that this change carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl Record {
    /// Appends to the history, dropping the oldest entries past [`HISTORY_LEN`].
    pub fn push(&mut self, event: Event) {
        self.history.push(event);
        let excess = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..excess);
    }

    /// Records a frontend release going live (deploy or rollback).
    pub fn push_site(&mut self, kind: &str, release: SiteRelease, by: &str) {
        let f = &mut self.frontend;
        f.previous = f
            .current
            .take()
            .filter(|c| c != &release.id)
            .or(f.previous.take());
        f.current = Some(release.id.clone());
        if kind == "frontend-deploy" {
            f.releases.push(release.clone());
            let excess = f.releases.len().saturating_sub(HISTORY_LEN);
            f.releases.drain(..excess);
        }
        self.push(Event {
            id: new_id(),
            kind: kind.to_string(),
            at: release.at.clone(),
            by: by.to_string(),
            release: Some(release.id),
            ..Event::default()
        });
    }
}

/// Now as RFC 3339 UTC, second precision.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A sortable, unique-enough id: UTC timestamp plus a few random hex digits.
pub fn new_id() -> String {
    let stamp: String = now().chars().filter(char::is_ascii_digit).collect();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{stamp}-{:04x}", (nanos ^ std::process::id()) & 0xffff)
}

/// The record's place in S3.
pub struct Store {
    object: Object,
}

impl Store {
    pub fn new(buckets: Buckets, config: &Config) -> Store {
        let key = format!("{}{}/record.json", config.state.prefix, config.app);
        Store {
            object: Object::new(buckets, &config.state.bucket, key),
        }
    }

    /// The record and its ETag, or `None` when nothing was recorded yet.
    pub async fn load(&self) -> Result<Option<(Record, String)>> {
        let Some((bytes, etag)) = self.object.get().await? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&bytes).map_err(|e| {
            Error::failed(format!(
                "the deployment record {} is not valid JSON ({e}); fix or delete it \
                 (the live colour is read from the ALB, not from this file)",
                self.object.location()
            ))
        })?;
        Ok(Some((record, etag)))
    }

    pub async fn read(&self) -> Result<Option<Record>> {
        Ok(self.load().await?.map(|(r, _)| r))
    }

    /// Applies `change` to the record and writes it back with compare-and-swap, re-reading and
    /// re-applying when another writer got there first. `loaded` is the record as the caller
    /// already read it (saves a request); `None` reads it here.
    pub async fn update(
        &self,
        loaded: Option<Option<(Record, String)>>,
        mut change: impl FnMut(&mut Record),
    ) -> Result<Record> {
        let mut loaded = loaded;
        let mut written: Option<(Vec<u8>, Record)> = None;
        for _ in 0..5 {
            let current = match loaded.take() {
                Some(l) => l,
                None => self.load().await?,
            };
            // A write whose answer was lost, retried by the SDK into a 412: the record as stored
            // is exactly what we wrote, so it is done (and must not be applied twice).
            if let (Some((body, ours)), Some((stored, _))) = (&written, &current) {
                if serde_json::to_vec_pretty(stored).ok().as_ref() == Some(body) {
                    return Ok(ours.clone());
                }
            }
            let (mut record, etag) = match current {
                Some((r, etag)) => (r, Some(etag)),
                None => (Record::default(), None),
            };
            change(&mut record);
            let body = serde_json::to_vec_pretty(&record).expect("record serializes");
            let condition = etag
                .as_deref()
                .map_or(Condition::Absent, Condition::Version);
            if self.object.put(body.clone(), condition).await?.is_some() {
                return Ok(record);
            }
            tracing::debug!(
                "{} changed while writing it; retrying",
                self.object.location()
            );
            written = Some((body, record));
        }
        Err(Error::failed(format!(
            "the deployment record {} kept changing while bgcloud wrote it (5 tries); \
             someone else is deploying: try again",
            self.object.location()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_fifty() {
        let mut r = Record::default();
        for i in 0..60 {
            r.push(Event {
                id: i.to_string(),
                kind: "shift".into(),
                at: now(),
                by: "t".into(),
                to: Some(Weights::all(Color::Blue)),
                ..Event::default()
            });
        }
        assert_eq!(r.history.len(), HISTORY_LEN);
        assert_eq!(r.history[0].id, "10");
        assert_eq!(r.history.last().unwrap().id, "59");
    }

    #[test]
    fn ids_sort_by_time() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(new_id() > a);
    }
}
