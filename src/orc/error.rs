//! The error type of the ORC model: a code (mirrored one to one by the C
//! API's `jitrt_error_code_t`) and a message naming what went wrong.

use std::fmt;

/// What kind of failure an [`Error`] is. The discriminants are part of the
/// C contract and are never renumbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// A NULL or otherwise unusable argument, bad flags, the wrong dylib.
    InvalidArgument = 1,
    /// A lookup or a link found no definition.
    SymbolNotFound = 2,
    /// A strong definition clashed with an existing one.
    DuplicateDefinition = 3,
    /// The tracker was removed or transferred away.
    TrackerDefunct = 4,
    /// A definition this lookup needed failed to materialize.
    MaterializationFailed = 5,
    /// The input is not a valid object or archive.
    MalformedObject = 6,
    /// Valid input that this library cannot handle (the message says what).
    Unsupported = 7,
    /// A relocation's value does not fit its field.
    RelocationOutOfRange = 8,
    /// Reading a file failed.
    Io = 9,
    /// Memory could not be reserved or committed.
    OutOfMemory = 10,
    /// The session has ended.
    SessionEnded = 11,
    /// A bug in this library, including caught panics.
    Internal = 12,
    /// An error returned by a client callback.
    Callback = 13,
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
