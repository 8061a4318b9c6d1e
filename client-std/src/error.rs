//! The one error type of the std client.

use std::fmt;
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
    /// A CURVE key that is not 40 characters of Z85 (32 bytes).
    InvalidKey,
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
    /// A libzmq socket failed (the control connection, or the CURVE data path).
    Socket(SocketError),
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
            Error::InvalidKey => f.write_str("invalid CURVE key: expected 40 Z85 characters"),
            Error::NotReady { what, after } => write!(f, "{what} not ready within {after:?}"),
            Error::Refused { code, detail } => {
                write!(f, "the master refused: {}: {detail}", code.as_str())
            }
            Error::Protocol(e) => write!(f, "bad reply from the master: {e}"),
            Error::Encode(e) => write!(f, "request encoding failed: {e}"),
            Error::Frame(e) => write!(f, "bad data frame: {e}"),
            Error::Serde(e) => write!(f, "payload (de)serialization failed: {e}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
            Error::Socket(e) => write!(f, "socket: {e}"),
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
            Error::Socket(e) => Some(e),
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

/// A failure of a libzmq socket: its error number and libzmq's description of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketError {
    errno: i32,
    message: &'static str,
}

impl SocketError {
    /// The error number (an `errno` value, or one of libzmq's own above 156384712).
    pub fn raw_os_error(&self) -> i32 {
        self.errno
    }
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for SocketError {}

/// Turns libzmq's error into ours, so that no libzmq type is part of the public API (a
/// `From<zmq::Error>` impl would be).
pub(crate) trait ZmqErrorExt {
    fn into_error(self) -> Error;
}

impl ZmqErrorExt for zmq::Error {
    fn into_error(self) -> Error {
        Error::Socket(SocketError {
            errno: self.to_raw(),
            message: self.message(),
        })
    }
}

/// `.zmq()?` in place of `?` on libzmq results.
pub(crate) trait ZmqResultExt<T> {
    fn zmq(self) -> Result<T>;
}

impl<T> ZmqResultExt<T> for std::result::Result<T, zmq::Error> {
    fn zmq(self) -> Result<T> {
        self.map_err(ZmqErrorExt::into_error)
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
