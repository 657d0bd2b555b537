//! The desired state: each colour's launch script as its release was recorded, kept next to the
//! deployment record (`<prefix><app>/desired/<colour>.sh`) so that an instance that boots later
//! runs it and serves both colours without any bgcloud command (see the module's user data).

use crate::aws::s3::object::{Condition, Object};
use crate::aws::s3::Buckets;
use crate::config::Config;
use crate::error::Result;
use crate::model::color::Color;

/// A colour's desired-state object.
pub struct Desired {
    object: Object,
}

/// What [`Desired::write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The object already held exactly this script: nothing written.
    Unchanged,
    Written,
}

impl Desired {
    pub fn new(buckets: Buckets, config: &Config, color: Color) -> Desired {
        Desired {
            object: Object::new(buckets, &config.state.bucket, key(config, color)),
        }
    }

    pub fn location(&self) -> String {
        self.object.location()
    }

    /// The script as a file: one command per line, as SSM would run them.
    pub fn body(script: &[String]) -> Vec<u8> {
        let mut text = script.join("\n");
        text.push('\n');
        text.into_bytes()
    }

    /// The stored script, or None before the colour's first deploy.
    pub async fn read(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.object.get().await?.map(|(body, _)| body))
    }

    /// Stores `script` unless the object already holds it. Conditional on the version read
    /// (`If-Match`, or `If-None-Match: *` for the first), so a concurrent writer is never
    /// overwritten blindly; losing that race twice leaves the other writer's script, which is as
    /// recent as this one (both hold the deployment lock in turn).
    pub async fn write(&self, script: &[String]) -> Result<Written> {
        let body = Self::body(script);
        for _ in 0..2 {
            let stored = self.object.get().await?;
            let condition = match &stored {
                Some((old, _)) if *old == body => return Ok(Written::Unchanged),
                Some((_, etag)) => Condition::Version(etag),
                None => Condition::Absent,
            };
            if self
                .object
                .put_typed(body.clone(), "text/x-shellscript", condition)
                .await?
                .is_some()
            {
                return Ok(Written::Written);
            }
        }
        tracing::warn!(
            "{} kept changing while bgcloud wrote it; left as the other writer made it",
            self.location()
        );
        Ok(Written::Unchanged)
    }
}

/// The image digest a stored launch script starts (its `bgcloud.digest=` label).
pub fn digest_of(script: &str) -> Option<&str> {
    let start = script.find("bgcloud.digest=")? + "bgcloud.digest=".len();
    let rest = &script[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|d| !d.is_empty())
}

/// `<prefix><app>/desired/<colour>.sh`, beside `<prefix><app>/record.json`.
pub fn key(config: &Config, color: Color) -> String {
    format!("{}{}/desired/{color}.sh", config.state.prefix, config.app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_comes_from_the_label() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let script = format!(
            "docker run -d \\\n  --label bgcloud.app=shop --label bgcloud.digest={d} \\\n  x"
        );
        assert_eq!(digest_of(&script), Some(d));
        assert_eq!(digest_of("docker run x"), None);
        assert_eq!(digest_of("--label bgcloud.digest= x"), None);
    }
}
