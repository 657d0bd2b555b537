//! The `bgcloud` binary: parses the command line, runs it (`bgcloud::run`), maps the error to
//! its exit code (and, with `--output json`, prints it on stdout as one JSON object).

use std::process::ExitCode;

use bgcloud::output::{print_error, ErrorReport, Format};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match bgcloud::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if e.use_stderr() && wants_json(std::env::args().skip(1)) {
                let text = e.render().to_string();
                print_error(Format::Json, &ErrorReport::new("usage", &text, 2));
            }
            e.exit()
        }
    };
    bgcloud::output::init_logging(cli.global.verbose, cli.global.color);
    let format = cli.global.output;
    match bgcloud::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.text());
            print_error(format, &failure.report());
            ExitCode::from(failure.error.exit_code())
        }
    }
}

/// Whether a command line the parser refused asked for `--output json` (`-o json`, `-ojson`,
/// `--output=json`): its error is then a JSON document on stdout too.
fn wants_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    args.iter().enumerate().any(|(i, a)| {
        matches!(a.as_str(), "--output=json" | "-ojson" | "-o=json")
            || (matches!(a.as_str(), "--output" | "-o")
                && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}
