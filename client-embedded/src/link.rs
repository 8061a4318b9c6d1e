//! One connection's I/O steps, shared by both drivers: what to write next, where to read, and
//! what a read produced, as the node's error values. The drivers only move the bytes.
//!
//! `#[inline]`: each is called from one place per driver loop, and `opt-level = "z"` would
//! otherwise keep the calls (the firmware's flash grew by them).

use embedded_io::ErrorKind;
use zerosmq_core::zmtp::{Connection, Event, ZmtpError};

use crate::Error;

/// The next bytes to write (greeting, handshake command, PONG): `buf[..n]`, or `None`.
#[inline]
pub(crate) fn transmit<E>(
    conn: &mut Connection<'_>,
    buf: &mut [u8],
) -> Result<Option<usize>, Error<E>> {
    conn.poll_transmit(buf).map_err(|_| Error::BufferTooSmall)
}

/// The part of `buf` to read into; empty would mean a read that can never make progress.
#[inline]
pub(crate) fn read_buffer<'b, E>(
    conn: &Connection<'_>,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], Error<E>> {
    let dst = conn.read_buffer(buf);
    if dst.is_empty() {
        return Err(if conn.is_closed() {
            Error::Protocol(ZmtpError::Closed)
        } else {
            Error::BufferTooSmall
        });
    }
    Ok(dst)
}

/// Commits what a read into [`read_buffer`] returned: an event, `None` for more, or the error
/// (EOF is [`Error::Disconnected`], a transport timeout [`Error::TimedOut`]).
#[inline]
pub(crate) fn on_read<E: embedded_io::Error>(
    conn: &mut Connection<'_>,
    read: Result<usize, E>,
    buf: &mut [u8],
) -> Result<Option<Event>, Error<E>> {
    let n = match read {
        Ok(0) => return Err(Error::Disconnected),
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::TimedOut => return Err(Error::TimedOut),
        Err(e) => return Err(Error::Transport(e)),
    };
    // In place: CURVE opens its boxes in the buffer (the same as `commit` otherwise).
    match conn.commit_in_place(n, buf) {
        Ok(ev) => Ok(ev),
        Err(ZmtpError::FrameTooLarge { header, capacity }) if !conn.is_closed() => {
            Err(Error::FrameTooLarge {
                len: header.len,
                capacity,
            })
        }
        Err(ZmtpError::AuthFailed { status }) => Err(Error::AuthFailed { status }),
        Err(e) => Err(Error::Protocol(e)),
    }
}
