//! `bgcloud completions SHELL` and `bgcloud man`: generated from the command line's own
//! definitions (`cli.rs`), so they cannot drift from it. Need no config and no AWS.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::output::to_stdout;

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "bgcloud", &mut out);
    to_stdout(&out);
    Ok(())
}

/// The manual page (roff), on stdout.
pub fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::failed(format!("rendering the manual page: {e}")))?;
    to_stdout(&out);
    Ok(())
}
