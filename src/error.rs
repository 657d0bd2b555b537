//! The error type, and the exit code each kind of failure maps to (documented in the README).

use std::fmt::Display;

/// Exit codes: 0 success, 1 operation failed, 2 bad input or refused (nothing changed),
/// 3 another deployment holds the lock, 130 interrupted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operation failed part-way or AWS said no: exit 1.
    #[error("{0}")]
    Failed(String),
    /// Bad input or a refusal made before anything was changed: exit 2.
    #[error("{0}")]
    Refused(String),
    /// Someone else holds the deployment lock: exit 3.
    #[error("{0}")]
    Locked(String),
    /// Ctrl-C or SIGTERM: the lock was released, exit 130.
    #[error(
        "interrupted; the deployment lock was released. Run `bgcloud status` to see what is live"
    )]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Failed(_) => 1,
            Error::Refused(_) => 2,
            Error::Locked(_) => 3,
            Error::Interrupted => 130,
        }
    }

    pub fn failed(msg: impl Display) -> Self {
        Error::Failed(msg.to_string())
    }

    pub fn refused(msg: impl Display) -> Self {
        Error::Refused(msg.to_string())
    }
}

/// Wraps an AWS SDK error with what bgcloud was doing, keeping the service's error code and
/// message (DisplayErrorContext prints the whole source chain, not just "service error").
pub fn aws<E>(doing: impl Display) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| {
        Error::Failed(format!(
            "{doing}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&e)
        ))
    }
}
