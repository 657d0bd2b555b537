//! What is live right now: the listener's forward weights (the truth) read together with the
//! deployment record (what bgcloud last did), and the stable/canary colours they imply.

use crate::aws::listener::{self, Forward};
use crate::context::Context;
use crate::error::Result;
use crate::model::color::Color;
use crate::model::weights::Weights;
use crate::state::record::Record;

pub struct Live {
    pub forward: Forward,
    /// The record and its ETag, as read alongside the listener.
    pub record: Option<(Record, String)>,
}

impl Live {
    pub async fn read(ctx: &Context) -> Result<Live> {
        let backend = ctx.config.backend()?;
        let store = ctx.store();
        let (forward, record) =
            tokio::try_join!(listener::read(&ctx.clients.elb, backend), store.load())?;
        Ok(Live { forward, record })
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
