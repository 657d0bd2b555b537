//! `[backend.preview]`: a header route to the colour a deploy prepares, ahead of its users.

use serde::Deserialize;

use super::check::Check;
use crate::error::Result;

/// `[backend.preview]`: bgcloud's own listener rule that sends requests carrying `header` to
/// the colour a deploy prepares, so smoke tests (and people) reach it before users do.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewConfig {
    pub header: String,
    /// The header value, made per colour (`<value>-<colour>`); None: the colour's name.
    pub value: Option<String>,
    /// The rule's priority; None: picked free, just before the rule that serves the app.
    pub priority: Option<u16>,
    /// The base URL smoke tests call; None: the ALB's DNS name with the listener's protocol
    /// and port.
    pub url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreview {
    header: Option<String>,
    value: Option<String>,
    priority: Option<i64>,
    url: Option<String>,
}

impl RawPreview {
    pub(super) fn validate(self, c: &Check) -> Result<PreviewConfig> {
        let header = c.required(
            "[backend.preview].header",
            self.header,
            "set it to the header that reaches the colour being prepared, e.g. \"X-Bgcloud-Preview\"",
        )?;
        // The ALB's limits: an RFC 7230 token of at most 40 characters, and never Host (a
        // host-header condition does that).
        let token = |ch: char| ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch);
        if header.is_empty() || header.len() > 40 || !header.chars().all(token) {
            return Err(c.err(
                "[backend.preview].header",
                format_args!("= {header:?} is not an HTTP header name the ALB accepts: 1-40 letters, digits or -_.!#$%&'*+^`|~"),
            ));
        }
        if header.eq_ignore_ascii_case("host") {
            return Err(c.err(
                "[backend.preview].header",
                "= \"Host\" cannot be matched by an http-header condition: choose another name, e.g. \"X-Bgcloud-Preview\"",
            ));
        }
        // The ALB reads * and ? in a condition value as wildcards and caps it at 128; the rule
        // matches `<value>-<colour>`, so 122 is left for the value.
        if let Some(value) = &self.value {
            let plain = |ch: char| ch.is_ascii_graphic() && ch != '*' && ch != '?';
            if value.is_empty() || value.len() > 122 || !value.chars().all(plain) {
                return Err(c.err(
                    "[backend.preview].value",
                    format_args!("= {value:?} must be 1-122 visible ASCII characters without spaces, * or ? (the ALB reads those as wildcards; the rule matches it as <value>-<colour>)"),
                ));
            }
        }
        let priority = match self.priority {
            None => None,
            Some(p) if (1..=49999).contains(&p) => Some(p as u16),
            Some(p) => {
                return Err(c.err(
                    "[backend.preview].priority",
                    format_args!(
                    "= {p} is not a preview rule priority: use 1-49999 (lower is evaluated first; bgcloud's guard rule takes the number after it)"
                ),
                ))
            }
        };
        if let Some(url) = &self.url {
            let scheme = url.starts_with("http://") || url.starts_with("https://");
            if !scheme || url.chars().any(char::is_whitespace) || url.len() < 9 {
                return Err(c.err(
                    "[backend.preview].url",
                    format_args!(
                        "= {url:?} is not a base URL: write e.g. \"https://api.example.com\""
                    ),
                ));
            }
        }
        Ok(PreviewConfig {
            header,
            value: self.value,
            priority,
            url: self.url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }
}
