//! Smoke tests: shell commands run where bgcloud runs (the CI runner), after the health gate and
//! before any user traffic, told through the environment where the new colour answers. Their
//! output is streamed to stderr; a failure or a timeout stops the deploy. [`through_preview`]
//! first points the preview route at the new colour, then runs them against it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::backend::preview::{self, Route};
use crate::backend::probe;
use crate::config::BackendConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;

/// One smoke test that passed.
#[derive(Debug, Serialize)]
pub struct Passed {
    pub command: String,
    pub seconds: f64,
}

/// How long a timed-out command's shell gets to end after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);
/// How long what a command leaves behind (or a command bgcloud is interrupted in) gets.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

/// The command's process group, ended when the command ends, times out, or bgcloud is
/// interrupted (the deploy future is dropped): nothing a smoke test started outlives it.
struct Group(i32);

impl Group {
    /// Signals every process of the group; false when none is left.
    fn signal(&self, signal: i32) -> bool {
        // A pid of 0 or less would make kill(2) signal bgcloud's own group.
        if self.0 <= 0 {
            return false;
        }
        // SAFETY: kill(2) with a negative pid signals the process group the child leads.
        unsafe { libc::kill(-self.0, signal) == 0 }
    }

    /// SIGTERM, then SIGKILL to whatever is still there after [`LEFTOVER_GRACE`] (a process
    /// that ignores SIGTERM). Blocks at most that long, and only while something is left.
    fn end(&self) {
        if !self.signal(libc::SIGTERM) {
            return;
        }
        let until = Instant::now() + LEFTOVER_GRACE;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
            if !self.signal(0) {
                return;
            }
        }
        self.signal(libc::SIGKILL);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.end();
    }
}

/// Runs each command as `sh -c CMD` in `dir` (the config's folder, so `./scripts/smoke.sh`
/// means the same wherever bgcloud was started) with `env` added to bgcloud's own environment,
/// one after the other; each may take `timeout`. The first that fails ends the run with its
/// reason.
pub async fn run(
    commands: &[String],
    dir: &std::path::Path,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Vec<Passed>> {
    let mut passed = Vec::new();
    for (i, command) in commands.iter().enumerate() {
        let label = if commands.len() > 1 {
            format!("smoke {}/{}", i + 1, commands.len())
        } else {
            "smoke".to_string()
        };
        tracing::info!("{label}: `{command}` (at most {})", fmt_duration(timeout));
        let started = Instant::now();
        one(command, dir, env, timeout, &label)
            .await
            .map_err(|why| Error::failed(format!("{label} `{command}` {why}")))?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!("{label}: passed in {seconds:.1} s");
        passed.push(Passed {
            command: command.clone(),
            seconds,
        });
    }
    Ok(passed)
}

/// Runs one command; Err says how it failed.
async fn one(
    command: &str,
    dir: &std::path::Path,
    env: &[(String, String)],
    timeout: Duration,
    label: &str,
) -> std::result::Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout stops what it started too (curl in a pipeline, a server
        // in the background), and a Ctrl-C meant for bgcloud is handled by bgcloud.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not be started (sh: {e})"))?;
    let pid = child
        .id()
        .ok_or("exited before bgcloud could see it start")?;
    let group = Group(pid as i32);
    let out = tokio::spawn(stream(child.stdout.take(), label.to_string()));
    let err = tokio::spawn(stream(child.stderr.take(), label.to_string()));
    let readers = [out, err];
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|e| format!("could not be waited for: {e}"))?,
        Err(_) => {
            // SIGTERM, and `sh` reaped as soon as it goes (an unreaped zombie still counts as
            // a member of the group); then whatever is left gets SIGKILL after a short grace.
            group.signal(libc::SIGTERM);
            let _ = tokio::time::timeout(GRACE, child.wait()).await;
            tokio::task::spawn_blocking(move || drop(group)).await.ok();
            let _ = child.wait().await;
            readers.iter().for_each(|r| r.abort());
            return Err(format!(
                "did not finish within {} (--smoke-timeout) and was stopped",
                fmt_duration(timeout)
            ));
        }
    };
    // Whatever it left running in the background goes now; the output already written is
    // read to the end, but not waited for beyond a moment.
    tokio::task::spawn_blocking(move || drop(group)).await.ok();
    for reader in readers {
        let abort = reader.abort_handle();
        if tokio::time::timeout(LEFTOVER_GRACE, reader).await.is_err() {
            abort.abort();
        }
    }
    if status.success() {
        Ok(())
    } else {
        Err(match status.code() {
            Some(code) => format!("failed (exit {code})"),
            None => "was killed by a signal".to_string(),
        })
    }
}

/// Prints each line the command writes, as it comes, on stderr (through the log).
async fn stream(pipe: Option<impl AsyncRead + Unpin>, label: String) {
    let Some(pipe) = pipe else { return };
    // Bytes, not UTF-8 lines: a binary or Latin-1 line must not stop the reading (a full pipe
    // would then block the command).
    let mut lines = BufReader::new(pipe).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        tracing::info!("{label} | {}", String::from_utf8_lossy(&line).trim_end());
    }
}

fn fmt_duration(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

/// The release the smoke tests judge: the colour it was launched on, what it runs, and the
/// split it does not have yet.
pub struct Candidate<'a> {
    pub color: Color,
    pub from: Weights,
    pub image: &'a str,
    pub digest: &'a str,
    /// A path the new containers answer (the health check's): where the preview route is
    /// probed before the smoke tests.
    pub probe_path: &'a str,
}

/// Points the preview route at the new colour (read back), then runs the smoke tests against
/// it. Either failing ends the deploy with traffic untouched; the new containers stay up,
/// without user traffic, for a look through the preview route.
pub async fn through_preview(
    ctx: &Context,
    backend: &BackendConfig,
    release: &Candidate<'_>,
    commands: &[String],
    timeout: Duration,
) -> Result<(Option<Route>, Vec<Passed>)> {
    let color = release.color;
    let from = release.from;
    let stable = from.stable(color.other());
    let untouched = |e: Error, look: &str| {
        Error::failed(format!(
            "{e}\nTraffic untouched: {stable} keeps {} %; {color}'s new containers keep running \
             without user traffic{look}",
            from.get(stable)
        ))
    };
    let route = if let Some(cfg) = &backend.preview {
        let route = preview::prepare(&ctx.clients.elb, backend, cfg, &ctx.config.app, color)
            .await
            .map_err(|e| untouched(e, ""))?;
        tracing::info!(
            "preview: {} → {color} at {}",
            route.header_line(),
            route.url
        );
        Some(route)
    } else {
        None
    };
    if commands.is_empty() {
        return Ok((route, Vec::new()));
    }
    if let Some(r) = &route {
        // Smoke tests only once the route demonstrably reaches the new colour.
        let poll = backend.poll_interval.min(Duration::from_secs(1));
        probe::reaches(r, release.probe_path, poll, backend.readback_timeout * 4)
            .await
            .map_err(|e| untouched(e, ""))?;
    }
    let mut env = vec![
        ("BGCLOUD_COLOR".to_string(), color.as_str().to_string()),
        ("BGCLOUD_IMAGE".to_string(), release.image.to_string()),
        ("BGCLOUD_DIGEST".to_string(), release.digest.to_string()),
    ];
    if let Some(r) = &route {
        env.extend([
            ("BGCLOUD_PREVIEW_URL".to_string(), r.url.clone()),
            ("BGCLOUD_PREVIEW_HEADER".to_string(), r.header_line()),
            ("BGCLOUD_PREVIEW_HEADER_NAME".to_string(), r.header.clone()),
            ("BGCLOUD_PREVIEW_HEADER_VALUE".to_string(), r.value.clone()),
        ]);
    }
    let dir = match ctx.config.path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let passed = run(commands, dir, &env, timeout).await.map_err(|e| {
        let look = route.as_ref().map_or(String::new(), |r| {
            format!(
                " (reach them with `curl -H '{}' {}`)",
                r.header_line(),
                r.url
            )
        });
        untouched(e, &format!("{look}. Fix the release and deploy again"))
    })?;
    Ok((route, passed))
}
