//! The bus crate's one error type.

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis refused, timed out or is unreachable. Retrying later may help.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Something on the bus does not have the shape this build expects (written by hand, or by a broken peer).
    #[error("unreadable {what} on the bus: {reason}")]
    Corrupt { what: String, reason: String },
    /// The bus settings are unusable (a bad URL, an empty prefix).
    #[error("config bus settings: {0}")]
    Settings(String),
    /// The bus has shut down (its runtime stopped, or the in-process queue was dropped).
    #[error("the config bus is closed")]
    Closed,
    /// A bounded queue is full; the caller may drop the message or retry later.
    #[error("the config bus queue for {0} is full")]
    Full(&'static str),
}

impl BusError {
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        BusError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
