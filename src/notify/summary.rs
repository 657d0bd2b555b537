//! The GitHub Actions step summary: when `GITHUB_STEP_SUMMARY` names a file (as it does in every
//! Actions step), each command that changes something appends what it did, or why it failed, as
//! Markdown. Writing it never fails the command: a problem is one warning.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::model::weights::Weights;

const VAR: &str = "GITHUB_STEP_SUMMARY";

/// What a command did: its result as text, and the traffic before and after when it moved some.
pub fn done(command: &str, result: &str, traffic: Option<(Weights, Weights)>) {
    let mut md = format!("### bgcloud {command}: done\n\n");
    if let Some((before, after)) = traffic {
        md.push_str("| traffic | blue | green |\n|---|---:|---:|\n");
        for (when, w) in [("before", before), ("after", after)] {
            let _ = writeln!(md, "| {when} | {} % | {} % |", w.blue, w.green);
        }
        md.push('\n');
    }
    let _ = write!(md, "```text\n{}\n```\n\n", result.trim_end());
    append(&md);
}

/// Why a command failed (its exit code says how: 1 failed, 2 refused, 3 locked, 4 inconclusive,
/// 130 interrupted).
pub fn failed(command: &str, error: &str, exit_code: u8) {
    let how = match exit_code {
        4 => "paused, watch inconclusive",
        _ => "failed",
    };
    append(&format!(
        "### bgcloud {command}: {how} (exit {exit_code})\n\n```text\n{}\n```\n\n",
        error.trim_end()
    ));
}

fn append(markdown: &str) {
    let Some(path) = std::env::var_os(VAR).filter(|p| !p.is_empty()) else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(markdown.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(
            "could not append to the step summary {} ({e}); the command's result is above",
            std::path::Path::new(&path).display()
        );
    }
}
