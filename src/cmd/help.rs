//! `bgcloud completions SHELL` and `bgcloud man`: generated from the command line's own
//! definitions (`cli.rs`), so they cannot drift from it. Need no config and no AWS.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "bgcloud", &mut out);
    write(&out)
}

/// The manual page (roff), on stdout.
pub fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::failed(format!("rendering the manual page: {e}")))?;
    write(&out)
}

fn write(bytes: &[u8]) -> Result<()> {
    // A closed pipe (`bgcloud man | head`) is not an error worth a message.
    let _ = std::io::stdout().lock().write_all(bytes);
    Ok(())
}
