//! What is live right now: the listener's forward weights (the truth) read together with the
//! deployment record (what bgcloud last did), and the stable/canary colours they imply.

use crate::aws::listener::{self, Forward};
use crate::aws::targets::{targets, TargetState};
use crate::context::Context;
use crate::error::Result;
use crate::model::color::Color;
use crate::model::weights::Weights;
use crate::state::record::Record;

pub struct Live {
    pub forward: Forward,
    /// The record and its ETag, as read alongside the listener.
    pub record: Option<(Record, String)>,
    /// Each colour's targets, when read ahead of the listener ([`Health::read`]): the health
    /// check of a traffic change then uses them instead of reading again.
    pub health: Option<Health>,
}

/// Both colours' targets as read at one moment; None for a colour whose read failed (only the
/// colour that gains traffic must be readable: it is read again then, and its error said).
#[derive(Debug, Clone)]
pub struct Health {
    pub blue: Option<Vec<TargetState>>,
    pub green: Option<Vec<TargetState>>,
}

impl Health {
    /// Reads both target groups at once: a command that is about to move traffic reads them
    /// while it takes the lock, off its critical path (see `cmd::rollback`).
    pub async fn read(ctx: &Context) -> Result<Health> {
        let backend = ctx.config.backend()?;
        let (blue, green) = tokio::join!(
            targets(&ctx.clients.elb, backend.target_group_arn(Color::Blue)),
            targets(&ctx.clients.elb, backend.target_group_arn(Color::Green)),
        );
        Ok(Health {
            blue: blue.ok(),
            green: green.ok(),
        })
    }

    pub fn of(&self, color: Color) -> Option<&[TargetState]> {
        match color {
            Color::Blue => self.blue.as_deref(),
            Color::Green => self.green.as_deref(),
        }
    }
}

impl Live {
    pub async fn read(ctx: &Context) -> Result<Live> {
        let backend = ctx.config.backend()?;
        let store = ctx.store();
        let (forward, record) =
            tokio::try_join!(listener::read(&ctx.clients.elb, backend), store.load())?;
        Ok(Live {
            forward,
            record,
            health: None,
        })
    }

    pub fn weights(&self) -> Weights {
        self.forward.weights
    }

    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref().map(|(r, _)| r)
    }

    /// True when the record's weights are the listener's: the record describes what is live.
    pub fn record_matches(&self) -> bool {
        self.record()
            .and_then(|r| r.backend.weights)
            .is_some_and(|w| w == self.weights())
    }

    /// The colour with most traffic; on a 50/50 split, the one that was stable before the
    /// last change (a canary never changes the stable colour), else blue.
    pub fn stable(&self) -> Color {
        let tie = self
            .record()
            .filter(|_| self.record_matches())
            .and_then(|r| r.backend.previous_stable)
            .unwrap_or(Color::Blue);
        self.weights().stable(tie)
    }

    pub fn canary(&self) -> Option<Color> {
        self.weights().canary(self.stable())
    }
}
