//! What every command needs: the validated config, the AWS clients and who is acting.

use crate::aws::{self, AwsOptions, Clients};
use crate::cli::Global;
use crate::config::Config;
use crate::error::Result;
use crate::output::Format;
use crate::state::Store;

pub struct Context {
    pub config: Config,
    pub clients: Clients,
    pub format: Format,
    /// Who is acting, for the record and the lock: the CI run, or user@host.
    pub who: String,
}

impl Context {
    /// Loads and validates the config first: a bad config fails before any AWS call.
    pub async fn new(global: &Global) -> Result<Context> {
        let config = Config::load(&global.config)?;
        let opts = AwsOptions {
            region: global.region.clone(),
            profile: global.profile.clone(),
            endpoint_url: global.endpoint_url.clone(),
        };
        let sdk = aws::sdk_config(&opts, config.region.as_deref()).await;
        Ok(Context {
            clients: Clients::new(&sdk, &opts),
            config,
            format: global.output,
            who: who(),
        })
    }

    pub fn store(&self) -> Store {
        Store::new(self.clients.s3.clone(), &self.config)
    }
}

/// "actor (GitHub Actions run URL)" in CI, else "user@host".
pub fn who() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("GITHUB_ACTIONS").as_deref() == Some("true") {
        let actor = var("GITHUB_ACTOR").unwrap_or_else(|| "github-actions".into());
        if let (Some(server), Some(repo), Some(run)) = (
            var("GITHUB_SERVER_URL"),
            var("GITHUB_REPOSITORY"),
            var("GITHUB_RUN_ID"),
        ) {
            return format!("{actor} ({server}/{repo}/actions/runs/{run})");
        }
        return actor;
    }
    let user = var("USER")
        .or_else(|| var("USERNAME"))
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| var("HOSTNAME"))
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}
