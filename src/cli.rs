//! Command-line interface: global flags and one struct per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::color::Color;
use crate::output::{ColorChoice, Format};

#[derive(Debug, Parser)]
#[command(
    name = "bgcloud",
    // `0.1.0 (abc1234 2026-12-07)`: the commit and its date, from build.rs.
    version = env!("VERSION_WITH_COMMIT"),
    about = "Zero-downtime blue/green releases on AWS: the ALB is the traffic switch",
    after_help = "Exit codes: 0 success, 1 the operation failed, 2 bad input or refused (nothing changed), \
                  3 another deployment holds the lock, 130 interrupted (`status --watch` ends on \
                  Ctrl-C with 0)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Config file [default: bgcloud.toml here or in the nearest parent directory, up to the
    /// repository's root]
    #[arg(long, global = true, env = "BGCLOUD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// AWS region (else the config's `region`, else the usual AWS chain).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile from ~/.aws/config.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Send every AWS request to this endpoint (LocalStack, the local emulator).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Result format on stdout.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Attempts per AWS call before giving up on throttling and 5xx (the SDK's standard retry
    /// mode: exponential backoff with jitter, from 0.5 s up to 20 s between attempts).
    #[arg(long, global = true, env = "BGCLOUD_MAX_ATTEMPTS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_attempts: u32,
    /// More detail on stderr (-v: bgcloud's debug log, -vv: the AWS SDK's too).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colour on stderr: auto (on a terminal, unless NO_COLOR is set and not empty), always,
    /// never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write bgcloud.toml from what the account already has (read-only: the load balancer, its
    /// listener and target groups, the instances, the repository), or from the Terraform
    /// module's output.
    Init(InitArgs),
    /// Show the traffic split, target health per colour and what each colour runs (--watch:
    /// keep showing it until Ctrl-C).
    Status(StatusArgs),
    /// Release an image on the idle colour, wait until healthy, then move traffic to it.
    Deploy(DeployArgs),
    /// Move traffic: WEIGHT % to one colour, the rest to the other.
    Shift(ShiftArgs),
    /// Finish a canary: all traffic to the colour that has the smaller share.
    Promote(PromoteArgs),
    /// All traffic back to the previous stable colour, at once.
    Rollback(TrafficArgs),
    /// Bring every instance in line with the desired state: relaunch missing or stale colour
    /// containers, register missing targets. Never moves traffic.
    Sync(SyncArgs),
    /// Put the idle colour to sleep (its containers stopped, its memory back) or wake it.
    #[command(subcommand)]
    Idle(IdleCommand),
    /// The recorded deployments and traffic changes, newest first.
    History(HistoryArgs),
    /// Inspect or break the deployment lock.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Static site releases on S3 + CloudFront.
    #[command(subcommand)]
    Frontend(FrontendCommand),
    /// Print a completion script for SHELL (e.g. `source <(bgcloud completions bash)`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; e.g. `bgcloud man | man -l -`).
    Man,
}

impl Command {
    /// The name of a command that changes something (not a dry run), for the step summary;
    /// None for read-only ones.
    pub fn changes(&self) -> Option<&'static str> {
        match self {
            Command::Deploy(a) if !a.dry_run => Some("deploy"),
            Command::Shift(a) if !a.dry_run.dry_run => Some("shift"),
            Command::Promote(a) if !a.dry_run.dry_run => Some("promote"),
            Command::Rollback(a) if !a.dry_run.dry_run => Some("rollback"),
            Command::Sync(a) if !a.dry_run => Some("sync"),
            Command::Idle(IdleCommand::Stop(a)) if !a.dry_run.dry_run => Some("idle stop"),
            Command::Idle(IdleCommand::Start(a)) if !a.dry_run.dry_run => Some("idle start"),
            Command::Lock(LockCommand::Release { .. }) => Some("lock release"),
            Command::Frontend(FrontendCommand::Deploy(a)) if !a.dry_run => Some("frontend deploy"),
            Command::Frontend(FrontendCommand::Rollback(a)) if !a.dry_run.dry_run => {
                Some("frontend rollback")
            }
            Command::Frontend(FrontendCommand::Prune(a)) if !a.dry_run.dry_run => {
                Some("frontend prune")
            }
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FrontendCommand {
    /// Upload the build as a new release, switch CloudFront to it, invalidate.
    Deploy(FrontendDeployArgs),
    /// List releases in the bucket; the live one is marked.
    Releases,
    /// Switch CloudFront back to the previous release (or --to ID).
    Rollback(FrontendRollbackArgs),
    /// Delete old releases, keeping the newest N and always the live and previous ones.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct FrontendDeployArgs {
    /// The build folder (default: [frontend].dir).
    pub dir: Option<PathBuf>,
    /// Release id (default: UTC timestamp and a short content hash).
    #[arg(long)]
    pub release_id: Option<String>,
    /// Show what would be uploaded, copied and invalidated; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not wait for the invalidation to complete.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct FrontendRollbackArgs {
    /// The release to go back to (default: the previous one).
    #[arg(long)]
    pub to: Option<String>,
    /// Do not wait for the invalidation to complete.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// How many of the newest releases to keep (the live and previous ones are always kept).
    #[arg(long)]
    pub keep: usize,
    #[command(flatten)]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Keep polling until Ctrl-C: on a terminal the status is redrawn in place; otherwise one
    /// line per change (with --output json, one compact object per change).
    #[arg(long)]
    pub watch: bool,
    /// How often --watch polls (at least 1s; default 5s: each poll costs ELB calls that share
    /// a throttling budget with a running deploy).
    #[arg(long, value_name = "DURATION", requires = "watch")]
    pub every: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Image tag in the configured ECR repository (e.g. v1.4.2), or sha256:<digest>.
    #[arg(long)]
    pub image: String,
    /// Send only N % (1-99) to the new colour; finish with `bgcloud promote`.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub canary: Option<String>,
    /// How long to wait for the container and the targets (default: [backend].health_timeout).
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Shift in steps: these shares in turn (e.g. 10,25,50), each held for --interval while
    /// the gates are watched, then 100 (unless --pause). Default: [backend.canary].steps.
    #[arg(long, value_name = "N,N,...")]
    pub steps: Option<String>,
    /// How long each step is held (default: [backend.canary].interval, else 5m).
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Stop at the last step; `bgcloud promote` continues.
    #[arg(long)]
    pub pause: bool,
    /// Run this once, on one instance, with the new image before its containers start
    /// (migrations); split as shell words. Default: [backend].release_task.
    #[arg(long, value_name = "CMD")]
    pub release_task: Option<String>,
    /// How long the release task may run (default 15m).
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub release_task_timeout: String,
    /// Run this shell command (`sh -c CMD`, here, not on an instance) after the health gate and
    /// before any user traffic; repeatable. BGCLOUD_PREVIEW_URL and BGCLOUD_PREVIEW_HEADER say
    /// how to reach the new colour. Default: [backend].smoke.
    #[arg(long, value_name = "CMD")]
    pub smoke: Vec<String>,
    /// How long each smoke test may run (default 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub smoke_timeout: String,
    /// Print the plan (colour, digest, instances, script, weights) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// How long each relaunch may take to become healthy (default: [backend].health_timeout).
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Ask the instances what they run and print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The ALB in front of the app: its name or ARN.
    #[arg(long, value_name = "NAME|ARN", conflicts_with = "from_terraform")]
    pub load_balancer: Option<String>,
    /// The listener bgcloud drives, by port (default: the only one that forwards; HTTPS first).
    #[arg(long, value_name = "PORT")]
    pub listener_port: Option<i32>,
    /// The ECR repository of the app's images (default: the only one in the account and
    /// region).
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    /// The S3 bucket for bgcloud's record, lock and desired state (versioning on).
    #[arg(long, value_name = "NAME")]
    pub state_bucket: Option<String>,
    /// A CloudFront distribution serving the frontend from one S3 bucket: adds [frontend].
    #[arg(long, value_name = "ID")]
    pub distribution: Option<String>,
    /// The app's name (default: the load balancer's, without a trailing -alb).
    #[arg(long)]
    pub app: Option<String>,
    /// The port the app listens on inside its container (AWS cannot tell).
    #[arg(long, default_value_t = 3000, value_name = "PORT")]
    pub container_port: u16,
    /// Write the module's `bgcloud_toml` output (`terraform output -json` in DIR) instead.
    #[arg(long, value_name = "DIR")]
    pub from_terraform: Option<PathBuf>,
    /// Replace an existing config file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum IdleCommand {
    /// Now, whatever [backend].idle_after says: the idle colour's targets out of its group
    /// (drained), its containers stopped (kept), marked stopped so that no instance starts it.
    /// A rollback then starts it first.
    Stop(IdleArgs),
    /// Start the stopped idle colour again and wait until it is healthy; traffic is not moved.
    Start(IdleArgs),
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// How long the start may take to become healthy (default: [backend].health_timeout).
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    #[command(flatten)]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// After the shift, watch the colour that gained traffic (target health and the
    /// [backend.gates]) this long, and put all traffic back on the other one if it fails
    /// (default: [backend.gates].watch; 0: no watch).
    #[arg(long, value_name = "DURATION")]
    pub watch: Option<String>,
    /// A gate that cannot be read (an alarm that does not exist, no permission) does not fail
    /// the watch; it is reported and skipped.
    #[arg(long)]
    pub ignore_missing_metrics: bool,
}

impl WatchArgs {
    /// `--watch`, else `default` (`[backend.gates].watch`); `0` is no watch.
    pub fn duration(
        &self,
        default: std::time::Duration,
    ) -> crate::error::Result<std::time::Duration> {
        match &self.watch {
            Some(text) if text == "0" => Ok(std::time::Duration::ZERO),
            Some(text) => parse_duration("--watch", text),
            None => Ok(default),
        }
    }
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub force: ForceArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct DryRun {
    /// Read what is live, make the command's checks and print the exact change; change
    /// nothing (no lock, no write, no notification).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct LockWait {
    /// Wait this long for another deployment's lock instead of exiting 3.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub lock_wait: String,
}

#[derive(Debug, Args)]
pub struct TrafficArgs {
    #[command(flatten)]
    pub force: ForceArgs,
    #[command(flatten)]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many entries to show, newest first (at least 1).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Who holds the lock, why, since when, until when.
    Status,
    /// Delete the lock whoever holds it (for a run that died). Needs --force.
    Release {
        /// Required: deleting a lock that a live run holds lets two runs change traffic at
        /// once; check `bgcloud lock status` first.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct ShiftArgs {
    /// The colour that gets WEIGHT %.
    #[arg(long, value_enum)]
    pub to: Color,
    /// Percentage (0-100) for that colour; the other colour gets the rest.
    #[arg(long, default_value = "100", allow_hyphen_values = true)]
    pub weight: String,
    #[command(flatten)]
    pub force: ForceArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub lock: LockWait,
}

#[derive(Debug, Args)]
pub struct ForceArgs {
    /// Move traffic even to a colour with no healthy targets, or back to a colour a watch
    /// rolled back automatically.
    #[arg(long)]
    pub force: bool,
}

/// Parses a duration flag, naming the flag in the error.
pub fn parse_duration(flag: &str, text: &str) -> crate::error::Result<std::time::Duration> {
    humantime::parse_duration(text).map_err(|e| {
        crate::error::Error::refused(format!(
            "{flag} {text:?} is not a duration ({e}): write e.g. 30s, 5m, 1h"
        ))
    })
}
