//! `[backend]`: the ALB listener and target groups, the image repository, ports, instances,
//! timings, the container's env and secrets, the release task and smoke tests; its subsections
//! ([backend.preview], [backend.gates], [backend.canary]) have files of their own.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::canary::{CanaryConfig, RawCanary};
use super::check::{is_env_name, Check};
use super::gates::{GatesConfig, RawGates};
use super::preview::{PreviewConfig, RawPreview};
use crate::error::Result;
use crate::model::color::Color;

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
    /// How long a read-back waits for a listener or rule change to show before it counts as not
    /// applied: the ELB API is eventually consistent, and Describe* right after a write may
    /// still answer with the state before it.
    pub readback_timeout: Duration,
    /// The longest a deploy waits for a colour that just lost its traffic to finish its
    /// requests before its container is replaced; None: the target group's deregistration delay.
    pub drain_wait_max: Option<Duration>,
    /// How long after a listener write the load balancer's nodes may still route new requests
    /// by the previous weights (AWS: "a short time", not published): a colour that lost its
    /// traffic gets requests for this long after the write, so its drain counts from the end.
    pub listener_propagation: Duration,
    /// How long a replaced container gets after SIGTERM to finish the requests it holds
    /// (`docker stop -t`) before it is killed; Docker's own default is 10 s.
    pub stop_grace: Duration,
    /// What happens to the idle colour once a release has proved itself (`idle`, `idle_after`).
    pub idle: Idle,
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

/// `[backend] idle`: the idle colour keeps running (instant rollback), or sleeps once the live
/// release has held all traffic for `idle_after` (its memory back; a rollback then starts it
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    Keep,
    Stop { after: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instances {
    Tags(BTreeMap<String, String>),
    Ids(Vec<String>),
    /// An Auto Scaling group's name, found through the `aws:autoscaling:groupName` tag that
    /// the group puts on its instances.
    AutoScalingGroup(String),
}

impl BackendConfig {
    pub fn target_group_arn(&self, color: Color) -> &str {
        match color {
            Color::Blue => &self.blue_target_group_arn,
            Color::Green => &self.green_target_group_arn,
        }
    }

    /// The longest putting the idle colour to sleep can take: the rest of the listener's
    /// propagation, the drain (drain_wait_max, else AWS's default 300 s), the stop command and
    /// its grace; what a lock held around it must allow for.
    pub fn stop_longest(&self) -> Duration {
        self.listener_propagation
            + self.drain_wait_max.unwrap_or(Duration::from_secs(300))
            + self.stop_grace
            + Duration::from_secs(120)
    }

    pub fn port(&self, color: Color) -> u16 {
        match color {
            Color::Blue => self.blue_port,
            Color::Green => self.green_port,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
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
    readback_timeout: Option<String>,
    drain_wait_max: Option<String>,
    listener_propagation: Option<String>,
    stop_grace: Option<String>,
    idle: Option<String>,
    idle_after: Option<String>,
    env: Option<BTreeMap<String, String>>,
    secrets: Option<BTreeMap<String, String>>,
    gates: Option<RawGates>,
    canary: Option<RawCanary>,
    release_task: Option<Vec<String>>,
    smoke: Option<Vec<String>>,
    preview: Option<RawPreview>,
}

impl RawBackend {
    pub(super) fn validate(self, c: &Check) -> Result<BackendConfig> {
        let listener_arn = required_arn(
            c,
            "[backend].listener_arn",
            self.listener_arn,
            "listener",
            "set it to the ARN of the ALB listener that forwards to blue and green",
        )?;
        let rule_arn = self
            .rule_arn
            .map(|r| c.arn("[backend].rule_arn", r, "listener-rule"))
            .transpose()?;
        let (blue, green) =
            target_groups(c, self.blue_target_group_arn, self.green_target_group_arn)?;
        let repository = repository(c, self.repository)?;
        let container_port = required_port(
            c,
            "[backend].container_port",
            self.container_port,
            "set it to the port the app listens on inside the container",
        )?;
        let (blue_port, green_port) = host_ports(c, self.blue_port, self.green_port)?;
        let instances = instances(
            c,
            self.instance_tags,
            self.instance_ids,
            self.auto_scaling_group,
        )?;
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
        let readback_timeout = c.duration(
            "[backend].readback_timeout",
            self.readback_timeout,
            Duration::from_secs(15),
        )?;
        let drain_wait_max = drain_wait_max(c, self.drain_wait_max)?;
        let listener_propagation = match self.listener_propagation {
            None => Duration::from_secs(5),
            value => c.duration_or_zero("[backend].listener_propagation", value)?,
        };
        let stop_grace = stop_grace(c, self.stop_grace)?;
        let idle = idle(c, self.idle, self.idle_after)?;
        let env = self.env.unwrap_or_default();
        let secrets = self.secrets.unwrap_or_default();
        check_env_and_secrets(c, &env, &secrets)?;
        let gates = self.gates.unwrap_or_default().validate(c)?;
        let canary = self.canary.unwrap_or_default().validate(c)?;
        let release_task = self
            .release_task
            .map(|argv| release_task_argv(argv).map_err(|e| c.err("[backend].release_task", e)))
            .transpose()?;
        let smoke = smoke(c, self.smoke)?;
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
            readback_timeout,
            drain_wait_max,
            listener_propagation,
            stop_grace,
            idle,
            env,
            secrets,
        })
    }
}

// --- RawBackend::validate's steps, one concern each, in the order it takes them (with the two
// `required_*` helpers they share) ---

/// An ELBv2 ARN of `kind` that must be set.
fn required_arn(
    c: &Check,
    key: &str,
    value: Option<String>,
    kind: &str,
    hint: &str,
) -> Result<String> {
    let value = c.required(key, value, hint)?;
    c.arn(key, value, kind)
}

/// Blue's and green's target groups: two ARNs, and two different groups.
fn target_groups(
    c: &Check,
    blue: Option<String>,
    green: Option<String>,
) -> Result<(String, String)> {
    let blue = required_arn(
        c,
        "[backend].blue_target_group_arn",
        blue,
        "targetgroup",
        "set it to the ARN of the blue target group",
    )?;
    let green = required_arn(
        c,
        "[backend].green_target_group_arn",
        green,
        "targetgroup",
        "set it to the ARN of the green target group",
    )?;
    if blue == green {
        return Err(c.err(
            "[backend].green_target_group_arn",
            "is the same as blue_target_group_arn: blue and green need two different target groups",
        ));
    }
    Ok((blue, green))
}

/// The ECR repository: its name only, since the deploy names the tag or digest.
fn repository(c: &Check, repository: Option<String>) -> Result<String> {
    let repository = c.required(
        "[backend].repository",
        repository,
        "set it to the ECR repository name (e.g. \"shop-api\")",
    )?;
    if repository.is_empty() || repository.contains(':') || repository.contains('@') {
        return Err(c.err(
            "[backend].repository",
            format_args!("= {repository:?} is not an ECR repository name: give the name only, no tag or digest"),
        ));
    }
    Ok(repository)
}

/// A port that must be set.
fn required_port(c: &Check, key: &str, value: Option<i64>, hint: &str) -> Result<u16> {
    let value = c.required(key, value, hint)?;
    c.port(key, value)
}

/// Blue's and green's host ports: two different ones, since both colours run on every instance.
fn host_ports(c: &Check, blue: Option<i64>, green: Option<i64>) -> Result<(u16, u16)> {
    let blue_port = required_port(
        c,
        "[backend].blue_port",
        blue,
        "set it to blue's host port (e.g. 8081)",
    )?;
    let green_port = required_port(
        c,
        "[backend].green_port",
        green,
        "set it to green's host port (e.g. 8082)",
    )?;
    if blue_port == green_port {
        return Err(c.err(
            "[backend].green_port",
            format_args!("= {green_port} equals blue_port: both colours run on the same instances, so they need two host ports"),
        ));
    }
    Ok((blue_port, green_port))
}

/// Which instances run the backend: named one way only, by tags, ids or Auto Scaling group.
fn instances(
    c: &Check,
    tags: Option<BTreeMap<String, String>>,
    ids: Option<Vec<String>>,
    auto_scaling_group: Option<String>,
) -> Result<Instances> {
    let named = [tags.is_some(), ids.is_some(), auto_scaling_group.is_some()];
    if named.iter().filter(|n| **n).count() > 1 {
        return Err(c.err(
            "[backend].instance_tags",
            "instance_tags, instance_ids and auto_scaling_group each name the instances: keep one of them",
        ));
    }
    Ok(match (tags, ids, auto_scaling_group) {
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
    })
}

/// `docker stop -t` takes whole seconds: a grace is one, rounded up, at most an hour (what a
/// launch could wait for it inside its SSM command and the health timeout).
fn stop_grace(c: &Check, value: Option<String>) -> Result<Duration> {
    const KEY: &str = "[backend].stop_grace";
    let grace = match value {
        None => return Ok(Duration::from_secs(10)),
        value => c.duration_or_zero(KEY, value)?,
    };
    if grace > Duration::from_secs(3600) {
        return Err(c.err(
            KEY,
            format!(
                "{} is longer than an hour; a container that needs longer to stop would hold \
                 every launch on its instance. Use at most \"1h\" (Docker's default is \"10s\")",
                humantime::format_duration(grace)
            ),
        ));
    }
    Ok(Duration::from_secs(
        grace.as_secs() + u64::from(grace.subsec_nanos() > 0),
    ))
}

/// `idle` and `idle_after` (default 24h; "0s": as soon as the release holds all traffic).
fn idle(c: &Check, idle: Option<String>, after: Option<String>) -> Result<Idle> {
    match idle.as_deref() {
        None | Some("keep") if after.is_some() => Err(c.err(
            "[backend].idle_after",
            "only applies with idle = \"stop\": add idle = \"stop\" to let the idle colour \
             sleep, or remove idle_after",
        )),
        None | Some("keep") => Ok(Idle::Keep),
        Some("stop") => Ok(Idle::Stop {
            after: match after {
                None => Duration::from_secs(24 * 3600),
                after => c.duration_or_zero("[backend].idle_after", after)?,
            },
        }),
        Some(other) => Err(c.err(
            "[backend].idle",
            format_args!(
                "is {other:?}; write \"keep\" (both colours always run: instant rollback) or \
                 \"stop\" (the idle colour sleeps after idle_after: less memory, a rollback \
                 starts it first)"
            ),
        )),
    }
}

/// The drain wait's cap; "0s": no drain wait at all.
fn drain_wait_max(c: &Check, value: Option<String>) -> Result<Option<Duration>> {
    value
        .map(|t| c.duration_or_zero("[backend].drain_wait_max", Some(t)))
        .transpose()
}

/// The container's env and secrets: every key a variable name, no secret the launch script's own
/// commands would read, no name in both tables, every secret an SSM parameter name.
fn check_env_and_secrets(
    c: &Check,
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<()> {
    for (table, map) in [("env", env), ("secrets", secrets)] {
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
    Ok(())
}

/// The smoke test commands, each one checked by `smoke_command`.
fn smoke(c: &Check, smoke: Option<Vec<String>>) -> Result<Vec<String>> {
    let smoke = smoke.unwrap_or_default();
    if let Some(bad) = smoke.iter().find(|s| smoke_command(s).is_err()) {
        return Err(c.err(
            "[backend].smoke",
            format_args!("has {bad:?}: {}", smoke_command(bad).unwrap_err()),
        ));
    }
    Ok(smoke)
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
