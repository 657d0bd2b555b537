//! `bgcloud.toml`: schema and validation. Every error is found here, before any AWS call, and
//! names the key and what to do about it.
//!
//! One file per TOML section, each with its validated type and its raw serde twin: in the raw
//! types every key is optional so that a missing one gets our message, not serde's. This file
//! holds the top level (`app`, `region` and the sections) and re-exports each section's types.

mod backend;
mod canary;
mod check;
pub mod env;
#[cfg(test)]
mod example;
mod frontend;
mod gates;
mod keys;
mod notify;
mod preview;
mod state;

pub use backend::{release_task_argv, smoke_command, BackendConfig, Idle, Instances};
pub use canary::CanaryConfig;
pub use frontend::FrontendConfig;
pub use gates::{GatesConfig, OnInconclusive, ALB_PERIOD};
pub use notify::NotifyConfig;
pub use preview::PreviewConfig;
pub use state::StateConfig;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use backend::RawBackend;
use check::Check;
use frontend::RawFrontend;
use notify::RawNotify;
use state::RawState;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub app: String,
    pub region: Option<String>,
    pub state: StateConfig,
    pub backend: Option<BackendConfig>,
    pub frontend: Option<FrontendConfig>,
    pub notify: NotifyConfig,
    /// The values taken from `BGCLOUD_*` variables instead of the file.
    pub from_env: Vec<env::Override>,
}

impl Config {
    /// The `[frontend]` section, or an error saying that this command needs it.
    pub fn frontend(&self) -> Result<&FrontendConfig> {
        self.frontend.as_ref().ok_or_else(|| {
            Error::refused(format!(
                "{}: this command needs a [frontend] section (bucket, distribution_id); see \
                 docs/reference/config.md",
                self.path.display()
            ))
        })
    }

    /// The `[backend]` section, or an error saying that this command needs it.
    pub fn backend(&self) -> Result<&BackendConfig> {
        self.backend.as_ref().ok_or_else(|| {
            Error::refused(format!(
                "{}: this command needs a [backend] section (listener_arn, blue_target_group_arn, \
                 green_target_group_arn, ...); see docs/reference/config.md",
                self.path.display()
            ))
        })
    }

    /// Refuses a region the `[backend]` ARNs are not in: an ALB, its listener and its target
    /// groups are reached through their own region, and AWS's answer from another one ("not
    /// found", or an ARN it calls invalid) would not say why. `from` says where `region` came
    /// from. None found at all is refused too, saying where to set one.
    pub fn check_region(&self, region: &str, from: &str) -> Result<()> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        let arn = &backend.listener_arn;
        let Some(theirs) = arn.split(':').nth(3).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        if region.is_empty() {
            return Err(Error::refused(format!(
                "no AWS region: set region = \"{theirs}\" in {} (where the listener is), or \
                 pass --region {theirs}, or set AWS_REGION",
                self.path.display()
            )));
        }
        if region != theirs {
            return Err(Error::refused(format!(
                "the listener {arn} is in {theirs}, but bgcloud would call {region} ({from}): \
                 set region = \"{theirs}\" in {}, or pass --region {theirs}",
                self.path.display()
            )));
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::refused(format!(
                "cannot read config {}: {e}; create it (see docs/reference/config.md) \
                 or point --config / BGCLOUD_CONFIG at it",
                path.display()
            ))
        })?;
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::parse_with(&text, path, env::overrides(vars)?)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        Self::parse_with(text, path, Vec::new())
    }

    /// Parses `text` with `overrides` (from the environment) applied over it.
    pub fn parse_with(text: &str, path: &Path, overrides: Vec<env::Override>) -> Result<Config> {
        let toml_error = |e: toml::de::Error| {
            let text = e.to_string();
            let text = text.trim();
            match did_you_mean(text) {
                Some(key) => Error::refused(format!(
                    "{}: {text}\n  did you mean `{key}`?",
                    path.display()
                )),
                None => Error::refused(format!("{}: {text}", path.display())),
            }
        };
        let raw: RawConfig = if overrides.is_empty() {
            toml::from_str(text).map_err(toml_error)?
        } else {
            let mut doc: toml::Table = toml::from_str(text).map_err(toml_error)?;
            env::apply(&mut doc, &overrides)?;
            RawConfig::deserialize(doc).map_err(toml_error)?
        };
        let mut config = raw.validate(path).map_err(|e| {
            // A bad value from a variable: name the variable, not only the file.
            let from: Vec<String> = overrides
                .iter()
                .filter(|o| e.to_string().contains(&as_named(&o.key)))
                .map(|o| format!("{} was taken from {}", o.key, o.var))
                .collect();
            match from.is_empty() {
                true => e,
                false => Error::refused(format!("{e} ({})", from.join("; "))),
            }
        })?;
        config.from_env = overrides;
        Ok(config)
    }
}

/// A dotted key as validation errors name it: `backend.health_timeout` →
/// `[backend].health_timeout`, `app` → `: app ` (after the file's name).
fn as_named(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((section, name)) => format!("[{section}].{name}"),
        None => format!(": {key} "),
    }
}

/// The config file when none is named (`--config`, `BGCLOUD_CONFIG`): `bgcloud.toml` in `cwd`
/// or the nearest parent that has one, searching no higher than the repository's root (the first
/// directory with a `.git`) nor than `home`, so a command run in `web/` or `infra/` finds the
/// repository's config and never one outside it (nor `~/bgcloud.toml` from outside any
/// repository below home).
pub fn find(cwd: &Path, home: Option<&Path>) -> Result<PathBuf> {
    const NAME: &str = "bgcloud.toml";
    let mut dir = cwd;
    loop {
        if dir.join(NAME).is_file() {
            return Ok(if dir == cwd {
                PathBuf::from(NAME)
            } else {
                dir.join(NAME)
            });
        }
        let parent = dir.parent();
        if dir.join(".git").exists() || parent.is_none() || Some(dir) == home {
            return Err(Error::refused(format!(
                "no {NAME} in {} or any parent up to {}: create one (see docs/reference/config.md) \
                 or point --config / BGCLOUD_CONFIG at it",
                cwd.display(),
                dir.display()
            )));
        }
        dir = parent.unwrap_or(dir);
    }
}

/// The known key closest to a misspelled one, from serde's "unknown field `X`, expected one of
/// `a`, `b`, …" (or "expected `a` or `b`"): one a typo away (Jaro-Winkler ≥ 0.8), else None.
fn did_you_mean(error: &str) -> Option<String> {
    let rest = error.split("unknown field `").nth(1)?;
    let (unknown, expected) = rest.split_once('`')?;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|known| (strsim::jaro_winkler(unknown, known), known))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    app: Option<String>,
    region: Option<String>,
    state: Option<RawState>,
    backend: Option<RawBackend>,
    frontend: Option<RawFrontend>,
    notify: Option<RawNotify>,
}

fn is_app_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl RawConfig {
    fn validate(self, path: &Path) -> Result<Config> {
        let c = Check { path };
        let app = c.required("app", self.app, "add app = \"NAME\" ([a-z0-9-]) at the top")?;
        if !is_app_name(&app) {
            return Err(c.err(
                "app",
                format_args!("= {app:?} is not a valid name: use lowercase letters, digits and '-' (e.g. \"shop\")"),
            ));
        }
        let state = c.required(
            "[state]",
            self.state,
            "add a [state] section with bucket = \"...\" (the S3 bucket for the lock and record)",
        )?;
        let state = state.validate(&c)?;
        let backend = self.backend.map(|b| b.validate(&c)).transpose()?;
        let frontend = self.frontend.map(|f| f.validate(&c)).transpose()?;
        let notify = self
            .notify
            .map(|n| n.validate(&c))
            .transpose()?
            .unwrap_or_default();
        if backend.is_none() && frontend.is_none() {
            return Err(c.err(
                "[backend]",
                "is missing (and so is [frontend]): add at least one of them",
            ));
        }
        Ok(Config {
            path: path.to_path_buf(),
            app,
            region: self.region.filter(|r| !r.is_empty()),
            state,
            backend,
            frontend,
            notify,
            from_env: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::color::Color;
    use std::time::Duration;

    const LISTENER: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const BLUE: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-blue/73e2d6bc24d8a067";
    const GREEN: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-green/83e2d6bc24d8a067";

    fn full() -> String {
        format!(
            r#"
app = "shop"
region = "us-east-1"
[state]
bucket = "shop-deploy-state"
[backend]
listener_arn = "{LISTENER}"
blue_target_group_arn = "{BLUE}"
green_target_group_arn = "{GREEN}"
repository = "shop-api"
container_port = 3000
blue_port = 8081
green_port = 8082
instance_tags = {{ "bgcloud:app" = "shop" }}
health_timeout = "2m"
env = {{ NODE_ENV = "production" }}
secrets = {{ DATABASE_URL = "/shop/prod/DATABASE_URL" }}
[frontend]
bucket = "shop-web"
distribution_id = "E2ABCDEF"
"#
        )
    }

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("bgcloud.toml"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Err(Error::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_config_is_found_here_or_above_but_not_above_the_repository() {
        let outer = tempfile::tempdir().unwrap();
        let repo = outer.path().join("repo");
        let deep = repo.join("web/dist");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir(repo.join(".git")).unwrap();
        // Above the repository: never used.
        std::fs::write(outer.path().join("bgcloud.toml"), "").unwrap();
        let e = find(&deep, None).unwrap_err().to_string();
        assert!(
            e.contains(&format!("up to {}", repo.display())) && e.contains("--config"),
            "{e}"
        );
        std::fs::write(repo.join("bgcloud.toml"), "").unwrap();
        assert_eq!(find(&deep, None).unwrap(), repo.join("bgcloud.toml"));
        assert_eq!(find(&repo, None).unwrap(), PathBuf::from("bgcloud.toml"));
        // Outside any repository, no higher than home.
        std::fs::remove_dir(repo.join(".git")).unwrap();
        std::fs::remove_file(repo.join("bgcloud.toml")).unwrap();
        assert!(find(&deep, Some(&repo)).is_err(), "stops at home");
        assert_eq!(
            find(&deep, None).unwrap(),
            outer.path().join("bgcloud.toml")
        );
    }

    #[test]
    fn a_misspelled_key_gets_the_closest_known_one() {
        let e = err(&full().replace("health_timeout", "helth_timeout"));
        assert!(e.ends_with("did you mean `health_timeout`?"), "{e}");
        let e = err(&full().replace("[backend]", "[backnd]"));
        assert!(e.ends_with("did you mean `backend`?"), "{e}");
        // Nothing close: no guess.
        let e = err(&full().replace("health_timeout", "zzzzzz"));
        assert!(!e.contains("did you mean"), "{e}");
    }

    /// The full example with `line` added to its `[backend]`.
    fn with_backend_line(line: &str) -> String {
        full().replace(
            "health_timeout = \"2m\"",
            &format!("health_timeout = \"2m\"\n{line}"),
        )
    }

    #[test]
    fn drain_wait_max_takes_a_duration_or_zero() {
        let with = |v: &str| with_backend_line(&format!("drain_wait_max = {v}"));
        let b = |t: &str| parse(&with(t)).unwrap().backend.unwrap().drain_wait_max;
        assert_eq!(b("\"20s\""), Some(Duration::from_secs(20)));
        assert_eq!(b("\"0s\""), Some(Duration::ZERO));
        assert_eq!(
            parse(&full()).unwrap().backend.unwrap().drain_wait_max,
            None
        );
        let e = err(&with("\"soon\""));
        assert!(
            e.contains("[backend].drain_wait_max") && e.contains("not a duration"),
            "{e}"
        );
    }

    #[test]
    fn the_idle_colour_keeps_running_unless_told_to_stop_after_a_while() {
        let idle = |lines: &str| parse(&with_backend_line(lines)).map(|c| c.backend.unwrap().idle);
        assert_eq!(parse(&full()).unwrap().backend.unwrap().idle, Idle::Keep);
        assert_eq!(idle("idle = \"keep\"").unwrap(), Idle::Keep);
        assert_eq!(
            idle("idle = \"stop\"").unwrap(),
            Idle::Stop {
                after: Duration::from_secs(24 * 3600)
            }
        );
        assert_eq!(
            idle("idle = \"stop\"\nidle_after = \"0s\"").unwrap(),
            Idle::Stop {
                after: Duration::ZERO
            }
        );
        let e = err(&with_backend_line("idle = \"sleep\""));
        assert!(
            e.contains("[backend].idle is \"sleep\"") && e.contains("\"stop\""),
            "{e}"
        );
        let e = err(&with_backend_line("idle_after = \"2h\""));
        assert!(
            e.contains("[backend].idle_after only applies with idle = \"stop\""),
            "{e}"
        );
        let e = err(&with_backend_line(
            "idle = \"stop\"\nidle_after = \"a day\"",
        ));
        assert!(
            e.contains("[backend].idle_after") && e.contains("not a duration"),
            "{e}"
        );
    }

    #[test]
    fn stop_grace_is_whole_seconds_up_to_an_hour() {
        let with = |v: &str| with_backend_line(&format!("stop_grace = {v}"));
        let b = |t: &str| parse(&with(t)).unwrap().backend.unwrap().stop_grace;
        assert_eq!(
            parse(&full()).unwrap().backend.unwrap().stop_grace,
            Duration::from_secs(10),
            "Docker's own default"
        );
        assert_eq!(b("\"30s\""), Duration::from_secs(30));
        assert_eq!(b("\"0s\""), Duration::ZERO);
        assert_eq!(b("\"1500ms\""), Duration::from_secs(2), "rounded up");
        let e = err(&with("\"2h\""));
        assert!(
            e.contains("[backend].stop_grace") && e.contains("at most \"1h\""),
            "{e}"
        );
    }

    #[test]
    fn full_config_parses_with_defaults() {
        let c = parse(&full()).unwrap();
        let b = c.backend.as_ref().unwrap();
        assert_eq!(c.state.prefix, "bgcloud/");
        assert_eq!(b.health_timeout, Duration::from_secs(120));
        assert_eq!(b.poll_interval, Duration::from_secs(5));
        assert_eq!(b.target_group_arn(Color::Green), GREEN);
        assert_eq!(b.port(Color::Blue), 8081);
        assert!(matches!(&b.instances, Instances::Tags(t) if t["bgcloud:app"] == "shop"));
    }

    #[test]
    fn every_required_key_is_named_when_missing() {
        for key in [
            "app =",
            "bucket = \"shop-deploy-state\"",
            "listener_arn =",
            "blue_target_group_arn =",
            "green_target_group_arn =",
            "repository =",
            "container_port =",
            "blue_port =",
            "green_port =",
            "instance_tags =",
            "distribution_id =",
        ] {
            let text: String = full()
                .lines()
                .filter(|l| !l.starts_with(key))
                .collect::<Vec<_>>()
                .join("\n");
            let name = key.split_whitespace().next().unwrap();
            let msg = err(&text);
            assert!(
                msg.contains(name) && msg.contains("missing"),
                "{key}: {msg}"
            );
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let msg = err(&full().replace("container_port", "containerport"));
        assert!(msg.contains("containerport"), "{msg}");
    }

    #[test]
    fn blue_equal_to_green_is_refused() {
        let msg = err(&full().replace(GREEN, BLUE));
        assert!(
            msg.contains("green_target_group_arn") && msg.contains("same"),
            "{msg}"
        );
    }

    #[test]
    fn ports_must_differ_and_be_in_range() {
        assert!(err(&full().replace("8082", "8081")).contains("green_port"));
        assert!(err(&full().replace("3000", "70000")).contains("container_port"));
        assert!(err(&full().replace("3000", "0")).contains("1-65535"));
    }

    #[test]
    fn malformed_arn_and_duration_are_refused() {
        assert!(err(&full().replace(LISTENER, "arn:aws:s3:::bucket")).contains("listener_arn"));
        assert!(err(&full().replace(BLUE, LISTENER)).contains("targetgroup"));
        let msg = err(&full().replace("\"2m\"", "\"two minutes\""));
        assert!(
            msg.contains("health_timeout") && msg.contains("5m"),
            "{msg}"
        );
    }

    #[test]
    fn app_name_and_env_names_are_checked() {
        assert!(err(&full().replace("app = \"shop\"", "app = \"Shop_1\"")).contains("app"));
        assert!(err(&full().replace("NODE_ENV", "\"NODE-ENV\"")).contains("[backend].env"));
        assert!(err(&full().replace("DATABASE_URL =", "PATH =")).contains("[backend].secrets"));
    }

    #[test]
    fn secret_names_the_script_itself_would_read_are_refused() {
        for name in [
            "PATH",
            "IFS",
            "HOME",
            "SHELL",
            "ENV",
            "BASH_ENV",
            "CDPATH",
            "TMPDIR",
            "AWS_REGION",
            "LD_PRELOAD",
            "DOCKER_HOST",
            "CONTAINERS_CONF",
            "PYTHONPATH",
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "https_proxy",
            "HTTP_PROXY",
            "no_proxy",
            "path",
            "Ld_Library_Path",
        ] {
            let msg = err(&full().replace("DATABASE_URL =", &format!("{name} =")));
            assert!(
                msg.contains("[backend].secrets") && msg.contains(name) && msg.contains("rename"),
                "{name}: {msg}"
            );
        }
        for fine in [
            "DATABASE_URL",
            "API_TOKEN",
            "PROXY_TARGET",
            "PATHS",
            "HOMEPAGE_KEY",
        ] {
            let text = full().replace("DATABASE_URL =", &format!("{fine} ="));
            assert!(parse(&text).is_ok(), "{fine} is an ordinary name");
        }
    }

    use proptest::prelude::*;

    /// Every key of `full()` (the line that sets it starts with `key =`).
    const KEYS: [&str; 17] = [
        "app",
        "region",
        "bucket",
        "listener_arn",
        "blue_target_group_arn",
        "green_target_group_arn",
        "repository",
        "container_port",
        "blue_port",
        "green_port",
        "instance_tags",
        "health_timeout",
        "env",
        "secrets",
        "distribution_id",
        "poll_interval",
        "prefix",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "[ -~]{0,24}".prop_map(|s| format!("{s:?}")),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("true".to_string()),
            Just("{ \"PATH\" = \"x\" }".to_string()),
            Just("{ \"A-B\" = \"x\" }".to_string()),
            Just("1.5".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn any_text_is_parsed_or_refused_without_a_panic(text in "\\PC{0,300}") {
            let _ = Config::parse(&text, Path::new("fuzz.toml"));
        }

        #[test]
        fn a_bad_value_for_any_key_is_refused_naming_that_key(
            key in proptest::sample::select(&KEYS[..]),
            value in value(),
        ) {
            let mut text = full();
            if !text.lines().any(|l| l.starts_with(&format!("{key} ="))) {
                text = text.replace("[backend]\n", &format!("[backend]\n{key} = 1\n"));
            }
            let text: String = text
                .lines()
                .map(|l| if l.starts_with(&format!("{key} =")) { format!("{key} = {value}") } else { l.to_string() })
                .collect::<Vec<_>>()
                .join("\n");
            match Config::parse(&text, Path::new("bgcloud.toml")) {
                Ok(_) => {}
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(msg.contains(key), "{key} = {value}: {msg}");
                    prop_assert_eq!(e.exit_code(), 2);
                }
            }
        }
    }

    #[test]
    fn gates_and_canary_sections_parse_and_bad_values_are_named() {
        let with = |extra: &str| full().replace("[frontend]", &format!("{extra}\n[frontend]"));
        let c = parse(&with(
            "[backend.gates]\nwatch = \"10m\"\nalarms = [\"a\"]\nmax_5xx_rate = 0.01\n\
             max_p99_latency = \"800ms\"\n[backend.canary]\nsteps = [10, 25, 50]\n",
        ))
        .unwrap();
        let b = c.backend.unwrap();
        assert_eq!(b.gates.watch, Duration::from_secs(600));
        assert_eq!(b.gates.min_requests, 50);
        assert_eq!(b.gates.max_p99_latency, Some(Duration::from_millis(800)));
        assert_eq!(b.canary.steps, [10, 25, 50]);
        assert_eq!(
            b.canary.interval,
            Duration::from_secs(300),
            "default interval"
        );
        for (extra, key) in [
            ("[backend.gates]\nmax_5xx_rate = 5", "max_5xx_rate"),
            (
                "[backend.gates]\nmax_5xx_ratio_to_stable = -1",
                "max_5xx_ratio_to_stable",
            ),
            ("[backend.gates]\nmin_requests = 0", "min_requests"),
            ("[backend.gates]\nwatch = \"later\"", "watch"),
            ("[backend.gates]\nalrms = []", "alrms"),
            ("[backend.canary]\nsteps = [50, 10]", "steps"),
            ("[backend.canary]\nsteps = [10, 100]", "steps"),
        ] {
            let msg = err(&with(extra));
            assert!(msg.contains(key), "{extra}: {msg}");
        }
    }

    #[test]
    fn notify_names_environment_variables_and_bad_ones_are_named() {
        let with = |extra: &str| format!("{}\n[notify]\n{extra}\n", full());
        let c = parse(&with(
            "slack_webhook_env = \"SLACK_WEBHOOK_URL\"\nwebhook_url_env = \"HOOK\"",
        ))
        .unwrap();
        assert_eq!(
            c.notify,
            NotifyConfig {
                slack_webhook_env: Some("SLACK_WEBHOOK_URL".into()),
                webhook_url_env: Some("HOOK".into()),
            }
        );
        assert_eq!(parse(&full()).unwrap().notify, NotifyConfig::default());
        let msg = err(&with(
            "slack_webhook_env = \"https://hooks.slack.com/services/T0/B0/x\"",
        ));
        assert!(
            msg.contains("[notify].slack_webhook_env")
                && msg.contains("environment variable")
                && !msg.contains("hooks.slack.com"),
            "{msg}"
        );
        assert!(err(&with("webhook_url_env = \"\"")).contains("[notify].webhook_url_env"));
        assert!(err(&with("slack_webhook = \"X\"")).contains("slack_webhook"));
    }

    #[test]
    fn env_entries_never_reach_the_scripts_own_environment() {
        // env goes to docker as one quoted `-e NAME=value` word, never set in the script's
        // shell: even PATH is the container's business only.
        let c = parse(&full().replace("NODE_ENV", "PATH")).unwrap();
        assert_eq!(c.backend.unwrap().env["PATH"], "production");
    }

    #[test]
    fn preview_and_smoke_settings_parse_and_bad_values_are_named() {
        let with = |extra: &str| full().replace("[frontend]", &format!("{extra}\n[frontend]"));
        let c = parse(&with(
            "smoke = [\"curl -fsS $BGCLOUD_PREVIEW_URL\"]\n[backend.preview]\nheader = \"X-Preview\"\npriority = 7\nurl = \"https://api.example.com/\"",
        ))
        .unwrap()
        .backend
        .unwrap();
        assert_eq!(c.smoke, vec!["curl -fsS $BGCLOUD_PREVIEW_URL"]);
        assert_eq!(
            c.preview,
            Some(PreviewConfig {
                header: "X-Preview".into(),
                value: None,
                priority: Some(7),
                url: Some("https://api.example.com".into()),
            })
        );
        for (extra, says) in [
            ("smoke = [\" \"]", "[backend].smoke"),
            (
                "[backend.preview]\nvalue = \"x\"",
                "[backend.preview].header is missing",
            ),
            (
                "[backend.preview]\nheader = \"X Preview\"",
                "not an HTTP header name",
            ),
            ("[backend.preview]\nheader = \"host\"", "cannot be matched"),
            (
                &format!("[backend.preview]\nheader = \"{}\"", "X".repeat(41)),
                "1-40",
            ),
            (
                "[backend.preview]\nheader = \"X-P\"\nvalue = \"a*\"",
                "wildcards",
            ),
            (
                "[backend.preview]\nheader = \"X-P\"\npriority = 0",
                "1-49999",
            ),
            (
                "[backend.preview]\nheader = \"X-P\"\npriority = 50000",
                "1-49999",
            ),
            (
                "[backend.preview]\nheader = \"X-P\"\nurl = \"api.example.com\"",
                "not a base URL",
            ),
            (
                "[backend.preview]\nheader = \"X-P\"\nheadr = \"x\"",
                "headr",
            ),
        ] {
            let msg = err(&with(extra));
            assert!(msg.contains(says), "{extra}: {msg}");
        }
    }
}
