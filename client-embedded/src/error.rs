//! The node's error type, generic over the transport's error.

use core::fmt;

use zerosmq_core::control::ErrorCode;
use zerosmq_core::zmtp::ZmtpError;
use zerosmq_core::NameError;

/// Why a node operation failed. `E` is the TCP stack's error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// Connecting, reading or writing failed; the connection was dropped and is reopened (with
    /// fresh grants) on the next call.
    Transport(E),
    /// The peer closed the connection; reopened on the next call.
    Disconnected,
    /// A read timed out (the transport's own timeout); the connection is kept.
    TimedOut,
    /// The peer broke ZMTP; the connection was dropped.
    Protocol(ZmtpError),
    /// A frame longer than the receive buffer was skipped; the connection is kept.
    FrameTooLarge { len: u64, capacity: usize },
    /// The master refused the request (its `ERROR code: detail` reply; an ACL refusal of a
    /// grant is `Refused(ErrorCode::Refused)`).
    Refused(ErrorCode),
    /// The master refused the node's credentials: its PLAIN user name and password, or its
    /// CURVE public key (not in the master's `--curve-clients`), or, on a data port, the access
    /// they give. `status` is the ZAP status code the master sent: 400 for a refusal. Retrying
    /// with the same credentials does not help.
    AuthFailed { status: u16 },
    /// The master closed the CURVE handshake before it was done: the server public key given
    /// to `with_curve` is not the master's (the master cannot open the node's HELLO).
    WrongServerKey,
    /// The master's reply could not be read as the answer to the request.
    BadReply,
    /// A caller's buffer is too small for what had to be encoded or received.
    BufferTooSmall,
    /// A typed publisher's schema encodes to more than the control protocol carries
    /// (`zerosmq_core::limits::MAX_SCHEMA_LEN` bytes).
    SchemaTooLarge,
    /// A topic or node name breaks the naming rules.
    InvalidName(NameError),
}

impl<E> Error<E> {
    /// Whether the connection survives this error.
    pub fn keeps_connection(&self) -> bool {
        matches!(
            self,
            Error::TimedOut | Error::FrameTooLarge { .. } | Error::InvalidName(_)
        )
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "transport error: {e:?}"),
            Error::Disconnected => f.write_str("peer closed the connection"),
            Error::TimedOut => f.write_str("read timed out"),
            Error::Protocol(e) => write!(f, "ZMTP protocol error: {e}"),
            Error::FrameTooLarge { len, capacity } => write!(
                f,
                "a {len}-byte frame was skipped: the receive buffer holds {capacity}"
            ),
            Error::Refused(code) => write!(f, "master refused the request: {}", code.as_str()),
            Error::AuthFailed { status } => write!(
                f,
                "authentication failed: the master refused the PLAIN credentials or the CURVE \
                 public key (status {status})"
            ),
            Error::WrongServerKey => f.write_str(
                "the master closed the CURVE handshake: the server public key is not the master's",
            ),
            Error::BadReply => f.write_str("master's reply does not answer the request"),
            Error::BufferTooSmall => f.write_str("buffer too small"),
            Error::SchemaTooLarge => write!(
                f,
                "the type's schema is larger than {} bytes, the most a grant request carries",
                zerosmq_core::limits::MAX_SCHEMA_LEN
            ),
            Error::InvalidName(e) => write!(f, "invalid name: {e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// The same words as `Display`, for `defmt` (without the details that need `core::fmt`).
#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for Error<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Error::Transport(e) => defmt::write!(f, "transport error: {}", e),
            Error::Disconnected => defmt::write!(f, "peer closed the connection"),
            Error::TimedOut => defmt::write!(f, "read timed out"),
            Error::Protocol(_) => defmt::write!(f, "ZMTP protocol error"),
            Error::FrameTooLarge { len, capacity } => defmt::write!(
                f,
                "a {}-byte frame was skipped: the receive buffer holds {}",
                len,
                capacity
            ),
            Error::Refused(code) => {
                defmt::write!(f, "master refused the request: {}", code.as_str())
            }
            Error::AuthFailed { status } => defmt::write!(
                f,
                "authentication failed: the master refused the PLAIN credentials or the CURVE public key (status {})",
                status
            ),
            Error::WrongServerKey => defmt::write!(
                f,
                "the master closed the CURVE handshake: the server public key is not the master's"
            ),
            Error::BadReply => defmt::write!(f, "master's reply does not answer the request"),
            Error::BufferTooSmall => defmt::write!(f, "buffer too small"),
            Error::SchemaTooLarge => defmt::write!(f, "schema too large"),
            Error::InvalidName(_) => defmt::write!(f, "invalid name"),
        }
    }
}

impl<E> From<NameError> for Error<E> {
    fn from(e: NameError) -> Self {
        Error::InvalidName(e)
    }
}
