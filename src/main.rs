//! The `bgcloud` binary: parses the command line, runs it (`bgcloud::run`), maps the error to
//! its exit code.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = bgcloud::cli::Cli::parse();
    bgcloud::output::init_logging(cli.global.verbose, cli.global.color);
    match bgcloud::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
