//! `[state]`: the S3 bucket (and key prefix) that holds the deployment lock and record.

use serde::Deserialize;

use super::check::Check;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct StateConfig {
    pub bucket: String,
    pub prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    bucket: Option<String>,
    prefix: Option<String>,
}

impl RawState {
    pub(super) fn validate(self, c: &Check) -> Result<StateConfig> {
        let bucket = c.required(
            "[state].bucket",
            self.bucket,
            "set it to the S3 bucket that holds the lock and deployment record",
        )?;
        if bucket.is_empty() {
            return Err(c.err("[state].bucket", "is empty: name the S3 bucket"));
        }
        let mut prefix = self.prefix.unwrap_or_else(|| "bgcloud/".to_string());
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(StateConfig { bucket, prefix })
    }
}
