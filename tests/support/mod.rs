//! Test support, split by job: the emulator process and its controls (`emulator`), one test's
//! stack and what tests assert through (`fixture`, `stack`), running the real binary (`run`),
//! local HTTP receivers (`receiver`), and the real-instance lane (`lane`).

// One support module serves two test binaries (emulator, real), each using part of it.
#![allow(dead_code, unused_imports)]

pub mod emulator;
pub mod fixture;
pub mod lane;
pub mod receiver;
pub mod run;
pub mod stack;

use bgcloud::model::weights::Weights;

pub use emulator::{control, endpoint, is_read, request_log, round_trips_before};
pub use fixture::{Bare, Fixture};
pub use receiver::{closed_port, Receiver};
pub use run::{finish, signal, Outcome};

/// A traffic split, blue first: `w(100, 0)`.
pub fn w(blue: u8, green: u8) -> Weights {
    Weights { blue, green }
}

/// An image behaviour (emulator control `image-behaviour`) that passes the launch script's
/// readiness probe and answers 500 a second later, as the lane's `badlate` image: only the
/// ALB's verdict after the launch can catch it.
pub fn ready_then_500() -> serde_json::Value {
    serde_json::json!({"status": 200, "then": {"after": 1, "status": 500}})
}
