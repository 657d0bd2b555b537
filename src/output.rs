//! Results go to stdout as text or JSON; progress and logs go to stderr.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Prints a command's result: its `Display` form, or one JSON object.
pub fn print<T: Display + Serialize>(format: Format, value: &T) -> Result<()> {
    let text = match format {
        Format::Text => value.to_string(),
        Format::Json => serde_json::to_string_pretty(value)
            .map_err(|e| Error::failed(format!("serializing the result: {e}")))?,
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`bgcloud status | head -1`) is not an error worth a stack of messages.
    let _ = writeln!(out, "{}", text.trim_end());
    Ok(())
}

/// Sets up logging to stderr: bgcloud's progress at info, -v for debug (and AWS errors with the
/// SDK's whole chain), -vv for the SDK too. `RUST_LOG` overrides.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    crate::error::set_verbose(verbose > 0);
    let default = match verbose {
        0 => "warn,bgcloud=info",
        1 => "warn,bgcloud=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose > 1)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Files and bytes done, redrawn in place on stderr — only when stderr is a terminal. Shared
/// by concurrent tasks: each reports its own file with [`Progress::advance`].
pub struct Progress {
    files: usize,
    bytes: u64,
    done_files: AtomicUsize,
    done_bytes: AtomicU64,
    tty: bool,
}

impl Progress {
    pub fn new(files: usize, bytes: u64) -> Progress {
        Progress {
            files,
            bytes,
            done_files: AtomicUsize::new(0),
            done_bytes: AtomicU64::new(0),
            tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    /// One more file of `bytes` done.
    pub fn advance(&self, bytes: u64) {
        let files = self.done_files.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self.done_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.tty {
            eprint!(
                "\r{files}/{} files, {:.1}/{:.1} MB",
                self.files,
                bytes as f64 / 1e6,
                self.bytes as f64 / 1e6
            );
        }
    }

    pub fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
