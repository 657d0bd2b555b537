//! The integration tests against the local emulator, one binary: each module is an area (the
//! real `bgcloud` binary and the real SDK against `localstack/emulator.py` over HTTP). The
//! emulator is started once for the binary; every test gets its own stack and access key.

#[path = "../support/mod.rs"]
mod support;

mod config;
mod crash;
mod deploy;
mod desired;
mod drain;
mod errors;
mod failures;
mod fleet;
mod frontend;
mod gates;
mod health_gate;
mod help;
mod hostile;
mod idle;
mod init;
mod install;
mod json;
mod localstack;
mod notify;
mod preview;
mod release_task;
mod retries;
mod s3;
mod status_watch;
mod summary;
mod sync;
mod traffic;
