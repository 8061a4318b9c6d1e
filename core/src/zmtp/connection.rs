//! One ZMTP connection's state: greeting, NULL handshake, then frames and commands.
//!
//! Sans-IO: the driver moves bytes in through [`Connection::read_buffer`] /
//! [`Connection::commit`] and out through [`Connection::poll_transmit`] (greeting, READY, PONG)
//! and the `encode_*` helpers (messages and subscriptions).
//!
//! Order on the wire: our greeting at once; our READY only once the peer's greeting arrived;
//! anything else only after the peer's READY ([`Event::Ready`]). libzmq 4.3.4 drops a connection
//! whose SUBSCRIBE arrives together with greeting and READY (checked against it), so drivers must
//! not pipeline past the handshake.

use super::command::{self, Command, SocketType, MAX_PING_CONTEXT};
use super::decoder::{Decoded, FrameDecoder};
use super::frame::{FrameHeader, FrameKind, MAX_HEADER_LEN};
use super::greeting::{Greeting, GREETING_LEN};
use super::{EncodeError, ZmtpError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the peer's greeting.
    Greeting,
    /// Greeting exchanged, waiting for the peer's READY.
    Ready,
    /// Handshake done.
    Open,
    /// A fatal error happened.
    Closed,
}

/// What a commit produced for the role above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The handshake finished; the peer is of this type and speaks ZMTP 3.`minor`.
    Ready { peer: SocketType, minor: u8 },
    /// A message frame; its body is `rx[..len]`.
    Message { len: usize, more: bool },
    /// The peer subscribed (3.1 command or 3.0 message form); the prefix is `rx[start..start+len]`.
    Subscribe { start: usize, len: usize },
    /// The peer cancelled a subscription; same layout as [`Event::Subscribe`].
    Cancel { start: usize, len: usize },
}

/// The state of one connection (a few dozen bytes; buffers are the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    socket_type: SocketType,
    decoder: FrameDecoder,
    phase: Phase,
    minor: u8,
    send_greeting: bool,
    send_ready: bool,
    /// Context of a PING still to be answered, with its length.
    pong: Option<([u8; MAX_PING_CONTEXT], u8)>,
    /// Inside a multipart message: later frames are not subscriptions.
    in_multipart: bool,
}

impl Connection {
    /// A fresh connection for a local socket of `socket_type`; the greeting is pending.
    pub const fn new(socket_type: SocketType) -> Self {
        Connection {
            socket_type,
            decoder: FrameDecoder::new(),
            phase: Phase::Greeting,
            minor: 0,
            send_greeting: true,
            send_ready: false,
            pong: None,
            in_multipart: false,
        }
    }

    /// Our socket type.
    pub fn socket_type(&self) -> SocketType {
        self.socket_type
    }

    /// Whether the handshake is complete.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether a fatal error closed the connection.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The negotiated minor version (0 or 1), once the greeting was received.
    pub fn minor(&self) -> u8 {
        self.minor
    }

    /// Bytes to write next (greeting, READY, PONG), encoded into `tx`; `None` when nothing is
    /// pending. `tx` needs at least 64 bytes.
    pub fn poll_transmit(&mut self, tx: &mut [u8]) -> Result<Option<usize>, EncodeError> {
        if self.send_greeting {
            let out = tx
                .get_mut(..GREETING_LEN)
                .ok_or(EncodeError::BufferTooSmall)?;
            out.copy_from_slice(&Greeting::ours().to_bytes());
            self.send_greeting = false;
            return Ok(Some(GREETING_LEN));
        }
        if self.send_ready {
            let n = command::encode_ready(self.socket_type, b"", tx)?;
            self.send_ready = false;
            return Ok(Some(n));
        }
        if let Some((ctx, len)) = self.pong {
            let n = command::encode_pong(&ctx[..usize::from(len)], tx)?;
            self.pong = None;
            return Ok(Some(n));
        }
        Ok(None)
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has something to send.
    pub fn wants_transmit(&self) -> bool {
        self.send_greeting || self.send_ready || self.pong.is_some()
    }

    /// The part of `rx` to read into next (see [`FrameDecoder::read_buffer`]).
    pub fn read_buffer<'b>(&self, rx: &'b mut [u8]) -> &'b mut [u8] {
        self.decoder.read_buffer(rx)
    }

    /// Records `n` bytes read into [`read_buffer`](Self::read_buffer)'s slice.
    ///
    /// Errors are fatal (the connection must be dropped) except [`ZmtpError::FrameTooLarge`] once
    /// the connection is open: that frame was skipped and the stream is still in sync.
    pub fn commit(&mut self, n: usize, rx: &[u8]) -> Result<Option<Event>, ZmtpError> {
        if self.phase == Phase::Closed {
            return Err(ZmtpError::Closed);
        }
        let decoded = match self.decoder.commit(n, rx) {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(ZmtpError::FrameTooLarge { header, capacity }) if self.phase == Phase::Open => {
                if header.kind == FrameKind::Message {
                    self.in_multipart = header.more;
                }
                return Err(ZmtpError::FrameTooLarge { header, capacity });
            }
            Err(e) => return self.fail(e),
        };
        match (self.phase, decoded) {
            (Phase::Greeting, Decoded::Greeting(g)) => {
                self.minor = g.negotiated_minor();
                self.send_ready = true;
                self.phase = Phase::Ready;
                Ok(None)
            }
            (Phase::Ready, Decoded::Frame(h)) => self.on_handshake_frame(h, rx),
            (Phase::Open, Decoded::Frame(h)) => self.on_frame(h, rx),
            _ => self.fail(ZmtpError::UnexpectedFrame),
        }
    }

    fn on_handshake_frame(
        &mut self,
        h: FrameHeader,
        rx: &[u8],
    ) -> Result<Option<Event>, ZmtpError> {
        if h.kind != FrameKind::Command {
            return self.fail(ZmtpError::UnexpectedFrame);
        }
        let body = rx.get(..h.len as usize).unwrap_or(&[]);
        match Command::parse(body) {
            Ok(Command::Ready(props)) => {
                let Some(peer) = props.socket_type() else {
                    return self.fail(ZmtpError::MissingSocketType);
                };
                if !self.socket_type.accepts(peer) {
                    return self.fail(ZmtpError::IncompatiblePeer(peer));
                }
                self.phase = Phase::Open;
                Ok(Some(Event::Ready {
                    peer,
                    minor: self.minor,
                }))
            }
            Ok(Command::Error { .. }) => self.fail(ZmtpError::PeerError),
            Ok(_) => self.fail(ZmtpError::UnexpectedFrame),
            Err(e) => self.fail(ZmtpError::Command(e)),
        }
    }

    fn on_frame(&mut self, h: FrameHeader, rx: &[u8]) -> Result<Option<Event>, ZmtpError> {
        let len = h.len as usize;
        let body = rx.get(..len).unwrap_or(&[]);
        if h.kind == FrameKind::Message {
            let first = !self.in_multipart;
            self.in_multipart = h.more;
            let publishing = matches!(self.socket_type, SocketType::Pub | SocketType::XPub);
            if !publishing {
                return Ok(Some(Event::Message { len, more: h.more }));
            }
            // ZMTP 3.0 subscriptions: a one-frame message starting with 1 (subscribe) or 0.
            return Ok(match (first && !h.more, body.first()) {
                (true, Some(1)) => Some(Event::Subscribe {
                    start: 1,
                    len: len - 1,
                }),
                (true, Some(0)) => Some(Event::Cancel {
                    start: 1,
                    len: len - 1,
                }),
                _ => None,
            });
        }
        // Offsets of the data: after the name-size byte and the name.
        let data_start = 1 + usize::from(body.first().copied().unwrap_or(0));
        match Command::parse(body) {
            Ok(Command::Subscribe(p)) => Ok(Some(Event::Subscribe {
                start: data_start,
                len: p.len(),
            })),
            Ok(Command::Cancel(p)) => Ok(Some(Event::Cancel {
                start: data_start,
                len: p.len(),
            })),
            Ok(Command::Ping { context, .. }) => {
                let mut ctx = [0u8; MAX_PING_CONTEXT];
                ctx[..context.len()].copy_from_slice(context);
                self.pong = Some((ctx, context.len() as u8));
                Ok(None)
            }
            Ok(Command::Error { .. }) => self.fail(ZmtpError::PeerError),
            // PONG, a repeated READY and unknown commands need nothing (RFC 37 says ignore).
            Ok(_) => Ok(None),
            Err(e) => self.fail(ZmtpError::Command(e)),
        }
    }

    fn fail(&mut self, e: ZmtpError) -> Result<Option<Event>, ZmtpError> {
        self.phase = Phase::Closed;
        Err(e)
    }

    /// Header of a message frame of `len` bytes, for drivers that write the body from the
    /// caller's slice without copying.
    pub fn message_header(len: usize, more: bool) -> ([u8; MAX_HEADER_LEN], usize) {
        FrameHeader::message(len, more).to_bytes()
    }

    /// A whole message frame (header and `body`) in `tx`.
    pub fn encode_message(body: &[u8], more: bool, tx: &mut [u8]) -> Result<usize, EncodeError> {
        let at = FrameHeader::message(body.len(), more).encode(tx)?;
        let end = at + body.len();
        tx.get_mut(at..end)
            .ok_or(EncodeError::BufferTooSmall)?
            .copy_from_slice(body);
        Ok(end)
    }

    /// A subscription in the form the negotiated version needs: SUBSCRIBE command for 3.1,
    /// message `0x01 prefix` for 3.0.
    pub fn encode_subscribe(&self, prefix: &[u8], tx: &mut [u8]) -> Result<usize, EncodeError> {
        self.encode_subscription(true, prefix, tx)
    }

    /// An unsubscription, in the negotiated version's form (CANCEL or `0x00 prefix`).
    pub fn encode_cancel(&self, prefix: &[u8], tx: &mut [u8]) -> Result<usize, EncodeError> {
        self.encode_subscription(false, prefix, tx)
    }

    fn encode_subscription(
        &self,
        subscribe: bool,
        prefix: &[u8],
        tx: &mut [u8],
    ) -> Result<usize, EncodeError> {
        match (self.minor >= 1, subscribe) {
            (true, true) => command::encode_subscribe(prefix, tx),
            (true, false) => command::encode_cancel(prefix, tx),
            (false, _) => {
                let at = FrameHeader::message(prefix.len() + 1, false).encode(tx)?;
                let end = at + 1 + prefix.len();
                let out = tx.get_mut(at..end).ok_or(EncodeError::BufferTooSmall)?;
                out[0] = u8::from(subscribe);
                out[1..].copy_from_slice(prefix);
                Ok(end)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` `chunk` bytes at a time; returns events (with copied bodies) and errors.
    fn feed(
        conn: &mut Connection,
        rx: &mut [u8],
        input: &[u8],
        chunk: usize,
        out: &mut [(Option<Event>, [u8; 16])],
    ) -> Result<usize, ZmtpError> {
        let mut input = input;
        let mut k = 0;
        while !input.is_empty() {
            let dst = conn.read_buffer(rx);
            let n = dst.len().min(chunk).min(input.len());
            dst[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            if let Some(ev) = conn.commit(n, rx)? {
                let mut copy = [0u8; 16];
                let (s, l) = match ev {
                    Event::Message { len, .. } => (0, len),
                    Event::Subscribe { start, len } | Event::Cancel { start, len } => (start, len),
                    Event::Ready { .. } => (0, 0),
                };
                copy[..l.min(16)].copy_from_slice(&rx[s..s + l.min(16)]);
                out[k] = (Some(ev), copy);
                k += 1;
            }
        }
        Ok(k)
    }

    fn handshake_bytes(conn: &mut Connection) -> ([u8; 128], usize) {
        let mut tx = [0u8; 128];
        let n = conn.poll_transmit(&mut tx).unwrap().unwrap();
        (tx, n)
    }

    #[test]
    fn subscriber_against_recorded_libzmq_xpub() {
        let stream = include_bytes!("testdata/libzmq-xpub.bin");
        for chunk in [1, 3, 64, 500] {
            let mut c = Connection::new(SocketType::Sub);
            let (tx, n) = handshake_bytes(&mut c);
            assert_eq!(&tx[..n], &Greeting::ours().to_bytes());
            assert_eq!(c.poll_transmit(&mut [0u8; 64]), Ok(None));
            let mut rx = [0u8; 64];
            let mut ev = [(None, [0u8; 16]); 4];
            assert_eq!(feed(&mut c, &mut rx, stream, chunk, &mut ev), Ok(2));
            assert_eq!(
                ev[0].0,
                Some(Event::Ready {
                    peer: SocketType::XPub,
                    minor: 1
                })
            );
            assert_eq!(
                ev[1].0,
                Some(Event::Message {
                    len: 9,
                    more: false
                })
            );
            assert_eq!(&ev[1].1[..9], b"imu hello");
            // READY went out after the greeting came in.
            let mut tx = [0u8; 64];
            let n = c.poll_transmit(&mut tx).unwrap().unwrap();
            assert_eq!(
                &tx[..n],
                &include_bytes!("testdata/libzmq-sub-v31.bin")[64..91]
            );
            // 3.1: subscriptions are commands.
            let n = c.encode_subscribe(b"imu", &mut tx).unwrap();
            assert_eq!(&tx[..n], b"\x04\x0d\x09SUBSCRIBEimu");
        }
    }

    #[test]
    fn publisher_sees_both_subscription_forms() {
        for (stream, minor) in [
            (&include_bytes!("testdata/libzmq-sub-v31.bin")[..], 1),
            (&include_bytes!("testdata/libzmq-sub-v30.bin")[..], 1),
        ] {
            let mut c = Connection::new(SocketType::Pub);
            let mut rx = [0u8; 64];
            let mut ev = [(None, [0u8; 16]); 4];
            assert_eq!(feed(&mut c, &mut rx, stream, 1, &mut ev), Ok(2));
            assert_eq!(
                ev[0].0,
                Some(Event::Ready {
                    peer: SocketType::Sub,
                    minor
                })
            );
            assert!(matches!(ev[1].0, Some(Event::Subscribe { len: 3, .. })));
            assert_eq!(&ev[1].1[..3], b"imu");
        }
    }

    #[test]
    fn zmtp30_peer_gets_message_form_subscriptions() {
        let mut g = Greeting::ours().to_bytes();
        g[11] = 0;
        let mut stream = [0u8; 64 + 27];
        stream[..64].copy_from_slice(&g);
        stream[64..].copy_from_slice(&include_bytes!("testdata/libzmq-pub.bin")[64..91]);
        let mut c = Connection::new(SocketType::Sub);
        let mut rx = [0u8; 64];
        let mut ev = [(None, [0u8; 16]); 2];
        assert_eq!(feed(&mut c, &mut rx, &stream, 7, &mut ev), Ok(1));
        assert_eq!(c.minor(), 0);
        let mut tx = [0u8; 16];
        let n = c.encode_subscribe(b"imu", &mut tx).unwrap();
        assert_eq!(&tx[..n], b"\x00\x04\x01imu");
        let n = c.encode_cancel(b"imu", &mut tx).unwrap();
        assert_eq!(&tx[..n], b"\x00\x04\x00imu");
    }

    #[test]
    fn ping_is_answered_with_pong() {
        let mut stream = [0u8; 64 + 27 + 12];
        stream[..91].copy_from_slice(&include_bytes!("testdata/libzmq-pub.bin")[..91]);
        stream[91..].copy_from_slice(b"\x04\x0a\x04PING\x00\x0axyz");
        let mut c = Connection::new(SocketType::Sub);
        let mut rx = [0u8; 64];
        let mut ev = [(None, [0u8; 16]); 2];
        assert_eq!(feed(&mut c, &mut rx, &stream, 100, &mut ev), Ok(1));
        let mut tx = [0u8; 64];
        c.poll_transmit(&mut tx).unwrap(); // greeting
        c.poll_transmit(&mut tx).unwrap(); // READY
        let n = c.poll_transmit(&mut tx).unwrap().unwrap();
        assert_eq!(&tx[..n], b"\x04\x08\x04PONGxyz");
        assert!(!c.wants_transmit());
    }

    #[test]
    fn req_reply_from_recorded_libzmq_rep() {
        let stream = include_bytes!("testdata/libzmq-rep.bin");
        let mut c = Connection::new(SocketType::Req);
        let mut rx = [0u8; 64];
        let mut ev = [(None, [0u8; 16]); 4];
        assert_eq!(feed(&mut c, &mut rx, stream, 2, &mut ev), Ok(3));
        assert_eq!(ev[1].0, Some(Event::Message { len: 0, more: true }));
        assert_eq!(
            ev[2].0,
            Some(Event::Message {
                len: 18,
                more: false
            })
        );
        assert_eq!(&ev[2].1, b"REQUEST GRANT 60");
    }

    #[test]
    fn handshake_errors_are_fatal() {
        let g = Greeting::ours().to_bytes();
        let mut rx = [0u8; 64];
        let mut ev = [(None, [0u8; 16]); 2];
        // A PUB peer for a PUB socket.
        let mut stream = [0u8; 64 + 27];
        stream[..64].copy_from_slice(&g);
        stream[64..].copy_from_slice(&include_bytes!("testdata/libzmq-pub.bin")[64..91]);
        let mut c = Connection::new(SocketType::Pub);
        assert_eq!(
            feed(&mut c, &mut rx, &stream, 64, &mut ev),
            Err(ZmtpError::IncompatiblePeer(SocketType::Pub))
        );
        assert!(c.is_closed());
        assert_eq!(c.commit(1, &rx), Err(ZmtpError::Closed));
        // A message before READY.
        let mut stream = [0u8; 64 + 3];
        stream[..64].copy_from_slice(&g);
        stream[64..].copy_from_slice(b"\x00\x01x");
        let mut c = Connection::new(SocketType::Sub);
        assert_eq!(
            feed(&mut c, &mut rx, &stream, 64, &mut ev),
            Err(ZmtpError::UnexpectedFrame)
        );
        // ERROR from the peer.
        let mut stream = [0u8; 64 + 11];
        stream[..64].copy_from_slice(&g);
        stream[64..].copy_from_slice(b"\x04\x09\x05ERROR\x02no");
        let mut c = Connection::new(SocketType::Sub);
        assert_eq!(
            feed(&mut c, &mut rx, &stream, 64, &mut ev),
            Err(ZmtpError::PeerError)
        );
        // READY without Socket-Type.
        let mut stream = [0u8; 64 + 8];
        stream[..64].copy_from_slice(&g);
        stream[64..].copy_from_slice(b"\x04\x06\x05READY");
        let mut c = Connection::new(SocketType::Sub);
        assert_eq!(
            feed(&mut c, &mut rx, &stream, 64, &mut ev),
            Err(ZmtpError::MissingSocketType)
        );
    }

    #[test]
    fn encode_message_exact_bytes() {
        let mut tx = [0u8; 16];
        assert_eq!(Connection::encode_message(b"imu 1", false, &mut tx), Ok(7));
        assert_eq!(&tx[..7], b"\x00\x05imu 1");
        assert_eq!(
            Connection::encode_message(&[0u8; 15], false, &mut tx),
            Err(EncodeError::BufferTooSmall)
        );
        assert_eq!(
            Connection::message_header(0, true),
            ([1, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
    }
}
