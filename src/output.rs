//! Results go to stdout as text or JSON; progress and logs go to stderr.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// `--color`: whether stderr gets colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set and not empty (<https://no-color.org>).
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    fn on_stderr(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// Whether stderr is coloured, decided once by [`init_logging`] (plain before it).
static COLOR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn colour() -> bool {
    COLOR.get().copied().unwrap_or(false)
}

/// A failure as `--output json` prints it on stdout: `{"error": {…}}`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ErrorReport {
    /// `failed`, `refused`, `locked`, `inconclusive`, `interrupted`, or `usage` (a flag or
    /// argument the command line parser refused).
    pub kind: String,
    /// What failed (the text's first line).
    pub message: String,
    /// What to do next (the text's further lines), when it says.
    pub hint: Option<String>,
    pub exit_code: u8,
    /// The first ARN or `s3://` location the message names, when it names one.
    pub resource: Option<String>,
    /// When the run moved traffic before it failed: each verified move (`action`, `from`, `to`)
    /// and `last_verified`, where the last of them left it (the message says when a later write's
    /// outcome is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<serde_json::Value>,
}

impl ErrorReport {
    pub fn new(kind: &str, text: &str, exit_code: u8) -> ErrorReport {
        let text = text.trim().trim_start_matches("error: ");
        let mut lines = text.lines();
        let message = lines.next().unwrap_or_default().trim().to_string();
        let hint: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
        let resource = message
            .split_whitespace()
            .map(|w| w.trim_end_matches([':', ',', '.', ')', ';']))
            .find(|w| w.starts_with("arn:") || w.starts_with("s3://"))
            .map(str::to_string);
        ErrorReport {
            kind: kind.to_string(),
            message,
            hint: (!hint.is_empty()).then(|| hint.join(" ")),
            exit_code,
            resource,
            traffic: None,
        }
    }

    pub fn of(e: &Error) -> ErrorReport {
        ErrorReport::new(e.kind(), &e.to_string(), e.exit_code())
    }
}

/// With `--output json`, a failure is one JSON object on stdout as well as its text on stderr,
/// so a step that parses stdout always gets a document.
/// The last line of every `--dry-run` result in text.
pub const DRY_RUN_DONE: &str = "dry run: nothing was changed; run it without --dry-run to apply";

pub fn print_error(format: Format, report: &ErrorReport) {
    if format != Format::Json {
        return;
    }
    if let Ok(text) = serde_json::to_string_pretty(&serde_json::json!({ "error": report })) {
        to_stdout(format!("{text}\n").as_bytes());
    }
}

/// Prints a command's result: its `Display` form, or one JSON object.
pub fn print<T: Display + Serialize>(format: Format, value: &T) -> Result<()> {
    let text = match format {
        Format::Text => value.to_string(),
        Format::Json => serde_json::to_string_pretty(value)
            .map_err(|e| Error::failed(format!("serializing the result: {e}")))?,
    };
    to_stdout(format!("{}\n", text.trim_end()).as_bytes());
    Ok(())
}

/// Writes `bytes` to stdout as they are. A closed pipe (`bgcloud status | head -1`) is not an
/// error worth a stack of messages: it is ignored.
pub fn to_stdout(bytes: &[u8]) {
    let _ = std::io::stdout().lock().write_all(bytes);
}

/// Sets up logging to stderr: bgcloud's progress at info, -v for debug (and AWS errors with the
/// SDK's whole chain), -vv for the SDK too. `RUST_LOG` overrides. Coloured as `color` says.
pub fn init_logging(verbose: u8, color: ColorChoice) {
    use tracing_subscriber::EnvFilter;
    crate::error::set_verbose(verbose > 0);
    let colour = *COLOR.get_or_init(|| color.on_stderr());
    let default = match verbose {
        // The credential chain warns for each provider it tried (~1,000 characters each); the
        // error line says what is missing. With -v they show.
        0 => "warn,aws_config=error,bgcloud=info",
        1 => "warn,bgcloud=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| AroundLiveLine)
        .with_target(verbose > 1)
        .without_time()
        .with_ansi(colour)
        .try_init();
}

/// Where stderr goes, which decides how progress shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stderr {
    /// A terminal that takes cursor commands: drawn in place by `indicatif`.
    Terminal,
    /// A terminal that says it is `dumb` (an editor's shell buffer): redrawn with `\r`.
    Dumb,
    /// A pipe or a file (a CI log): lines only.
    Log,
}

fn stderr_kind() -> Stderr {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Stderr::Log
    } else if std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
        Stderr::Dumb
    } else {
        Stderr::Terminal
    }
}

/// The live line being drawn, if any: log lines are written around it (it is cleared, the line
/// written, and it is drawn again below), or the two would overwrite each other.
static LIVE: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);

/// The log's writer: stderr, around the live line.
struct AroundLiveLine;

impl Write for AroundLiveLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let live = LIVE.lock().map(|l| l.clone()).unwrap_or(None);
        match live {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A long wait's progress (the health gate, a watch, a step, a drain, an invalidation) on stderr:
/// what is awaited, the time spent and left, and the latest readings.
/// - On a terminal, one line redrawn in place at each reading (a spinner turns in between),
///   cleared when the wait ends; log lines go above it.
/// - Elsewhere (CI), a log line when the readings change (at most every `min_gap`) and at least
///   one every [`HEARTBEAT`], so a long wait is never silent.
pub struct Waiting {
    what: String,
    started: Instant,
    ends: Option<Instant>,
    min_gap: Duration,
    draw: Stderr,
    bar: Option<ProgressBar>,
    /// The readings last written out (not on a terminal), and when.
    said: std::sync::Mutex<Option<(String, Instant)>>,
}

/// The longest a wait goes without a line when stderr is not a terminal.
pub const HEARTBEAT: Duration = Duration::from_secs(60);

/// Whether a wait off a terminal writes a line for `readings`, given the `last` ones written and
/// how long ago: the first, a change (after `min_gap`), or a minute of silence.
fn due(last: Option<(&str, Duration)>, readings: &str, min_gap: Duration) -> bool {
    match last {
        None => true,
        Some((last, ago)) => (last != readings && ago >= min_gap) || ago >= HEARTBEAT,
    }
}

impl Waiting {
    /// Starts the progress of `what` (e.g. "watching green"), which ends by `ends` if known.
    pub fn start(what: impl Into<String>, ends: Option<Instant>) -> Waiting {
        let draw = stderr_kind();
        let bar = (draw == Stderr::Terminal).then(|| {
            let template = if colour() {
                "{spinner:.cyan} {msg}"
            } else {
                "{spinner} {msg}"
            };
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .tick_chars("|/-\\ "),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            if let Ok(mut live) = LIVE.lock() {
                *live = Some(bar.clone());
            }
            bar
        });
        Waiting {
            what: what.into(),
            started: Instant::now(),
            ends,
            min_gap: Duration::ZERO,
            draw,
            bar,
            said: std::sync::Mutex::new(None),
        }
    }

    /// Says changed readings at most this often off a terminal (reads that flip between the
    /// load balancer's nodes' views would otherwise be a line each).
    pub fn at_most_every(mut self, gap: Duration) -> Waiting {
        self.min_gap = gap;
        self
    }

    /// The latest readings (e.g. "2 of 2 targets healthy · 5xx_rate 0.001 (limit 0.05): ok").
    pub fn update(&self, readings: &str) {
        self.update_noting(readings, None);
    }

    /// [`Waiting::update`] with a countdown or the like after the readings, which is shown but
    /// is not a change worth a line of its own.
    pub fn update_noting(&self, readings: &str, note: Option<&str>) {
        let line = match note {
            Some(note) => self.line(&format!("{readings}, {note}")),
            None => self.line(readings),
        };
        match (&self.bar, self.draw) {
            (Some(bar), _) => bar.set_message(line),
            // No cursor commands on a dumb terminal: spaces cover a longer line before.
            (None, Stderr::Dumb) => eprint!("\r{line}    "),
            _ => {
                let Ok(mut said) = self.said.lock() else {
                    return;
                };
                let last = said.as_ref().map(|(r, at)| (r.as_str(), at.elapsed()));
                if due(last, readings, self.min_gap) {
                    tracing::info!("{line}");
                    *said = Some((readings.to_string(), Instant::now()));
                }
            }
        }
    }

    /// "watching green: 1m 5s in, 3m 55s left · {readings}".
    fn line(&self, readings: &str) -> String {
        let whole = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
        let now = Instant::now();
        let left = match self.ends {
            Some(end) => format!(", {} left", whole(end.saturating_duration_since(now))),
            None => String::new(),
        };
        format!(
            "{}: {} in{left} · {readings}",
            self.what,
            whole(now.duration_since(self.started))
        )
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            if let Ok(mut live) = LIVE.lock() {
                *live = None;
            }
            bar.finish_and_clear();
        } else if self.draw == Stderr::Dumb {
            eprintln!();
        }
    }
}

/// Files and bytes done, on stderr. Shared by concurrent tasks: each reports its own file with
/// [`Progress::advance`]. How it shows depends on where stderr goes:
/// - a terminal: an `indicatif` bar, redrawn at most 20 times a second rather than once per
///   file, plain where `NO_COLOR` asks for no colour;
/// - a terminal that says it is `dumb` (an editor's shell buffer): the line redrawn with `\r`,
///   since it cannot take the bar's cursor escapes;
/// - anything else (a pipe, a CI log): nothing, so logs hold no stream of `\r` redraws.
pub struct Progress {
    files: usize,
    bytes: u64,
    done_files: AtomicUsize,
    done_bytes: AtomicU64,
    draw: Draw,
}

/// Where [`Progress`] shows, chosen once.
enum Draw {
    Bar(ProgressBar),
    Line,
    Nothing,
}

impl Progress {
    pub fn new(files: usize, bytes: u64) -> Progress {
        let draw = match stderr_kind() {
            Stderr::Log => Draw::Nothing,
            Stderr::Dumb => Draw::Line,
            Stderr::Terminal => Draw::Bar(bar(files)),
        };
        Progress {
            files,
            bytes,
            done_files: AtomicUsize::new(0),
            done_bytes: AtomicU64::new(0),
            draw,
        }
    }

    /// One more file of `bytes` done.
    pub fn advance(&self, bytes: u64) {
        let files = self.done_files.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self.done_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.draw {
            Draw::Bar(bar) => {
                bar.inc(1);
                bar.set_message(self.done(files, bytes));
            }
            Draw::Line => eprint!("\r{}", self.done(files, bytes)),
            Draw::Nothing => {}
        }
    }

    pub fn finish(&self) {
        match &self.draw {
            Draw::Bar(bar) => {
                // Concurrent tasks may have set their messages out of order: the last word is
                // the final count.
                let files = self.done_files.load(Ordering::Relaxed);
                let bytes = self.done_bytes.load(Ordering::Relaxed);
                bar.finish_with_message(self.done(files, bytes));
            }
            Draw::Line => eprintln!(),
            Draw::Nothing => {}
        }
    }

    /// "3/10 files, 1.2/5.0 MB".
    fn done(&self, files: usize, bytes: u64) -> String {
        format!(
            "{files}/{} files, {:.1}/{:.1} MB",
            self.files,
            bytes as f64 / 1e6,
            self.bytes as f64 / 1e6
        )
    }
}

/// The upload bar on stderr, one step per file, coloured as `--color` and `NO_COLOR` say.
fn bar(files: usize) -> ProgressBar {
    let template = if colour() {
        "[{bar:30.cyan}] {msg} ({elapsed})"
    } else {
        "[{bar:30}] {msg} ({elapsed})"
    };
    let bar = ProgressBar::with_draw_target(Some(files as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            // ASCII, for any terminal font and encoding.
            .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_off_a_terminal_says_changes_and_at_least_one_line_a_minute() {
        let s = Duration::from_secs;
        assert!(due(None, "2 of 2 healthy", s(5)));
        assert!(!due(
            Some(("2 of 2 healthy", s(59))),
            "2 of 2 healthy",
            s(5)
        ));
        assert!(due(Some(("2 of 2 healthy", s(60))), "2 of 2 healthy", s(5)));
        assert!(due(Some(("2 of 2 healthy", s(5))), "1 of 2 healthy", s(5)));
        // Reads that flip between the load balancer's nodes: not a line each.
        assert!(!due(Some(("2 of 2 healthy", s(1))), "1 of 2 healthy", s(5)));
    }

    #[test]
    fn an_error_report_splits_the_text_and_names_the_resource() {
        let text = "error: reading listener arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/1/2: AccessDenied: no.\n  the credentials in use may not call elasticloadbalancing:DescribeListeners";
        let r = ErrorReport::new("failed", text, 1);
        assert_eq!(
            r.message,
            "reading listener arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/1/2: AccessDenied: no."
        );
        assert_eq!(
            r.hint.as_deref(),
            Some("the credentials in use may not call elasticloadbalancing:DescribeListeners")
        );
        assert_eq!(
            r.resource.as_deref(),
            Some("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/1/2")
        );
        let plain = ErrorReport::new("refused", "nothing deployed yet", 2);
        assert_eq!((plain.hint, plain.resource), (None, None));
    }
}
