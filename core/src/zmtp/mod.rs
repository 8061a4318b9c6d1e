//! ZMTP 3.0 / 3.1 (RFC 23 and 37) as libzmq 4.3 speaks it: the subset a zerosmq node needs.
//!
//! - [`greeting`]: the 64-byte greeting (sent whole, received in any fragments).
//! - [`frame`]: frame headers (short and long, MORE, COMMAND).
//! - [`command`]: READY (with `Socket-Type`, `Identity`), ERROR, SUBSCRIBE, CANCEL, PING, PONG,
//!   and PLAIN's HELLO, WELCOME, INITIATE.
//! - [`decoder`]: [`FrameDecoder`], which says which bytes it needs next and decodes in place.
//! - [`stream`]: [`next_unit`](stream::next_unit), which finds the greeting, commands and whole
//!   (multipart) messages at the front of a large read, in place (the master's forwarder).
//! - [`envelope`]: the REQ/REP envelope (empty delimiter, routing frames), both sides.
//! - [`connection`]: [`Connection`], the NULL, PLAIN or CURVE handshake (client or server) and
//!   per-connection state (negotiated version, pending PONG), turning frames into [`Event`]s.
//!
//! - [`z85`]: Z85 (RFC 32), the text form of CURVE keys.
//! - `curve` (feature `curve`): CurveZMQ (RFC 26) client and server, driven by
//!   [`Connection::curve_client`] / `curve_server` like the other mechanisms.
//!
//! Everything is sans-IO over caller-owned slices, allocation-free and panic-free on any input
//! (fuzzed). Of the security mechanisms, NULL, both sides of PLAIN (RFC 24) and, with the
//! `curve` feature, both sides of CURVE (RFC 26) are implemented.

pub mod command;
pub mod connection;
#[cfg(feature = "curve")]
pub mod curve;
pub mod decoder;
pub mod envelope;
pub mod frame;
pub mod greeting;
pub mod stream;
pub mod z85;

use core::fmt;

pub use command::{Command, CommandError, Properties, SocketType};
pub use connection::{
    encode_subscription, Connection, CredentialsTooLong, Event, PlainCredentials,
};
pub use decoder::{Decoded, FrameDecoder, MIN_RX_LEN};
pub use frame::{FrameHeader, FrameKind, HeaderError};
pub use greeting::{Greeting, GreetingError, GREETING_LEN};

/// An encoder's output did not fit the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameEncodeError {
    BufferTooSmall,
}

impl fmt::Display for FrameEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("buffer too small for the ZMTP frame")
    }
}

impl core::error::Error for FrameEncodeError {}

/// Why decoding a peer's bytes failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZmtpError {
    /// The greeting was refused.
    Greeting(GreetingError),
    /// A frame header is invalid.
    Header(HeaderError),
    /// A command body is malformed.
    Command(CommandError),
    /// A frame is longer than the receive buffer; it was skipped (not fatal once open).
    FrameTooLarge {
        header: FrameHeader,
        capacity: usize,
    },
    /// A frame that cannot come at this point (a message before READY, a command in the
    /// handshake other than READY).
    UnexpectedFrame,
    /// READY without a `Socket-Type`.
    MissingSocketType,
    /// The peer's socket type cannot talk to ours.
    IncompatiblePeer(SocketType),
    /// The peer sent an ERROR command.
    PeerError,
    /// A PLAIN server refused our credentials (or the access they give) with ERROR; `status` is
    /// the ZAP status code it sent (400 for a wrong user name or password), 0 if none.
    AuthFailed { status: u16 },
    /// We (a PLAIN server) refused the peer's credentials; the refusal is queued.
    Refused,
    /// The driver committed more bytes than it was asked to read.
    InvalidCommit,
    /// The connection already failed.
    Closed,
    /// A CURVE handshake step or box failed (with the `curve` feature).
    #[cfg(feature = "curve")]
    Curve(curve::CurveError),
}

impl ZmtpError {
    /// Whether the connection must be dropped.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ZmtpError::FrameTooLarge { .. })
    }
}

impl fmt::Display for ZmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZmtpError::Greeting(GreetingError::Incomplete) => f.write_str("greeting incomplete"),
            ZmtpError::Greeting(GreetingError::BadSignature) => {
                f.write_str("peer is not a ZMTP 3 peer (bad greeting signature)")
            }
            ZmtpError::Greeting(GreetingError::UnsupportedVersion { major, minor }) => {
                write!(
                    f,
                    "peer speaks ZMTP {major}.{minor}, at least 3.0 is needed"
                )
            }
            ZmtpError::Greeting(GreetingError::UnsupportedMechanism) => {
                f.write_str("peer's security mechanism is not ours")
            }
            ZmtpError::Header(HeaderError::ReservedFlags(b)) => {
                write!(f, "frame flags {b:#04x} set reserved bits")
            }
            ZmtpError::Header(HeaderError::CommandWithMore) => {
                f.write_str("command frame with MORE set")
            }
            ZmtpError::Header(HeaderError::Incomplete { .. }) => {
                f.write_str("frame header incomplete")
            }
            ZmtpError::Command(CommandError::Truncated) => f.write_str("command body truncated"),
            ZmtpError::Command(CommandError::PingContextTooLong) => {
                f.write_str("PING context longer than 16 bytes")
            }
            ZmtpError::FrameTooLarge { header, capacity } => write!(
                f,
                "frame of {} bytes skipped: receive buffer holds {capacity}",
                header.len
            ),
            ZmtpError::UnexpectedFrame => f.write_str("frame not allowed at this point"),
            ZmtpError::MissingSocketType => f.write_str("READY has no Socket-Type"),
            ZmtpError::IncompatiblePeer(t) => {
                write!(f, "peer socket type {} does not match ours", t.as_str())
            }
            ZmtpError::PeerError => f.write_str("peer sent ERROR"),
            ZmtpError::AuthFailed { status } => {
                write!(f, "PLAIN authentication refused (status {status})")
            }
            ZmtpError::Refused => f.write_str("PLAIN credentials refused"),
            ZmtpError::InvalidCommit => f.write_str("driver committed more bytes than asked"),
            ZmtpError::Closed => f.write_str("connection already failed"),
            #[cfg(feature = "curve")]
            ZmtpError::Curve(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl core::error::Error for ZmtpError {}
