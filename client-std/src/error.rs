//! The one error type of the std client.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zerosmq_core::{ControlEncodeError, DecodeError, ErrorCode, FrameError, NameError};

/// What went wrong talking to the master or to a topic.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A topic or node name breaks the name rules.
    InvalidName(NameError),
    /// The master address cannot be used.
    InvalidMaster(String),
    /// The master did not answer in time (not running, unreachable, or busy).
    Timeout { master: String, after: Duration },
    /// The master refused this node's PLAIN user name or password.
    AuthFailed { master: String },
    /// A feature this build cannot provide.
    Unsupported(&'static str),
    /// A CURVE server key that is not 40 characters of Z85 (32 bytes).
    InvalidKey,
    /// A CURVE key file that cannot be used (unreadable, not two Z85 keys, keys that do not
    /// belong together).
    KeyFile { path: PathBuf, reason: String },
    /// The master refused this node's CURVE public key (a master with `--curve-clients` that
    /// does not list it, or an ACL that does not let it do this).
    CurveRefused { master: String },
    /// The master closed every CURVE handshake on this node's HELLO until the deadline: the
    /// server public key this node was given is not the master's.
    WrongServerKey { master: String },
    /// A wait for a live path timed out.
    NotReady { what: String, after: Duration },
    /// The master refused the request.
    Refused { code: ErrorCode, detail: String },
    /// The master's reply does not fit the protocol.
    Protocol(DecodeError),
    /// A request did not fit its buffer.
    Encode(ControlEncodeError),
    /// A received data frame does not have the expected shape.
    Frame(FrameError),
    /// A payload could not be encoded or decoded with postcard.
    Serde(postcard::Error),
    /// A system call of the data path failed (starting a thread, making a poll).
    Io(std::io::Error),
    /// A typed topic's schema is longer than the control protocol carries.
    SchemaTooLarge { len: usize, max: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName(e) => write!(f, "invalid name: {e}"),
            Error::InvalidMaster(a) => {
                write!(f, "invalid master address '{a}' (expected tcp://HOST:PORT)")
            }
            Error::Timeout { master, after } => {
                write!(f, "the master at {master} did not answer within {after:?}")
            }
            Error::AuthFailed { master } => {
                write!(
                    f,
                    "the master at {master} refused the user name or password"
                )
            }
            Error::Unsupported(what) => write!(f, "not supported here: {what}"),
            Error::InvalidKey => {
                f.write_str("invalid CURVE server key: expected 40 Z85 characters")
            }
            Error::KeyFile { path, reason } => {
                write!(f, "CURVE key file {}: {reason}", path.display())
            }
            Error::CurveRefused { master } => write!(
                f,
                "the master at {master} refused this node's CURVE public key \
                 (not in its --curve-clients, or not allowed by its ACL)"
            ),
            Error::WrongServerKey { master } => write!(
                f,
                "the master at {master} closed the CURVE handshake: \
                 the server public key given is not the master's"
            ),
            Error::NotReady { what, after } => write!(f, "{what} not ready within {after:?}"),
            Error::Refused { code, detail } => {
                write!(f, "the master refused: {}: {detail}", code.as_str())
            }
            Error::Protocol(e) => write!(f, "bad reply from the master: {e}"),
            Error::Encode(e) => write!(f, "request encoding failed: {e}"),
            Error::Frame(e) => write!(f, "bad data frame: {e}"),
            Error::Serde(e) => write!(f, "payload (de)serialization failed: {e}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
            Error::SchemaTooLarge { len, max } => write!(
                f,
                "the type's schema is {len} bytes encoded, a typed topic's may be {max}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidName(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Encode(e) => Some(e),
            Error::Frame(e) => Some(e),
            Error::Serde(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

macro_rules! from {
    ($($source:ty => $variant:ident),* $(,)?) => {$(
        impl From<$source> for Error {
            fn from(e: $source) -> Self {
                Error::$variant(e)
            }
        }
    )*};
}

from! {
    NameError => InvalidName,
    DecodeError => Protocol,
    ControlEncodeError => Encode,
    FrameError => Frame,
    postcard::Error => Serde,
    std::io::Error => Io,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
