//! `bgcloud history`: deployments and traffic changes from the record, newest first.

use std::fmt;

use serde::Serialize;

use crate::cli::HistoryArgs;
use crate::context::Context;
use crate::error::Result;
use crate::model::digest::short_digest;
use crate::state::record::Event;

#[derive(Debug, Serialize)]
pub struct History {
    pub app: String,
    pub entries: Vec<Event>,
}

pub async fn run(ctx: &Context, args: &HistoryArgs) -> Result<History> {
    let record = ctx.store().read().await?.unwrap_or_default();
    let entries = record
        .history
        .into_iter()
        .rev()
        .take(args.limit as usize)
        .collect();
    Ok(History {
        app: ctx.config.app.clone(),
        entries,
    })
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return writeln!(f, "{}: no deployments recorded yet", self.app);
        }
        for e in &self.entries {
            write!(f, "{}  {:<17}", e.at, e.kind)?;
            if let Some(to) = e.to {
                write!(f, " {to}")?;
            }
            if let Some(release) = &e.release {
                write!(f, " release {release}")?;
            }
            if let Some(color) = e.color {
                write!(f, "  → {color}")?;
            }
            if let (Some(image), Some(digest)) = (&e.image, &e.digest) {
                write!(f, "  {image} ({})", short_digest(digest))?;
            }
            writeln!(f, "  by {}  [{}]", e.by, e.id)?;
        }
        Ok(())
    }
}
