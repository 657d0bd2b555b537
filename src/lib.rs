//! bgcloud: zero-downtime blue/green releases on AWS with the ALB as the traffic switch.

pub mod aws;
pub mod backend;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod context;
pub mod error;
pub mod frontend;
pub mod model;
pub mod notify;
pub mod output;
pub mod state;

use cli::{Cli, Command, FrontendCommand, IdleCommand, LockCommand};
use context::Context;
use error::{Error, Result};
use model::weights::Moved;

/// A run that failed: the error, and the traffic changes it made before it did (each verified),
/// so that what it prints says where traffic went and where it is now.
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    pub moves: Vec<Moved>,
}

impl Failure {
    /// The text for stderr: the error, then, when traffic moved, the moves and where it ended.
    pub fn text(&self) -> String {
        match model::weights::path(&self.moves) {
            Some(path) => format!(
                "{}\n  traffic moved in this run: {path}, each verified on the listener",
                self.error
            ),
            None => self.error.to_string(),
        }
    }

    /// The `--output json` object, with `traffic` when it moved.
    pub fn report(&self) -> output::ErrorReport {
        let mut report = output::ErrorReport::of(&self.error);
        if let Some(last) = self.moves.last() {
            report.traffic = Some(serde_json::json!({
                "moves": self.moves,
                "last_verified": last.to,
            }));
        }
        report
    }
}

/// Runs one parsed command line, printing its result on stdout (and, under GitHub Actions,
/// appending what a changing command did or why it failed to the step summary). A changing
/// command's failure is also a `[notify]` event.
pub async fn run(cli: Cli) -> std::result::Result<(), Failure> {
    // About bgcloud itself: no config, no AWS.
    let failed = |error| Failure {
        error,
        moves: Vec::new(),
    };
    match cli.command {
        Command::Completions { shell } => return cmd::help::completions(shell).map_err(failed),
        Command::Man => return cmd::help::man().map_err(failed),
        // Writes the config: none to read yet.
        Command::Init(args) => {
            return cmd::init::run(&cli.global, &args)
                .await
                .and_then(|done| output::print(cli.global.output, &done))
                .map_err(failed)
        }
        _ => {}
    }
    let (ctx, result) = match Context::new(&cli.global).await {
        Ok(ctx) => {
            if cli.command.changes().is_some() {
                for o in &ctx.config.from_env {
                    tracing::info!("config: {} = {} from {}", o.key, o.shown(), o.var);
                }
            }
            let result = dispatch(&ctx, &cli.command).await;
            (Some(ctx), result)
        }
        Err(e) => (None, Err(e)),
    };
    let Err(error) = result else {
        return Ok(());
    };
    let moves = ctx
        .as_ref()
        .and_then(|c| c.moves.lock().ok().map(|m| m.clone()))
        .unwrap_or_default();
    let failure = Failure { error, moves };
    if let Some(name) = cli.command.changes() {
        let e = &failure.error;
        notify::summary::failed(name, &failure.text(), e.exit_code());
        // An inconclusive watch has said so itself (event `inconclusive`): it is no failure.
        if let (Some(ctx), false) = (&ctx, matches!(e, error::Error::Inconclusive(_))) {
            ctx.notify.failed(name, &e.to_string()).await;
        }
    }
    Err(failure)
}

/// Prints a command's result and, when it changed something (not a dry run), appends it to the
/// step summary.
fn report<T: std::fmt::Display + serde::Serialize>(
    ctx: &Context,
    command: &Command,
    value: &T,
    traffic: Option<(model::weights::Weights, model::weights::Weights)>,
) -> Result<()> {
    output::print(ctx.format, value)?;
    if let Some(name) = command.changes() {
        notify::summary::done(name, &value.to_string(), traffic);
    }
    Ok(())
}

async fn dispatch(ctx: &Context, command: &Command) -> Result<()> {
    match command {
        Command::Status(args) if args.watch => {
            cmd::status_watch::run(ctx, args.every.as_deref()).await
        }
        Command::Status(_) => output::print(ctx.format, &cmd::status::run(ctx).await?),
        Command::Deploy(args) => match cmd::deploy::run(ctx, args).await? {
            cmd::deploy::Outcome::Planned(plan) => output::print(ctx.format, &plan),
            cmd::deploy::Outcome::Deployed(done) => {
                let traffic = Some((done.plan.from, done.traffic));
                report(ctx, command, &done, traffic)
            }
        },
        Command::Shift(args) => {
            let done = cmd::shift::run(ctx, args).await?;
            report(ctx, command, &done, Some((done.from, done.to)))
        }
        Command::Promote(args) => {
            let done = cmd::promote::run(ctx, args).await?;
            report(ctx, command, &done, Some((done.from, done.to)))
        }
        Command::Rollback(args) => {
            let done = cmd::rollback::run(ctx, args).await?;
            report(ctx, command, &done, Some((done.from, done.to)))
        }
        Command::Sync(args) => match cmd::sync::run(ctx, args).await? {
            cmd::sync::Outcome::Planned(plan) => output::print(ctx.format, &plan),
            cmd::sync::Outcome::Synced(done) => report(ctx, command, &done, None),
        },
        Command::Idle(IdleCommand::Stop(args)) => {
            report(ctx, command, &cmd::idle::stop(ctx, args).await?, None)
        }
        Command::Idle(IdleCommand::Start(args)) => {
            report(ctx, command, &cmd::idle::start(ctx, args).await?, None)
        }
        Command::History(args) => output::print(ctx.format, &cmd::history::run(ctx, args).await?),
        Command::Lock(LockCommand::Status) => {
            output::print(ctx.format, &cmd::lock::status(ctx).await?)
        }
        Command::Lock(LockCommand::Release { force }) => {
            report(ctx, command, &cmd::lock::release(ctx, *force).await?, None)
        }
        Command::Frontend(FrontendCommand::Deploy(args)) => {
            let done = cmd::frontend::deploy(ctx, args).await?;
            report(ctx, command, &done, None)
        }
        Command::Frontend(FrontendCommand::Releases) => {
            output::print(ctx.format, &cmd::frontend::releases(ctx).await?)
        }
        Command::Frontend(FrontendCommand::Rollback(args)) => report(
            ctx,
            command,
            &cmd::frontend::rollback(ctx, args).await?,
            None,
        ),
        // Answered by `run` before any config is read; here for a complete match.
        Command::Completions { shell } => cmd::help::completions(*shell),
        Command::Man => cmd::help::man(),
        Command::Init(_) => unreachable!("answered by `run` before a context exists"),
        Command::Frontend(FrontendCommand::Prune(args)) => {
            report(ctx, command, &cmd::frontend::prune(ctx, args).await?, None)
        }
    }
}
