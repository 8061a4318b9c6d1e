//! The one error type of the std client.

use std::time::Duration;

use zerosmq_core::{ControlEncodeError, DecodeError, ErrorCode, FrameError, NameError};

/// What went wrong talking to the master or to a topic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A topic or node name breaks the name rules.
    #[error("invalid name: {0}")]
    InvalidName(#[from] NameError),
    /// The master address cannot be used.
    #[error("invalid master address '{0}' (expected tcp://HOST:PORT)")]
    InvalidMaster(String),
    /// The master did not answer in time (not running, unreachable, or busy).
    #[error("the master at {master} did not answer within {after:?}")]
    Timeout { master: String, after: Duration },
    /// The master refused this node's PLAIN user name or password.
    #[error("the master at {master} refused the user name or password")]
    AuthFailed { master: String },
    /// A feature this build cannot provide.
    #[error("not supported here: {0}")]
    Unsupported(&'static str),
    /// A CURVE key that is not 40 characters of Z85 (32 bytes).
    #[error("invalid CURVE key: expected 40 Z85 characters")]
    InvalidKey,
    /// A wait for a live path timed out.
    #[error("{what} not ready within {after:?}")]
    NotReady { what: String, after: Duration },
    /// The master refused the request.
    #[error("the master refused: {code}: {detail}", code = code.as_str())]
    Refused { code: ErrorCode, detail: String },
    /// The master's reply does not fit the protocol.
    #[error("bad reply from the master: {0}")]
    Protocol(#[from] DecodeError),
    /// A request did not fit its buffer.
    #[error("request encoding failed: {0}")]
    Encode(#[from] ControlEncodeError),
    /// A received data frame does not have the expected shape.
    #[error("bad data frame: {0}")]
    Frame(#[from] FrameError),
    /// A payload could not be encoded or decoded with postcard.
    #[error("payload (de)serialization failed: {0}")]
    Serde(#[from] postcard::Error),
    /// A system call of the data path failed (starting a thread, making an eventfd).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A libzmq socket failed (the control connection, or the CURVE data path).
    #[error("socket: {0}")]
    Socket(SocketError),
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
