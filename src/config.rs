//! `bgcloud.toml`: schema and validation. Every error is found here, before any AWS call, and
//! names the key and what to do about it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::color::Color;

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
}

/// `[notify]`: the *names* of the environment variables that hold the webhook URLs (a URL
/// carries its own secret, so it never sits in the file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// A Slack incoming webhook: `{"text": "..."}`.
    pub slack_webhook_env: Option<String>,
    /// Any endpoint that takes bgcloud's JSON event.
    pub webhook_url_env: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub listener_arn: String,
    pub rule_arn: Option<String>,
    pub blue_target_group_arn: String,
    pub green_target_group_arn: String,
    pub repository: String,
    pub container_port: u16,
    pub blue_port: u16,
    pub green_port: u16,
    pub instances: Instances,
    pub health_timeout: Duration,
    pub poll_interval: Duration,
    /// The longest a deploy waits for a colour that just lost its traffic to finish its
    /// requests before its container is replaced; None: the target group's deregistration delay.
    pub drain_wait_max: Option<Duration>,
    pub env: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub gates: GatesConfig,
    pub canary: CanaryConfig,
    /// The release task's argv after the image (migrations), run once before a deploy's
    /// containers start; None: no task.
    pub release_task: Option<Vec<String>>,
    /// Shell commands run after the health gate and before any user traffic (`--smoke`).
    pub smoke: Vec<String>,
    /// `[backend.preview]`: a header route to the colour being prepared; None: no route.
    pub preview: Option<PreviewConfig>,
}

/// `[backend.preview]`: bgcloud's own listener rule that sends requests carrying `header` to
/// the colour a deploy prepares, so smoke tests (and people) reach it before users do.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewConfig {
    pub header: String,
    /// The header value the rule matches; None: the name of the colour being prepared.
    pub value: Option<String>,
    /// The rule's priority; None: picked free, just before the rule that serves the app.
    pub priority: Option<u16>,
    /// The base URL smoke tests call; None: the ALB's DNS name with the listener's protocol
    /// and port.
    pub url: Option<String>,
}

/// `[backend.gates]`: what a watch (bake time) checks on the colour that gained traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatesConfig {
    /// Default bake time after a shift (`--watch`); zero: no watch.
    pub watch: Duration,
    /// CloudWatch alarms that must not be in ALARM.
    pub alarms: Vec<String>,
    /// HTTPCode_Target_5XX_Count ÷ RequestCount of the new colour over the watch so far.
    pub max_5xx_rate: Option<f64>,
    /// Requests the new colour must have served before the rates are judged.
    pub min_requests: u64,
    /// TargetResponseTime p99 of the new colour.
    pub max_p99_latency: Option<Duration>,
    pub max_5xx_ratio_to_stable: Option<f64>,
    pub max_p99_ratio_to_stable: Option<f64>,
}

impl GatesConfig {
    /// Whether any CloudWatch gate is configured (target health is always watched).
    pub fn reads_cloudwatch(&self) -> bool {
        !self.alarms.is_empty()
            || self.max_5xx_rate.is_some()
            || self.max_p99_latency.is_some()
            || self.max_5xx_ratio_to_stable.is_some()
            || self.max_p99_ratio_to_stable.is_some()
    }
}

/// `[backend.canary]`: the default stepped rollout of a deploy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanaryConfig {
    pub steps: Vec<u8>,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instances {
    Tags(BTreeMap<String, String>),
    Ids(Vec<String>),
    /// An Auto Scaling group's name, found through the `aws:autoscaling:groupName` tag that
    /// the group puts on its instances.
    AutoScalingGroup(String),
}

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

impl BackendConfig {
    pub fn target_group_arn(&self, color: Color) -> &str {
        match color {
            Color::Blue => &self.blue_target_group_arn,
            Color::Green => &self.green_target_group_arn,
        }
    }

    pub fn port(&self, color: Color) -> u16 {
        match color {
            Color::Blue => self.blue_port,
            Color::Green => self.green_port,
        }
    }
}

impl Config {
    /// The `[frontend]` section, or an error saying that this command needs it.
    pub fn frontend(&self) -> Result<&FrontendConfig> {
        self.frontend.as_ref().ok_or_else(|| {
            Error::refused(format!(
                "{}: this command needs a [frontend] section (bucket, distribution_id); see the \
                 README's config reference",
                self.path.display()
            ))
        })
    }

    /// The `[backend]` section, or an error saying that this command needs it.
    pub fn backend(&self) -> Result<&BackendConfig> {
        self.backend.as_ref().ok_or_else(|| {
            Error::refused(format!(
                "{}: this command needs a [backend] section (listener_arn, blue_target_group_arn, \
                 green_target_group_arn, ...); see the README's config reference",
                self.path.display()
            ))
        })
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::refused(format!(
                "cannot read config {}: {e}; create it (see the README's config reference) \
                 or point --config / BGCLOUD_CONFIG at it",
                path.display()
            ))
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| Error::refused(format!("{}: {}", path.display(), e.to_string().trim())))?;
        raw.validate(path)
    }
}

// --- raw schema: every key optional so that a missing one gets our message, not serde's ---

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    slack_webhook_env: Option<String>,
    webhook_url_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    bucket: Option<String>,
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    listener_arn: Option<String>,
    rule_arn: Option<String>,
    blue_target_group_arn: Option<String>,
    green_target_group_arn: Option<String>,
    repository: Option<String>,
    container_port: Option<i64>,
    blue_port: Option<i64>,
    green_port: Option<i64>,
    instance_tags: Option<BTreeMap<String, String>>,
    instance_ids: Option<Vec<String>>,
    auto_scaling_group: Option<String>,
    health_timeout: Option<String>,
    poll_interval: Option<String>,
    drain_wait_max: Option<String>,
    env: Option<BTreeMap<String, String>>,
    secrets: Option<BTreeMap<String, String>>,
    gates: Option<RawGates>,
    canary: Option<RawCanary>,
    release_task: Option<Vec<String>>,
    smoke: Option<Vec<String>>,
    preview: Option<RawPreview>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreview {
    header: Option<String>,
    value: Option<String>,
    priority: Option<i64>,
    url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGates {
    watch: Option<String>,
    alarms: Option<Vec<String>>,
    max_5xx_rate: Option<f64>,
    min_requests: Option<i64>,
    max_p99_latency: Option<String>,
    max_5xx_ratio_to_stable: Option<f64>,
    max_p99_ratio_to_stable: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCanary {
    steps: Option<Vec<i64>>,
    interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrontend {
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

/// Collects the file name into every message.
struct Check<'a> {
    path: &'a Path,
}

impl Check<'_> {
    fn err(&self, key: &str, what: impl std::fmt::Display) -> Error {
        Error::refused(format!("{}: {key} {what}", self.path.display()))
    }

    fn required<T>(&self, key: &str, value: Option<T>, hint: &str) -> Result<T> {
        value.ok_or_else(|| self.err(key, format_args!("is missing: {hint}")))
    }

    fn arn(&self, key: &str, value: String, kind: &str) -> Result<String> {
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

    fn port(&self, key: &str, value: i64) -> Result<u16> {
        match u16::try_from(value) {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(self.err(
                key,
                format_args!("= {value} is not a TCP port: use 1-65535"),
            )),
        }
    }

    /// A duration that may be zero ("0s": off).
    fn duration_or_zero(&self, key: &str, value: Option<String>) -> Result<Duration> {
        match value.as_deref() {
            None | Some("0") => Ok(Duration::ZERO),
            Some(_) => self.duration(key, value, Duration::ZERO),
        }
    }

    /// A positive ratio or rate.
    fn positive(&self, key: &str, value: Option<f64>) -> Result<Option<f64>> {
        match value {
            Some(v) if !(v.is_finite() && v > 0.0) => Err(self.err(
                key,
                format_args!("= {v} must be a number above 0 (e.g. 0.01 for 1 %)"),
            )),
            other => Ok(other),
        }
    }

    fn duration(&self, key: &str, value: Option<String>, default: Duration) -> Result<Duration> {
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

fn is_app_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether setting `name` in the launch script's environment would change the script's own
/// commands (the shell, the AWS CLI, docker/podman, Python under the CLI, TLS and proxies).
fn changes_the_script(name: &str) -> bool {
    const EXACT: [&str; 10] = [
        "PATH",
        "IFS",
        "HOME",
        "SHELL",
        "ENV",
        "BASH_ENV",
        "CDPATH",
        "TMPDIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ];
    const PREFIXES: [&str; 6] = [
        "AWS_",
        "LD_",
        "DOCKER_",
        "CONTAINERS_",
        "PYTHON",
        "SSL_CERT_",
    ];
    let upper = name.to_ascii_uppercase();
    EXACT.contains(&upper.as_str())
        || PREFIXES.iter().any(|p| upper.starts_with(p))
        || upper.ends_with("_PROXY")
}

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
        let bucket = c.required(
            "[state].bucket",
            state.bucket,
            "set it to the S3 bucket that holds the lock and deployment record",
        )?;
        if bucket.is_empty() {
            return Err(c.err("[state].bucket", "is empty: name the S3 bucket"));
        }
        let mut prefix = state.prefix.unwrap_or_else(|| "bgcloud/".to_string());
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
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
            state: StateConfig { bucket, prefix },
            backend,
            frontend,
            notify,
        })
    }
}

impl RawNotify {
    fn validate(self, c: &Check) -> Result<NotifyConfig> {
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

impl RawBackend {
    fn validate(self, c: &Check) -> Result<BackendConfig> {
        let listener_arn = c.required(
            "[backend].listener_arn",
            self.listener_arn,
            "set it to the ARN of the ALB listener that forwards to blue and green",
        )?;
        let listener_arn = c.arn("[backend].listener_arn", listener_arn, "listener")?;
        let rule_arn = self
            .rule_arn
            .map(|r| c.arn("[backend].rule_arn", r, "listener-rule"))
            .transpose()?;
        let blue = c.required(
            "[backend].blue_target_group_arn",
            self.blue_target_group_arn,
            "set it to the ARN of the blue target group",
        )?;
        let blue = c.arn("[backend].blue_target_group_arn", blue, "targetgroup")?;
        let green = c.required(
            "[backend].green_target_group_arn",
            self.green_target_group_arn,
            "set it to the ARN of the green target group",
        )?;
        let green = c.arn("[backend].green_target_group_arn", green, "targetgroup")?;
        if blue == green {
            return Err(c.err(
                "[backend].green_target_group_arn",
                "is the same as blue_target_group_arn: blue and green need two different target groups",
            ));
        }
        let repository = c.required(
            "[backend].repository",
            self.repository,
            "set it to the ECR repository name (e.g. \"shop-api\")",
        )?;
        if repository.is_empty() || repository.contains(':') || repository.contains('@') {
            return Err(c.err(
                "[backend].repository",
                format_args!("= {repository:?} is not an ECR repository name: give the name only, no tag or digest"),
            ));
        }
        let container_port = c.required(
            "[backend].container_port",
            self.container_port,
            "set it to the port the app listens on inside the container",
        )?;
        let container_port = c.port("[backend].container_port", container_port)?;
        let blue_port = c.required(
            "[backend].blue_port",
            self.blue_port,
            "set it to blue's host port (e.g. 8081)",
        )?;
        let blue_port = c.port("[backend].blue_port", blue_port)?;
        let green_port = c.required(
            "[backend].green_port",
            self.green_port,
            "set it to green's host port (e.g. 8082)",
        )?;
        let green_port = c.port("[backend].green_port", green_port)?;
        if blue_port == green_port {
            return Err(c.err(
                "[backend].green_port",
                format_args!("= {green_port} equals blue_port: both colours run on the same instances, so they need two host ports"),
            ));
        }
        let named = [
            self.instance_tags.is_some(),
            self.instance_ids.is_some(),
            self.auto_scaling_group.is_some(),
        ];
        if named.iter().filter(|n| **n).count() > 1 {
            return Err(c.err(
                "[backend].instance_tags",
                "instance_tags, instance_ids and auto_scaling_group each name the instances: keep one of them",
            ));
        }
        let instances = match (self.instance_tags, self.instance_ids, self.auto_scaling_group) {
            (Some(tags), None, None) if !tags.is_empty() => Instances::Tags(tags),
            (None, Some(ids), None) if !ids.is_empty() => {
                if let Some(bad) = ids.iter().find(|id| !id.starts_with("i-")) {
                    return Err(c.err(
                        "[backend].instance_ids",
                        format_args!("has {bad:?}, which is not an EC2 instance id (i-...)"),
                    ));
                }
                Instances::Ids(ids)
            }
            (None, None, Some(name)) => {
                // Auto Scaling group names: 1-255 characters, no colon (it would be an ARN).
                if name.is_empty() || name.len() > 255 || name.contains(':') {
                    return Err(c.err(
                        "[backend].auto_scaling_group",
                        format_args!("= {name:?} is not an Auto Scaling group name: give the group's name (not its ARN)"),
                    ));
                }
                Instances::AutoScalingGroup(name)
            }
            _ => {
                return Err(c.err(
                    "[backend].instance_tags",
                    "is missing: set instance_tags = { \"bgcloud:app\" = \"NAME\" }, instance_ids = [\"i-...\"] or auto_scaling_group = \"NAME\"",
                ))
            }
        };
        let health_timeout = c.duration(
            "[backend].health_timeout",
            self.health_timeout,
            Duration::from_secs(300),
        )?;
        let poll_interval = c.duration(
            "[backend].poll_interval",
            self.poll_interval,
            Duration::from_secs(5),
        )?;
        // "0s" is allowed: no drain wait at all.
        let drain_wait_max = self
            .drain_wait_max
            .map(|t| match humantime::parse_duration(&t) {
                Ok(d) if d.is_zero() => Ok(Duration::ZERO),
                _ => c.duration("[backend].drain_wait_max", Some(t), Duration::ZERO),
            })
            .transpose()?;
        let env = self.env.unwrap_or_default();
        let secrets = self.secrets.unwrap_or_default();
        for (table, map) in [("env", &env), ("secrets", &secrets)] {
            if let Some(bad) = map.keys().find(|k| !is_env_name(k)) {
                return Err(c.err(
                    &format!("[backend].{table}"),
                    format_args!("has {bad:?}, which is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
                ));
            }
        }
        // The launch script sets each secret as a shell variable of its own and exports it
        // before calling aws and docker: a name those programs (or the shell) read would
        // change what the script does.
        if let Some(bad) = secrets.keys().find(|k| changes_the_script(k)) {
            return Err(c.err(
                "[backend].secrets",
                format_args!(
                    "has {bad}, which the launch script's own shell, aws or docker would read \
                     (PATH, IFS, HOME, SHELL, ENV, BASH_ENV, CDPATH, TMPDIR, AWS_*, LD_*, \
                     DOCKER_*, CONTAINERS_*, PYTHON*, SSL_CERT_*, REQUESTS_CA_BUNDLE, \
                     CURL_CA_BUNDLE, *_proxy are refused): rename it, and read the new name in \
                     the app"
                ),
            ));
        }
        if let Some(both) = env.keys().find(|k| secrets.contains_key(*k)) {
            return Err(c.err(
                "[backend].secrets",
                format_args!("sets {both} which env sets too: keep it in one of them"),
            ));
        }
        if let Some((name, param)) = secrets
            .iter()
            .find(|(_, p)| p.is_empty() || p.chars().any(char::is_whitespace))
        {
            return Err(c.err(
                "[backend].secrets",
                format_args!("{name} = {param:?} is not an SSM parameter name: give the name (e.g. \"/shop/prod/{name}\"), never the value"),
            ));
        }
        let gates = self.gates.unwrap_or_default().validate(c)?;
        let canary = self.canary.unwrap_or_default().validate(c)?;
        let release_task = self
            .release_task
            .map(|argv| release_task_argv(argv).map_err(|e| c.err("[backend].release_task", e)))
            .transpose()?;
        let smoke = self.smoke.unwrap_or_default();
        if let Some(bad) = smoke.iter().find(|s| smoke_command(s).is_err()) {
            return Err(c.err(
                "[backend].smoke",
                format_args!("has {bad:?}: {}", smoke_command(bad).unwrap_err()),
            ));
        }
        let preview = self.preview.map(|p| p.validate(c)).transpose()?;
        Ok(BackendConfig {
            gates,
            canary,
            release_task,
            smoke,
            preview,
            listener_arn,
            rule_arn,
            blue_target_group_arn: blue,
            green_target_group_arn: green,
            repository,
            container_port,
            blue_port,
            green_port,
            instances,
            health_timeout,
            poll_interval,
            drain_wait_max,
            env,
            secrets,
        })
    }
}

/// A release task's argv: at least the command, no empty command, no NUL (which no argv can
/// hold).
pub fn release_task_argv(argv: Vec<String>) -> std::result::Result<Vec<String>, String> {
    match argv.first() {
        None => Err("is empty: give the command and its arguments, e.g. [\"npm\", \"run\", \"migrate\"], or leave it out".into()),
        Some(cmd) if cmd.trim().is_empty() => {
            Err("starts with an empty command: give the program to run first".into())
        }
        _ if argv.iter().any(|a| a.contains('\0')) => {
            Err("has a NUL character, which no argument can hold".into())
        }
        _ => Ok(argv),
    }
}

/// A smoke test command: shell text, not empty, no NUL (which no argument can hold).
pub fn smoke_command(cmd: &str) -> std::result::Result<(), &'static str> {
    if cmd.trim().is_empty() {
        Err("a smoke test command is empty: give a shell command, e.g. curl -fsS -H \"$BGCLOUD_PREVIEW_HEADER\" \"$BGCLOUD_PREVIEW_URL/health\"")
    } else if cmd.contains('\0') {
        Err("a smoke test command has a NUL character, which no shell command can hold")
    } else {
        Ok(())
    }
}

impl RawPreview {
    fn validate(self, c: &Check) -> Result<PreviewConfig> {
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
        // The ALB reads * and ? in a condition value as wildcards and caps it at 128.
        if let Some(value) = &self.value {
            let plain = |ch: char| ch.is_ascii_graphic() && ch != '*' && ch != '?';
            if value.is_empty() || value.len() > 128 || !value.chars().all(plain) {
                return Err(c.err(
                    "[backend.preview].value",
                    format_args!("= {value:?} must be 1-128 visible ASCII characters without spaces, * or ? (the ALB reads those as wildcards)"),
                ));
            }
        }
        let priority = match self.priority {
            None => None,
            Some(p) if (1..=50000).contains(&p) => Some(p as u16),
            Some(p) => {
                return Err(c.err(
                    "[backend.preview].priority",
                    format_args!(
                    "= {p} is not a listener rule priority: use 1-50000 (lower is evaluated first)"
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

impl RawGates {
    fn validate(self, c: &Check) -> Result<GatesConfig> {
        let min_requests = match self.min_requests {
            None => 50,
            Some(n) if n >= 1 => n as u64,
            Some(n) => {
                return Err(c.err(
                    "[backend.gates].min_requests",
                    format_args!("= {n} must be at least 1"),
                ))
            }
        };
        if let Some(bad) = self.alarms.iter().flatten().find(|a| a.trim().is_empty()) {
            return Err(c.err(
                "[backend.gates].alarms",
                format_args!("has {bad:?}: give CloudWatch alarm names"),
            ));
        }
        if let Some(rate) = self.max_5xx_rate.filter(|r| *r >= 1.0) {
            return Err(c.err(
                "[backend.gates].max_5xx_rate",
                format_args!("= {rate} is a share of requests: use a value below 1 (0.01 is 1 %)"),
            ));
        }
        Ok(GatesConfig {
            watch: c.duration_or_zero("[backend.gates].watch", self.watch)?,
            alarms: self.alarms.unwrap_or_default(),
            max_5xx_rate: c.positive("[backend.gates].max_5xx_rate", self.max_5xx_rate)?,
            min_requests,
            max_p99_latency: self
                .max_p99_latency
                .map(|t| c.duration("[backend.gates].max_p99_latency", Some(t), Duration::ZERO))
                .transpose()?,
            max_5xx_ratio_to_stable: c.positive(
                "[backend.gates].max_5xx_ratio_to_stable",
                self.max_5xx_ratio_to_stable,
            )?,
            max_p99_ratio_to_stable: c.positive(
                "[backend.gates].max_p99_ratio_to_stable",
                self.max_p99_ratio_to_stable,
            )?,
        })
    }
}

impl RawCanary {
    fn validate(self, c: &Check) -> Result<CanaryConfig> {
        let steps = match self.steps {
            None => Vec::new(),
            Some(steps) => crate::model::weights::steps(&steps)
                .map_err(|e| c.err("[backend.canary].steps", e))?,
        };
        let interval = c.duration(
            "[backend.canary].interval",
            self.interval,
            Duration::from_secs(300),
        )?;
        Ok(CanaryConfig { steps, interval })
    }
}

impl RawFrontend {
    fn validate(self, c: &Check) -> Result<FrontendConfig> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn drain_wait_max_takes_a_duration_or_zero() {
        let with = |v: &str| {
            full().replace(
                "health_timeout = \"2m\"",
                &format!("health_timeout = \"2m\"\ndrain_wait_max = {v}"),
            )
        };
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
                "1-50000",
            ),
            (
                "[backend.preview]\nheader = \"X-P\"\npriority = 50001",
                "1-50000",
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
