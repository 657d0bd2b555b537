//! The desired state: each colour's launch script as its release was recorded, kept next to the
//! deployment record (`<prefix><app>/desired/<colour>.sh`) so that an instance that boots later
//! runs it and serves both colours without any bgcloud command (see the module's user data).
//! A sleeping colour's object starts with a few lines that end the script early
//! (`script::asleep`, marked [`STOPPED_MARK`]) and keeps its launch script below them.

use crate::aws::s3::object::{Condition, Object};
use crate::aws::s3::Buckets;
use crate::config::Config;
use crate::error::Result;
use crate::model::color::Color;

/// The comment that marks a sleeping colour's desired state, followed by when it went to sleep.
pub const STOPPED_MARK: &str = "# bgcloud.stopped=";

/// A stored desired state, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The launch script (without the lines a sleeping colour's object starts with).
    pub script: String,
    /// When the colour was put to sleep; None: it runs.
    pub stopped: Option<String>,
}

impl Stored {
    pub fn parse(text: &str) -> Stored {
        let mut lines = text.splitn(3, '\n');
        let (_, mark) = (lines.next(), lines.next().unwrap_or_default());
        let since = mark
            .strip_prefix(STOPPED_MARK)
            .and_then(|rest| rest.split_whitespace().next());
        let launch = since.and_then(|_| text.split_once("\nexit 0\n").map(|(_, rest)| rest));
        match (since, launch) {
            (Some(since), Some(script)) => Stored {
                script: script.to_string(),
                stopped: Some(since.to_string()),
            },
            _ => Stored {
                script: text.to_string(),
                stopped: None,
            },
        }
    }

    /// The launch script as the one command SSM runs (its lines, without the final newline).
    pub fn launch(&self) -> Vec<String> {
        vec![self.script.trim_end_matches('\n').to_string()]
    }
}

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

    /// The stored state, parsed; None before the colour's first deploy.
    pub async fn read_stored(&self) -> Result<Option<Stored>> {
        Ok(self
            .read()
            .await?
            .map(|body| Stored::parse(&String::from_utf8_lossy(&body))))
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
    fn a_sleeping_colours_state_keeps_its_launch_script_below_the_lines_that_end_it() {
        let launch = "#!/bin/sh\n# bgcloud: start shop-green\nset -eu\ndocker run x\n";
        assert_eq!(
            Stored::parse(launch),
            Stored {
                script: launch.into(),
                stopped: None
            }
        );
        let asleep = format!(
            "#!/bin/sh\n{STOPPED_MARK}2026-12-08T01:02:03Z shop-green sleeps\necho 'x' >&2\nexit 0\n{launch}"
        );
        let stored = Stored::parse(&asleep);
        assert_eq!(stored.stopped.as_deref(), Some("2026-12-08T01:02:03Z"));
        assert_eq!(stored.script, launch);
        assert_eq!(Desired::body(&stored.launch()), launch.as_bytes());
        // The same mark further down is not a sleeping colour's (an env value, say).
        let later = format!("{launch}{STOPPED_MARK}x\nexit 0\n");
        assert_eq!(Stored::parse(&later).stopped, None);
    }

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
