//! The deployment lock: one S3 object per app, created with `If-None-Match: *` so only one
//! writer can take it, taken over when expired with `If-Match: <etag>` so two takers can't both
//! win, and given back with a delete on the same condition so a run never deletes a lock that
//! someone took over meanwhile. Holds owner, reason, start and expiry.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::aws::s3::object::{Condition, Object};
use crate::aws::s3::Buckets;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::record::new_id;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub owner: String,
    pub reason: String,
    pub started_at: String,
    pub expires_at: String,
    /// Identifies this holder (a retried create that already won is recognised by it).
    pub token: String,
    /// The holder runs a stepped rollout or a watch and honours `promote`/`rollback` requests
    /// left for it (see `rollout`), instead of those commands exiting 3.
    #[serde(default)]
    pub takes_requests: bool,
}

impl LockInfo {
    pub fn expired(&self) -> bool {
        humantime::parse_rfc3339(&self.expires_at).map_or(true, |t| t < SystemTime::now())
    }
}

impl LockInfo {
    /// How long ago the lock was taken, e.g. "3m 12s ago" (a crashed run's lock shows its age).
    pub fn age(&self) -> Option<String> {
        let started = humantime::parse_rfc3339(&self.started_at).ok()?;
        let age = SystemTime::now().duration_since(started).ok()?;
        Some(format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(age.as_secs()))
        ))
    }
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "held by {} since {}", self.owner, self.started_at)?;
        if let Some(age) = self.age() {
            write!(f, " ({age})")?;
        }
        write!(
            f,
            " for {}, expires {}{}",
            self.reason,
            self.expires_at,
            if self.expired() { " — expired" } else { "" }
        )
    }
}

pub struct Lock {
    object: Object,
}

/// A held lock; give it back with [`Lock::release`].
#[derive(Debug)]
pub struct Held {
    pub info: LockInfo,
    /// Set when an expired lock was taken over: whose it was.
    pub took_over: Option<LockInfo>,
    /// The lock object's ETag as this run wrote it: release deletes only that version.
    pub etag: String,
}

impl Lock {
    pub fn new(buckets: Buckets, config: &Config) -> Lock {
        let key = format!("{}{}/lock.json", config.state.prefix, config.app);
        Lock {
            object: Object::new(buckets, &config.state.bucket, key),
        }
    }

    pub fn location(&self) -> String {
        self.object.location()
    }

    /// The lock as stored, with its ETag.
    pub async fn read(&self) -> Result<Option<(LockInfo, String)>> {
        let Some((bytes, etag)) = self.object.get().await? else {
            return Ok(None);
        };
        let info = serde_json::from_slice(&bytes).unwrap_or_else(|_| LockInfo {
            owner: "unknown (unreadable lock file)".into(),
            reason: String::new(),
            started_at: String::new(),
            expires_at: String::new(), // unparsable: counts as expired
            token: String::new(),
            takes_requests: false,
        });
        Ok(Some((info, etag)))
    }

    /// Takes the lock for `ttl`, waiting up to `wait` (polling every `poll`) while someone else
    /// holds it. Held and not expired after the wait: exit 3 with who, why and since when.
    pub async fn acquire(
        &self,
        owner: &str,
        reason: &str,
        ttl: Duration,
        wait: Duration,
        poll: Duration,
        takes_requests: bool,
    ) -> Result<Held> {
        let deadline = Instant::now() + wait;
        let mut announced = false;
        loop {
            let now = SystemTime::now();
            let info = LockInfo {
                owner: owner.to_string(),
                reason: reason.to_string(),
                started_at: humantime::format_rfc3339_seconds(now).to_string(),
                expires_at: humantime::format_rfc3339_seconds(now + ttl).to_string(),
                token: new_id(),
                takes_requests,
            };
            if let Some(etag) = self.put(&info, None).await? {
                return Ok(Held {
                    info,
                    took_over: None,
                    etag,
                });
            }
            match self.read().await? {
                None => continue, // released in between: try again at once
                // Our own create went through but its answer was lost and the SDK's retry got
                // 412: the lock is ours.
                Some((current, etag)) if current.token == info.token => {
                    return Ok(Held {
                        info,
                        took_over: None,
                        etag,
                    })
                }
                Some((current, etag)) if current.expired() => {
                    if let Some(etag) = self.put(&info, Some(&etag)).await? {
                        tracing::warn!("took over the expired deployment lock ({current})");
                        return Ok(Held {
                            info,
                            took_over: Some(current),
                            etag,
                        });
                    }
                    // Someone else took it over first; look again.
                }
                Some((current, _)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Locked(format!(
                            "another deployment holds the lock {}: {current}. Wait for it \
                             (--lock-wait 10m), or if that run is dead: bgcloud lock release --force",
                            self.location()
                        )));
                    }
                    if !announced {
                        tracing::info!("waiting for the deployment lock: {current}");
                        announced = true;
                    }
                    tokio::time::sleep(poll.min(left)).await;
                }
            }
        }
    }

    /// Create-only without `etag`, replace-only-this-version with it. The new ETag, or `None`
    /// when someone else holds or changed the lock.
    async fn put(&self, info: &LockInfo, etag: Option<&str>) -> Result<Option<String>> {
        let body = serde_json::to_vec_pretty(info).expect("lock serializes");
        let condition = etag.map_or(Condition::Absent, Condition::Version);
        self.object.put(body, condition).await
    }

    /// Gives the lock back if it is still the version this run wrote. Someone who took it over
    /// meanwhile (it had expired) keeps it: a warning, not an error.
    pub async fn release(&self, held: &Held) -> Result<()> {
        if self.object.delete_version(&held.etag).await? {
            return Ok(());
        }
        match self.read().await? {
            Some((current, _)) => {
                tracing::warn!("the deployment lock is no longer ours ({current}); leaving it");
            }
            None => tracing::warn!(
                "the deployment lock was released by someone else (bgcloud lock release --force?)"
            ),
        }
        Ok(())
    }

    /// Deletes the lock whoever holds it (`bgcloud lock release --force`).
    pub async fn delete(&self) -> Result<()> {
        self.object.delete().await
    }
}
