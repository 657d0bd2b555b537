//! One module per command.

pub mod promote;
pub mod rollback;
pub mod shift;
pub mod status;
