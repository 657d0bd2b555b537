//! Results go to stdout as text or JSON; progress and logs go to stderr.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
        .with_writer(std::io::stderr)
        .with_target(verbose > 1)
        .without_time()
        .with_ansi(colour)
        .try_init();
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
        let stderr = std::io::stderr();
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        let draw = if !std::io::IsTerminal::is_terminal(&stderr) {
            Draw::Nothing
        } else if dumb {
            Draw::Line
        } else {
            Draw::Bar(bar(files))
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
