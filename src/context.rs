//! What every command needs: the validated config, the AWS clients and who is acting.

use std::future::Future;
use std::time::Duration;

use crate::aws::ssm::{self, InFlight};
use crate::aws::{self, AwsOptions, Clients};
use crate::cli::Global;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::weights::{Moved, Weights};
use crate::notify::{self, Notifier};
use crate::output::Format;
use crate::state::lock::{Held, Lock};
use crate::state::record::Store;

pub struct Context {
    pub config: Config,
    pub clients: Clients,
    pub format: Format,
    /// Who is acting, for the record and the lock: the CI run, or user@host.
    pub who: String,
    /// SSM launches not known to be finished: cancelled if the run is interrupted.
    pub in_flight: InFlight,
    /// What an interruption leaves behind, said when it happens (a watch: traffic stays as is).
    pub interrupt_note: std::sync::Mutex<Option<String>>,
    /// The `[notify]` endpoints, told of each release event.
    pub notify: Notifier,
    /// Every traffic change this run made, in order: a failure part-way says where traffic went.
    pub moves: std::sync::Mutex<Vec<Moved>>,
}

impl Context {
    /// Loads and validates the config first: a bad config fails before any AWS call.
    pub async fn new(global: &Global) -> Result<Context> {
        let path = match &global.config {
            Some(path) => path.clone(),
            None => {
                let cwd = std::env::current_dir().map_err(|e| {
                    crate::error::Error::refused(format!("cannot read the current directory: {e}"))
                })?;
                let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                let found = crate::config::find(&cwd, home.as_deref())?;
                if found.is_absolute() {
                    tracing::info!("config: {}", found.display());
                }
                found
            }
        };
        let config = Config::load(&path)?;
        let opts = AwsOptions::from(global);
        let sdk = aws::sdk_config(&opts, config.region.as_deref()).await;
        let clients = Clients::new(&sdk, &opts);
        let from_env = config.from_env.iter().any(|o| o.key == "region");
        let from = match (&opts.region, &config.region) {
            (Some(_), _) => "from --region",
            (None, Some(_)) if from_env => "from BGCLOUD_REGION",
            (None, Some(_)) => "from the config's region",
            (None, None) => "from AWS_REGION or the profile",
        };
        config.check_region(&clients.region, from)?;
        let who = who();
        let notify = Notifier::new(&config.notify, &config.app, &who, |name| {
            std::env::var(name).ok()
        });
        Ok(Context {
            clients,
            config,
            format: global.output,
            who,
            notify,
            in_flight: InFlight::default(),
            interrupt_note: Default::default(),
            moves: Default::default(),
        })
    }

    /// Notes a verified traffic change.
    pub fn moved(&self, action: &'static str, from: Weights, to: Weights) {
        if let Ok(mut moves) = self.moves.lock() {
            moves.push(Moved { action, from, to });
        }
    }

    pub fn store(&self) -> Store {
        Store::new(self.clients.buckets.clone(), &self.config)
    }

    pub fn lock(&self) -> Lock {
        Lock::new(self.clients.buckets.clone(), &self.config)
    }

    /// How often to poll anything: the backend's `poll_interval`, else 2 s.
    pub fn poll_interval(&self) -> Duration {
        self.config
            .backend
            .as_ref()
            .map_or(Duration::from_secs(2), |b| b.poll_interval)
    }

    /// Runs `work` holding the deployment lock, and releases the lock on every way out:
    /// success, error, Ctrl-C or SIGTERM (exit 130; an interrupted step is abandoned where it was).
    pub async fn locked<T>(
        &self,
        reason: &str,
        wait: Duration,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.locked_for(reason, wait, self.longest(), work).await
    }

    /// [`Context::locked`] for work that may wait up to `longest` (a deploy's --health-timeout):
    /// the lock outlives it, so nobody can take it over as expired while the work still runs.
    pub async fn locked_for<T>(
        &self,
        reason: &str,
        wait: Duration,
        longest: Duration,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.hold(reason, wait, longest, false, work).await
    }

    /// [`Context::locked_for`] for a stepped rollout or a watch: the lock says it takes
    /// `promote`/`rollback` requests from other runs (see `rollout`).
    pub async fn locked_rollout<T>(
        &self,
        reason: &str,
        wait: Duration,
        longest: Duration,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.hold(reason, wait, longest, true, work).await
    }

    /// [`Context::locked`] with reads made while the lock is taken: `ahead` runs alongside the
    /// acquisition (reads that need no lock, e.g. target health), and `work` gets its result once
    /// both are done. Keeps a traffic change's critical path short (`cmd::rollback`). With a
    /// `wait` for the lock, `ahead` is read only once it is held.
    /// `rollout`: the work is a stepped rollout or a watch that may last this long, and takes
    /// promote/rollback requests from other runs (as [`Context::locked_rollout`]).
    pub async fn locked_ahead<P, T, A, F, W>(
        &self,
        reason: &str,
        wait: Duration,
        rollout: Option<Duration>,
        ahead: A,
        work: F,
    ) -> Result<T>
    where
        A: Future<Output = Result<P>>,
        F: FnOnce(P) -> W,
        W: Future<Output = Result<T>>,
    {
        let lock = self.lock();
        let longest = rollout.unwrap_or_else(|| self.longest());
        let acquire = self.acquire(&lock, reason, wait, longest, rollout.is_some());
        if !wait.is_zero() {
            // The lock may come only after a wait: what was read before it would be stale (a
            // deploy holding it may be replacing the very colour this change moves to).
            let held = acquire.await?;
            return self
                .run_held(&lock, held, async { work(ahead.await?).await })
                .await;
        }
        tokio::pin!(acquire, ahead);
        // Once the lock is held, the rest of the read goes on inside `run_held`, so an
        // interruption still releases the lock.
        let mut read = None;
        let held = loop {
            tokio::select! {
                held = &mut acquire => break held?,
                r = &mut ahead, if read.is_none() => read = Some(r),
            }
        };
        let work = async {
            let read = match read {
                Some(r) => r,
                None => ahead.await,
            };
            work(read?).await
        };
        self.run_held(&lock, held, work).await
    }

    /// The longest a changing command's work may take: the backend's health timeout.
    fn longest(&self) -> Duration {
        self.config
            .backend
            .as_ref()
            .map_or(Duration::ZERO, |b| b.health_timeout)
    }

    async fn acquire(
        &self,
        lock: &Lock,
        reason: &str,
        wait: Duration,
        longest: Duration,
        takes_requests: bool,
    ) -> Result<Held> {
        // Longer than the work can take, so only a crashed run's lock ever expires.
        let ttl = (longest * 2 + Duration::from_secs(10 * 60)).max(Duration::from_secs(30 * 60));
        lock.acquire(
            &self.who,
            reason,
            ttl,
            wait,
            self.poll_interval(),
            takes_requests,
        )
        .await
    }

    async fn hold<T>(
        &self,
        reason: &str,
        wait: Duration,
        longest: Duration,
        takes_requests: bool,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let lock = self.lock();
        let held = self
            .acquire(&lock, reason, wait, longest, takes_requests)
            .await?;
        self.run_held(&lock, held, work).await
    }

    /// Runs `work` under the lock `held`, then releases it (on an interruption too).
    async fn run_held<T>(
        &self,
        lock: &Lock,
        held: Held,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = tokio::select! {
            r = work => r,
            _ = interrupted() => Err(Error::Interrupted),
        };
        if matches!(result, Err(Error::Interrupted)) {
            // A launch still running could replace the idle colour's container after bgcloud
            // has said the deploy stopped.
            ssm::cancel(&self.clients.ssm, &self.in_flight.take()).await;
            if let Some(note) = self.interrupt_note.lock().expect("note").take() {
                tracing::warn!("{note}");
            }
        }
        if let Err(e) = lock.release(&held).await {
            tracing::warn!(
                "could not release the deployment lock {}: {e}",
                lock.location()
            );
        }
        result
    }
}

/// Resolves on Ctrl-C or SIGTERM (what CI sends when a job is cancelled).
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// "actor (GitHub Actions run URL)" in CI, else "user@host".
pub fn who() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("GITHUB_ACTIONS").as_deref() == Some("true") {
        let actor = var("GITHUB_ACTOR").unwrap_or_else(|| "github-actions".into());
        return match notify::run_url(var) {
            Some(run) => format!("{actor} ({run})"),
            None => actor,
        };
    }
    let user = var("USER")
        .or_else(|| var("USERNAME"))
        .or_else(os_user)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| var("HOSTNAME"))
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// The login name of this process's user from the system (`/etc/passwd`), for when `USER` is
/// unset (cron, some containers and CI runners).
fn os_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let name = passwd.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(':').collect();
        (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
    });
    name.or(Some(format!("uid{uid}")))
}
