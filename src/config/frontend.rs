//! `[frontend]`: the static site's bucket, CloudFront distribution, cache headers and upload
//! settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::check::Check;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct FrontendConfig {
    pub bucket: String,
    pub distribution_id: String,
    /// The build output; relative paths are relative to the config file's folder.
    pub dir: Option<PathBuf>,
    /// Files under this folder whose names carry a content hash (Vite's `assets/name-HASH.ext`)
    /// are immutable.
    pub hashed_dir: String,
    pub cache_control_hashed: String,
    pub cache_control_other: String,
    pub concurrency: usize,
    pub wait_timeout: Duration,
    pub poll_interval: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFrontend {
    bucket: Option<String>,
    distribution_id: Option<String>,
    dir: Option<PathBuf>,
    hashed_dir: Option<String>,
    cache_control_hashed: Option<String>,
    cache_control_other: Option<String>,
    concurrency: Option<i64>,
    wait_timeout: Option<String>,
    poll_interval: Option<String>,
}

impl RawFrontend {
    pub(super) fn validate(self, c: &Check) -> Result<FrontendConfig> {
        let bucket = c.required(
            "[frontend].bucket",
            self.bucket,
            "set it to the S3 bucket that CloudFront serves the site from",
        )?;
        let distribution_id = c.required(
            "[frontend].distribution_id",
            self.distribution_id,
            "set it to the CloudFront distribution id (e.g. \"E2ABCDEF\")",
        )?;
        if distribution_id.is_empty() || !distribution_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(c.err(
                "[frontend].distribution_id",
                format_args!("= {distribution_id:?} is not a CloudFront distribution id (letters and digits, e.g. \"E2ABCDEF\")"),
            ));
        }
        let concurrency = match self.concurrency {
            None => 16,
            Some(n) if (1..=256).contains(&n) => n as usize,
            Some(n) => {
                return Err(c.err(
                    "[frontend].concurrency",
                    format_args!("= {n} is out of range: use 1-256 parallel uploads"),
                ))
            }
        };
        let mut hashed_dir = self.hashed_dir.unwrap_or_else(|| "assets/".to_string());
        if !hashed_dir.is_empty() && !hashed_dir.ends_with('/') {
            hashed_dir.push('/');
        }
        Ok(FrontendConfig {
            bucket,
            distribution_id,
            dir: self.dir,
            hashed_dir,
            cache_control_hashed: self
                .cache_control_hashed
                .unwrap_or_else(|| "public, max-age=31536000, immutable".to_string()),
            cache_control_other: self
                .cache_control_other
                .unwrap_or_else(|| "no-cache".to_string()),
            concurrency,
            wait_timeout: c.duration(
                "[frontend].wait_timeout",
                self.wait_timeout,
                Duration::from_secs(600),
            )?,
            poll_interval: c.duration(
                "[frontend].poll_interval",
                self.poll_interval,
                Duration::from_secs(5),
            )?,
        })
    }
}
