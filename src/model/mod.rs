//! The vocabulary every tier shares: the two colours, a traffic split, an image digest,
//! stickiness. Plain
//! values with their parsing and formatting; no I/O.

pub mod color;
pub mod digest;
pub mod stickiness;
pub mod weights;
