//! `[notify]`: where release notifications go, as the names of the environment variables that
//! hold the webhook URLs.

use serde::Deserialize;

use super::check::{is_env_name, Check};
use crate::error::Result;

/// `[notify]`: the *names* of the environment variables that hold the webhook URLs (a URL
/// carries its own secret, so it never sits in the file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// A Slack incoming webhook: `{"text": "..."}`.
    pub slack_webhook_env: Option<String>,
    /// Any endpoint that takes bgcloud's JSON event.
    pub webhook_url_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    slack_webhook_env: Option<String>,
    webhook_url_env: Option<String>,
}

impl RawNotify {
    pub(super) fn validate(self, c: &Check) -> Result<NotifyConfig> {
        for (key, name) in [
            ("[notify].slack_webhook_env", &self.slack_webhook_env),
            ("[notify].webhook_url_env", &self.webhook_url_env),
        ] {
            // The value is not echoed: a URL put here by mistake must not reach a CI log.
            if name.as_deref().is_some_and(|n| !is_env_name(n)) {
                return Err(c.err(
                    key,
                    "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*): name the \
                     variable that holds the URL (e.g. \"SLACK_WEBHOOK_URL\"), never the URL itself",
                ));
            }
        }
        Ok(NotifyConfig {
            slack_webhook_env: self.slack_webhook_env,
            webhook_url_env: self.webhook_url_env,
        })
    }
}
