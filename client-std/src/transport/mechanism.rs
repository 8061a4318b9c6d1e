//! The one place that picks the ZMTP security mechanism of this node's native connections
//! (data and control alike): NULL, PLAIN with a user name and password, or (feature `curve`)
//! CURVE with the master's public key and this node's key pair; and how frames travel once a
//! connection is open: as they are, or each in a CURVE MESSAGE box ([`Sealer`] for what we
//! write, [`Opener`] for what we read).
//!
//! The links and the control connection frame everything they write through a [`Sealer`] and
//! read through an [`Inbound`](super::inbound::Inbound) that holds the connection's [`Opener`],
//! so the rest of the data path sees plain ZMTP frames whatever the mechanism.

use zerosmq_core::zmtp::{command, Connection, FrameHeader, PlainCredentials, SocketType};

#[cfg(feature = "curve")]
use zerosmq_core::zmtp::curve::{CurveKeyPair, CurveSession, FLAG_COMMAND, FLAG_MORE, KEY_LEN};

use super::handshake::ConnectError;

/// How a node's native connections authenticate to the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Null,
    Plain {
        user: String,
        password: String,
    },
    /// CURVE (RFC 26) to a master whose public key is `server`, as the client `keys`.
    #[cfg(feature = "curve")]
    Curve {
        server: [u8; KEY_LEN],
        keys: Box<CurveKeyPair>,
    },
}

impl Mechanism {
    /// PLAIN when credentials are given, else NULL.
    pub(crate) fn from_plain(credentials: Option<&(String, String)>) -> Mechanism {
        match credentials {
            Some((user, password)) => Mechanism::Plain {
                user: user.clone(),
                password: password.clone(),
            },
            None => Mechanism::Null,
        }
    }

    /// Whether this is CURVE.
    pub(crate) fn is_curve(&self) -> bool {
        #[cfg(feature = "curve")]
        if let Mechanism::Curve { .. } = self {
            return true;
        }
        false
    }

    /// A fresh client connection of `socket_type`, to be kept between steps. PLAIN borrows its
    /// credentials, so the stored connection holds empty ones and [`Mechanism::lend`] puts the
    /// real ones in for each step. Too long credentials are refused as the master would. A
    /// CURVE connection draws its ephemeral keys from the OS now.
    pub(crate) fn client(
        &self,
        socket_type: SocketType,
    ) -> Result<Connection<'static>, ConnectError> {
        Ok(match self {
            Mechanism::Null => Connection::new(socket_type),
            Mechanism::Plain { .. } => {
                self.credentials()?;
                Connection::plain(socket_type, PlainCredentials::EMPTY)
            }
            #[cfg(feature = "curve")]
            Mechanism::Curve { server, keys } => Connection::curve_client(
                socket_type,
                *server,
                CurveKeyPair::clone(keys),
                &mut rand_core::OsRng,
            ),
        })
    }

    /// `conn` (made by [`Mechanism::client`]) with this mechanism's secrets, for one step.
    pub(crate) fn lend<'m>(
        &'m self,
        conn: Connection<'static>,
    ) -> Result<Connection<'m>, ConnectError> {
        Ok(match self {
            Mechanism::Plain { .. } => conn.with_credentials(self.credentials()?),
            _ => conn,
        })
    }

    /// `conn` back in storable form after a step.
    pub(crate) fn take_back(&self, conn: Connection<'_>) -> Connection<'static> {
        conn.with_credentials(PlainCredentials::EMPTY)
    }

    fn credentials(&self) -> Result<PlainCredentials<'_>, ConnectError> {
        match self {
            Mechanism::Plain { user, password } => {
                PlainCredentials::new(user, password).map_err(|_| ConnectError::AuthFailed)
            }
            _ => Ok(PlainCredentials::EMPTY),
        }
    }
}

/// The two halves of an open connection's framing: what we write and what we read. With
/// CURVE each half holds a copy of the session: sealing only advances our nonce, opening only
/// the peer's, so the halves can live with different owners (a publisher's writers and its
/// reader).
pub(crate) fn framing(conn: &Connection<'_>) -> (Sealer, Option<Opener>) {
    #[cfg(feature = "curve")]
    if let Some(session) = conn.curve_session() {
        return (
            Sealer {
                curve: Some(Box::new(session.clone())),
            },
            Some(Opener {
                curve: Box::new(session.clone()),
                raw: bytes::BytesMut::new(),
            }),
        );
    }
    let _ = conn;
    (Sealer::default(), None)
}

/// How we write frames on an open connection: plain ZMTP frames (NULL, PLAIN), or each frame
/// in a CURVE MESSAGE box with the next nonce. Boxes must reach the wire in the order they were
/// sealed, so a sealer is used under the same lock as the buffer it appends to.
#[derive(Default)]
pub(crate) struct Sealer {
    #[cfg(feature = "curve")]
    curve: Option<Box<CurveSession>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// Appends one message frame carrying the concatenation of `parts`.
    pub(crate) fn message(&mut self, parts: &[&[u8]], more: bool, out: &mut Vec<u8>) {
        #[cfg(feature = "curve")]
        if let Some(session) = &mut self.curve {
            return seal(session, if more { FLAG_MORE } else { 0 }, parts, out);
        }
        let len = parts.iter().map(|p| p.len()).sum();
        let (h, n) = Connection::message_header(len, more);
        out.extend_from_slice(&h[..n]);
        for p in parts {
            out.extend_from_slice(p);
        }
    }

    /// Appends one command frame whose body is the concatenation of `parts`.
    fn command(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        #[cfg(feature = "curve")]
        if let Some(session) = &mut self.curve {
            return seal(session, FLAG_COMMAND, parts, out);
        }
        let len = parts.iter().map(|p| p.len()).sum();
        let (h, n) = FrameHeader::command(len).to_bytes();
        out.extend_from_slice(&h[..n]);
        for p in parts {
            out.extend_from_slice(p);
        }
    }

    /// Appends our ZMTP PING: its TTL tells the master how long we wait for an answer.
    pub(crate) fn ping(&mut self, out: &mut Vec<u8>) {
        let ttl = u16::try_from(super::DEAD_AFTER.as_millis() / 100).unwrap_or(u16::MAX);
        self.command(&[b"\x04PING", &ttl.to_be_bytes()], out);
    }

    /// Appends the PONG to a PING with `context`.
    pub(crate) fn pong(&mut self, context: &[u8], out: &mut Vec<u8>) {
        let context = &context[..context.len().min(command::MAX_PING_CONTEXT)];
        self.command(&[b"\x04PONG", context], out);
    }

    /// Appends a subscription (`subscribe`) or cancellation in the form a peer of ZMTP
    /// 3.`minor` needs: the SUBSCRIBE / CANCEL command from 3.1, the `1 prefix` / `0 prefix`
    /// message before (see `zerosmq_core::zmtp::encode_subscription`).
    pub(crate) fn subscription(
        &mut self,
        minor: u8,
        subscribe: bool,
        prefix: &[u8],
        out: &mut Vec<u8>,
    ) {
        match (minor >= 1, subscribe) {
            (true, true) => self.command(&[b"\x09SUBSCRIBE", prefix], out),
            (true, false) => self.command(&[b"\x06CANCEL", prefix], out),
            (false, true) => self.message(&[b"\x01", prefix], false, out),
            (false, false) => self.message(&[b"\x00", prefix], false, out),
        }
    }
}

/// Appends a MESSAGE box; a session whose nonces ran out (after 2^64 boxes) writes nothing,
/// and the master drops the connection when it misses its PONGs.
#[cfg(feature = "curve")]
fn seal(session: &mut CurveSession, flags: u8, parts: &[&[u8]], out: &mut Vec<u8>) {
    let len = parts.iter().map(|p| p.len()).sum();
    let at = out.len();
    out.resize(at + CurveSession::message_wire_len(len), 0);
    match session.encode_message(flags, parts, &mut out[at..]) {
        Ok(n) => out.truncate(at + n),
        Err(_) => out.truncate(at),
    }
}

/// The reading half of a CURVE connection: the bytes read (`raw`, boxes) and the session
/// that opens them into plain frames for [`Inbound`](super::inbound::Inbound).
pub(crate) struct Opener {
    #[cfg(feature = "curve")]
    curve: Box<CurveSession>,
    #[cfg(feature = "curve")]
    raw: bytes::BytesMut,
}

/// Why a received box cannot be opened; the connection must be dropped.
#[cfg(feature = "curve")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenError;

impl Opener {
    /// Reads what `fd` has now, without blocking, and appends the plain frames of every whole
    /// box to `plain`; `needed` is how many more bytes `plain` needs for its next unit.
    pub(crate) fn fill(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        plain: &mut bytes::BytesMut,
        needed: usize,
    ) -> std::io::Result<super::inbound::Fill> {
        use super::inbound::Fill;
        #[cfg(feature = "curve")]
        {
            use super::inbound::READ_CHUNK;
            // A box is 33 bytes more than the frame it carries (plus a longer header).
            let want = needed.saturating_sub(plain.len()) + 64;
            let spare = self.raw.capacity() - self.raw.len();
            if spare < want.max(4096) {
                self.raw.reserve(want.max(READ_CHUNK));
            }
            let got = match super::sys::recv_now(fd, &mut self.raw, usize::MAX)? {
                None => Fill::Empty,
                Some(0) => Fill::Closed,
                Some(_) => Fill::Data,
            };
            self.open_into(plain)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
            Ok(got)
        }
        #[cfg(not(feature = "curve"))]
        {
            let _ = (fd, plain, needed);
            Ok(Fill::Closed)
        }
    }

    /// Opens every whole box at the front of `raw` into `plain`.
    #[cfg(feature = "curve")]
    fn open_into(&mut self, plain: &mut bytes::BytesMut) -> Result<(), OpenError> {
        use zerosmq_core::zmtp::HeaderError;
        loop {
            let (header, header_len) = match FrameHeader::parse(&self.raw) {
                Ok(h) => h,
                Err(HeaderError::Incomplete { .. }) => return Ok(()),
                Err(_) => return Err(OpenError),
            };
            if header.len > super::inbound::MAX_FRAME_LEN + 64 {
                return Err(OpenError);
            }
            let end = header_len + header.len as usize;
            if self.raw.len() < end {
                return Ok(());
            }
            let mut frame = self.raw.split_to(end);
            let body = &mut frame[header_len..];
            let (flags, len) = self.curve.decode_message(body).map_err(|_| OpenError)?;
            let inner = if flags & FLAG_COMMAND != 0 {
                FrameHeader::command(len)
            } else {
                FrameHeader::message(len, flags & FLAG_MORE != 0)
            };
            let (h, n) = inner.to_bytes();
            plain.extend_from_slice(&h[..n]);
            plain.extend_from_slice(&body[33..33 + len]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With NULL and PLAIN the sealer writes the plain frames core's encoders write.
    #[test]
    fn plain_framing_is_core_framing() {
        let mut s = Sealer::default();
        let mut out = Vec::new();
        s.message(&[b"t ", b"hello"], true, &mut out);
        s.message(&[b"x"], false, &mut out);
        assert_eq!(out, b"\x01\x07t hello\x00\x01x");
        for (minor, subscribe) in [(0, true), (0, false), (1, true), (1, false)] {
            let mut ours = Vec::new();
            s.subscription(minor, subscribe, b"imu", &mut ours);
            let mut core = [0u8; 32];
            let n = zerosmq_core::zmtp::encode_subscription(minor, subscribe, b"imu", &mut core)
                .unwrap();
            assert_eq!(ours, &core[..n], "minor {minor} subscribe {subscribe}");
        }
        let mut ping = Vec::new();
        s.ping(&mut ping);
        let mut core = [0u8; 16];
        let n = command::encode_ping(300, b"", &mut core).unwrap();
        assert_eq!(ping, &core[..n]);
        let mut pong = Vec::new();
        s.pong(b"ab", &mut pong);
        let n = command::encode_pong(b"ab", &mut core).unwrap();
        assert_eq!(pong, &core[..n]);
    }
}
