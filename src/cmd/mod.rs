//! One module per command.

pub mod deploy;
pub mod frontend;
pub mod help;
pub mod history;
pub mod lock;
pub mod promote;
pub mod rollback;
pub mod shift;
pub mod status;
pub mod status_watch;
pub mod sync;
