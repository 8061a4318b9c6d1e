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

#[cfg(all(test, feature = "curve"))]
mod tests {
    use super::*;
    use zerosmq_core::zmtp::curve::{CurveError, CurveKeyPair, ReplayRng};
    use zerosmq_core::zmtp::SocketType;

    #[derive(Debug, PartialEq)]
    struct Broken;

    impl core::fmt::Display for Broken {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("broken")
        }
    }

    impl core::error::Error for Broken {}

    impl embedded_io::Error for Broken {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    /// Feeds `bytes` to the node's side as its reads would, one read at a time; the last
    /// result.
    fn feed(
        conn: &mut Connection<'_>,
        mut bytes: &[u8],
        rx: &mut [u8],
    ) -> Result<Option<Event>, Error<Broken>> {
        let mut last = None;
        while !bytes.is_empty() {
            let dst = read_buffer(conn, rx)?;
            let n = dst.len().min(bytes.len());
            dst[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            last = on_read(conn, Ok::<_, Broken>(n), rx)?;
        }
        Ok(last)
    }

    /// A node's SUB and a CURVE XPUB server with the handshake done between them.
    fn open_pair() -> (Connection<'static>, Connection<'static>) {
        let server_keys = CurveKeyPair::from_secret([3; 32]);
        let mut node = Connection::curve_client(
            SocketType::Sub,
            *server_keys.public(),
            CurveKeyPair::from_secret([4; 32]),
            &mut ReplayRng(1),
        );
        let mut server = Connection::curve_server(SocketType::XPub, server_keys, &mut ReplayRng(2));
        let (mut tx, mut rx, mut srx) = ([0u8; 320], [0u8; 320], [0u8; 320]);
        while !node.is_open() {
            while let Some(n) = node.poll_transmit(&mut tx).unwrap() {
                let mut sent = &tx[..n];
                while !sent.is_empty() {
                    let dst = server.read_buffer(&mut srx);
                    let k = dst.len().min(sent.len());
                    dst[..k].copy_from_slice(&sent[..k]);
                    sent = &sent[k..];
                    server.commit_in_place(k, &mut srx).unwrap();
                }
                if server.awaits_admission() {
                    server.admit(true).unwrap();
                }
            }
            while let Some(n) = server.poll_transmit(&mut tx).unwrap() {
                feed(&mut node, &tx[..n], &mut rx).unwrap();
            }
        }
        (node, server)
    }

    #[test]
    fn a_replayed_or_tampered_message_box_is_an_error_not_a_panic() {
        let (node, mut server) = open_pair();
        let (mut tx, mut rx) = ([0u8; 128], [0u8; 128]);
        let n = server.write_message(&[b"imu 42"], false, &mut tx).unwrap();
        let message = &tx[..n];

        let mut first = node.clone();
        let ev = feed(&mut first, message, &mut rx).unwrap();
        assert_eq!(
            ev,
            Some(Event::Message {
                len: 6,
                more: false
            })
        );
        assert_eq!(&rx[..6], b"imu 42");
        // The same box again: its nonce is not above the last one.
        assert_eq!(
            feed(&mut first, message, &mut rx),
            Err(Error::Protocol(ZmtpError::Curve(CurveError::Nonce)))
        );
        assert!(first.is_closed());

        // Every bit flipped in turn, never a panic. In the body (command name, nonce, box) it is
        // an error; in the frame header it may only make the frame longer (more bytes wanted)
        // or set flags the box's own flags stand in for (the message still authentic).
        for i in 0..message.len() {
            for bit in 0..8 {
                let mut bad = [0u8; 128];
                bad[..n].copy_from_slice(message);
                bad[i] ^= 1 << bit;
                let got = feed(&mut node.clone(), &bad[..n], &mut rx);
                if i >= 2 {
                    assert!(
                        got.is_err(),
                        "byte {i} bit {bit}: {got:?} from a forged box"
                    );
                } else if let Ok(Some(ev)) = got {
                    assert_eq!(
                        ev,
                        Event::Message {
                            len: 6,
                            more: false
                        }
                    );
                    assert_eq!(&rx[..6], b"imu 42");
                }
            }
        }
        let mut bad = [0u8; 128];
        bad[..n].copy_from_slice(message);
        bad[n - 1] ^= 0x01;
        assert_eq!(
            feed(&mut node.clone(), &bad[..n], &mut rx),
            Err(Error::Protocol(ZmtpError::Curve(CurveError::Crypto)))
        );
    }
}
