//! The checks every section's validation shares: one error shape (file, key, what to do) and
//! the value kinds that recur across sections (ARNs, ports, durations, rates, variable names).
//!
//! A sibling of the sections rather than part of `config/mod.rs`: mod.rs imports each section,
//! so a section importing helpers from mod.rs would be an import cycle.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// Collects the file name into every message.
pub(super) struct Check<'a> {
    pub(super) path: &'a Path,
}

impl Check<'_> {
    pub(super) fn err(&self, key: &str, what: impl std::fmt::Display) -> Error {
        Error::refused(format!("{}: {key} {what}", self.path.display()))
    }

    pub(super) fn required<T>(&self, key: &str, value: Option<T>, hint: &str) -> Result<T> {
        value.ok_or_else(|| self.err(key, format_args!("is missing: {hint}")))
    }

    pub(super) fn arn(&self, key: &str, value: String, kind: &str) -> Result<String> {
        // arn:partition:elasticloadbalancing:region:account:<kind>/...
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && !parts[1].is_empty()
            && parts[2] == "elasticloadbalancing"
            && parts[5].starts_with(&format!("{kind}/"));
        if ok {
            Ok(value)
        } else {
            Err(self.err(
                key,
                format_args!(
                    "= {value:?} is not an ELBv2 {kind} ARN \
                     (arn:aws:elasticloadbalancing:REGION:ACCOUNT:{kind}/...): copy it from \
                     `aws elbv2 describe-{kind}s` or the Terraform output"
                ),
            ))
        }
    }

    pub(super) fn port(&self, key: &str, value: i64) -> Result<u16> {
        match u16::try_from(value) {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(self.err(
                key,
                format_args!("= {value} is not a TCP port: use 1-65535"),
            )),
        }
    }

    /// A duration that may be zero ("0s" or "0": off).
    pub(super) fn duration_or_zero(&self, key: &str, value: Option<String>) -> Result<Duration> {
        match value.as_deref() {
            None | Some("0") => Ok(Duration::ZERO),
            Some(t) if humantime::parse_duration(t).is_ok_and(|d| d.is_zero()) => {
                Ok(Duration::ZERO)
            }
            Some(_) => self.duration(key, value, Duration::ZERO),
        }
    }

    /// A positive ratio or rate.
    pub(super) fn positive(&self, key: &str, value: Option<f64>) -> Result<Option<f64>> {
        match value {
            Some(v) if !(v.is_finite() && v > 0.0) => Err(self.err(
                key,
                format_args!("= {v} must be a number above 0 (e.g. 0.01 for 1 %)"),
            )),
            other => Ok(other),
        }
    }

    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<String>,
        default: Duration,
    ) -> Result<Duration> {
        let Some(text) = value else {
            return Ok(default);
        };
        let d = humantime::parse_duration(&text).map_err(|e| {
            self.err(
                key,
                format_args!(
                    "= {text:?} is not a duration ({e}): write e.g. \"30s\", \"5m\", \"1m 30s\""
                ),
            )
        })?;
        if d.is_zero() {
            return Err(self.err(key, "must be greater than zero"));
        }
        Ok(d)
    }
}

/// An environment variable name, `[A-Za-z_][A-Za-z0-9_]*`: `[backend]` (env, secrets) and
/// `[notify]` both name variables.
pub(super) fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
