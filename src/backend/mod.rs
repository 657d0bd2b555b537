//! The backend release pipeline: reading what is live, the verified traffic move, the health
//! gate, the steps and the watch that judges them, the preview route and smoke tests, draining,
//! the drift `sync` repairs, and the idle colour's sleep. Takes a `&Context`; talks to AWS only through `aws/`.

pub mod drain;
pub mod drift;
pub mod fleet;
pub mod gates;
pub mod health_gate;
pub mod idle;
pub mod launch;
pub mod live;
pub mod preview;
pub mod probe;
pub mod rollout;
pub mod script;
pub mod shift;
pub mod smoke;
pub mod steps;
pub mod watch;
