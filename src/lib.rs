//! bgcloud: zero-downtime blue/green releases on AWS with the ALB as the traffic switch.

pub mod aws;
pub mod cdn;
pub mod cli;
pub mod cmd;
pub mod color;
pub mod config;
pub mod context;
pub mod desired;
pub mod drain;
pub mod drift;
pub mod ecr;
pub mod encode;
pub mod error;
pub mod fleet;
pub mod gates;
pub mod health;
pub mod health_gate;
pub mod live;
pub mod lock;
pub mod metrics;
pub mod output;
pub mod rollout;
pub mod s3;
pub mod script;
pub mod site;
pub mod state;
pub mod steps;
pub mod target_group;
pub mod traffic;
pub mod watch;
pub mod weights;

use cli::{Cli, Command, FrontendCommand, LockCommand};
use context::Context;
use error::Result;

/// Runs one parsed command line, printing its result on stdout.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Context::new(&cli.global).await?;
    match &cli.command {
        Command::Status => output::print(ctx.format, &cmd::status::run(&ctx).await?),
        Command::Deploy(args) => match cmd::deploy::run(&ctx, args).await? {
            cmd::deploy::Outcome::Planned(plan) => output::print(ctx.format, &plan),
            cmd::deploy::Outcome::Deployed(done) => output::print(ctx.format, &done),
        },
        Command::Shift(args) => output::print(ctx.format, &cmd::shift::run(&ctx, args).await?),
        Command::Promote(args) => output::print(ctx.format, &cmd::promote::run(&ctx, args).await?),
        Command::Rollback(args) => {
            output::print(ctx.format, &cmd::rollback::run(&ctx, args).await?)
        }
        Command::Sync(args) => match cmd::sync::run(&ctx, args).await? {
            cmd::sync::Outcome::Planned(plan) => output::print(ctx.format, &plan),
            cmd::sync::Outcome::Synced(done) => output::print(ctx.format, &done),
        },
        Command::History(args) => output::print(ctx.format, &cmd::history::run(&ctx, args).await?),
        Command::Lock(LockCommand::Status) => {
            output::print(ctx.format, &cmd::lock::status(&ctx).await?)
        }
        Command::Lock(LockCommand::Release { force }) => {
            output::print(ctx.format, &cmd::lock::release(&ctx, *force).await?)
        }
        Command::Frontend(FrontendCommand::Deploy(args)) => {
            output::print(ctx.format, &cmd::frontend::deploy(&ctx, args).await?)
        }
        Command::Frontend(FrontendCommand::Releases) => {
            output::print(ctx.format, &cmd::frontend::releases(&ctx).await?)
        }
        Command::Frontend(FrontendCommand::Rollback(args)) => {
            output::print(ctx.format, &cmd::frontend::rollback(&ctx, args).await?)
        }
        Command::Frontend(FrontendCommand::Prune(args)) => {
            output::print(ctx.format, &cmd::frontend::prune(&ctx, args).await?)
        }
    }
}
