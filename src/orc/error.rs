//! The error type of the ORC model: a code saying what kind of failure it
//! is and a message naming what went wrong.

use std::fmt;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A NULL or otherwise unusable argument, bad flags, the wrong dylib.
    InvalidArgument,
    /// A lookup or a link found no definition.
    SymbolNotFound,
    /// A strong definition clashed with an existing one.
    DuplicateDefinition,
    /// The tracker was removed or transferred away.
    TrackerDefunct,
    /// A definition this lookup needed failed to materialize.
    MaterializationFailed,
    /// The input is not a valid object or archive.
    MalformedObject,
    /// Valid input that this library cannot handle (the message says what).
    Unsupported,
    /// A relocation's value does not fit its field.
    RelocationOutOfRange,
    /// Reading a file failed.
    Io,
    /// Memory could not be reserved or committed.
    OutOfMemory,
    /// The session has ended.
    SessionEnded,
    /// A bug in this library, including caught panics.
    Internal,
    /// An error returned by a client callback.
    Callback,
}

/// An error with its code and a message that names the object, section and
/// symbol involved where they are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

/// The result type of the ORC model.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Makes an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with context, keeping the code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidArgument, message)
    }

    pub(crate) fn defunct() -> Self {
        Error::new(ErrorCode::TrackerDefunct, "resource tracker is defunct")
    }

    pub(crate) fn ended() -> Self {
        Error::new(ErrorCode::SessionEnded, "the session has ended")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
