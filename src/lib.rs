//! bgcloud: zero-downtime blue/green releases on AWS with the ALB as the traffic switch.

pub mod aws;
pub mod cli;
pub mod cmd;
pub mod color;
pub mod config;
pub mod context;
pub mod error;
pub mod health;
pub mod live;
pub mod output;
pub mod state;
pub mod traffic;
pub mod weights;

use cli::{Cli, Command};
use context::Context;
use error::Result;

/// Runs one parsed command line, printing its result on stdout.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Context::new(&cli.global).await?;
    match &cli.command {
        Command::Status => output::print(ctx.format, &cmd::status::run(&ctx).await?),
        Command::Shift(args) => output::print(ctx.format, &cmd::shift::run(&ctx, args).await?),
        Command::Promote(args) => output::print(ctx.format, &cmd::promote::run(&ctx, args).await?),
        Command::Rollback(args) => {
            output::print(ctx.format, &cmd::rollback::run(&ctx, args).await?)
        }
    }
}
