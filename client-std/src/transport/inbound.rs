//! Frames after the handshake, decoded in place from large reads.
//!
//! Core's `FrameDecoder` reads exactly one frame at a time (right for the handshake and for
//! small devices); a std host under load wants one `recv` of 64 KiB to carry thousands of
//! messages. So the bytes land in one buffer, [`complete_prefix`] (pure, over a slice) finds where
//! the last whole message ends, and that part is frozen into [`Bytes`] that messages share:
//! a message costs a reference count, not an allocation or a copy.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;

use bytes::{Bytes, BytesMut};
use zerosmq_core::zmtp::command::{Command, CommandError};
use zerosmq_core::zmtp::{FrameHeader, FrameKind, HeaderError};

use super::mechanism::Opener;

/// Bytes asked of the kernel per read.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Longest frame accepted from a peer (a longer one closes the connection, as libzmq's
/// `ZMQ_MAXMSGSIZE` would).
pub(crate) const MAX_FRAME_LEN: u64 = 1 << 30;

/// Why the inbound stream cannot be decoded; the connection must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameScanError {
    Header(HeaderError),
    FrameTooLong(u64),
}

impl fmt::Display for FrameScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameScanError::Header(e) => write!(f, "bad frame header: {e:?}"),
            FrameScanError::FrameTooLong(n) => write!(f, "frame of {n} bytes is too long"),
        }
    }
}

/// Scans whole frames at the start of `bytes`: returns where the last complete unit (a whole
/// message, or a command between messages) ends, and how many bytes from there the next unit
/// needs at least (to size the buffer). Never panics, whatever the bytes.
pub(crate) fn complete_prefix(bytes: &[u8]) -> Result<(usize, usize), FrameScanError> {
    let mut at = 0;
    let mut unit_end = 0;
    let mut in_message = false;
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        let (header, header_len) = match FrameHeader::parse(rest) {
            Ok(h) => h,
            Err(HeaderError::Incomplete { needed }) => {
                return Ok((unit_end, at - unit_end + needed))
            }
            Err(e) => return Err(FrameScanError::Header(e)),
        };
        if header.len > MAX_FRAME_LEN {
            return Err(FrameScanError::FrameTooLong(header.len));
        }
        let end = at + header_len + header.len as usize;
        if end > bytes.len() {
            return Ok((unit_end, end - unit_end));
        }
        at = end;
        match header.kind {
            FrameKind::Message => {
                in_message = header.more;
                if !header.more {
                    unit_end = at;
                }
            }
            // libzmq may slip a PING between the frames of a message; it belongs to the unit.
            FrameKind::Command if !in_message => unit_end = at,
            FrameKind::Command => {}
        }
    }
}

/// What the peer sent: a whole message or a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A message: its first frame and the further frames of a multipart message.
    Message { first: Bytes, parts: Vec<Bytes> },
    /// ZMTP 3.1 SUBSCRIBE (a 3.0 peer's message form arrives as a [`Item::Message`]).
    Subscribe(Bytes),
    /// ZMTP 3.1 CANCEL.
    Cancel(Bytes),
    /// The peer refused the connection.
    Error,
    /// PONG, READY again, unknown commands: nothing to do (RFC 37).
    Ignored,
}

/// How a [`Inbound::fill`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Bytes arrived.
    Data,
    /// Nothing to read now.
    Empty,
    /// The peer closed the connection.
    Closed,
}

/// The receive side of one connection: the buffer and the frozen run of whole messages.
pub(crate) struct Inbound {
    /// Bytes read but not yet frozen (an incomplete message at the end).
    buf: BytesMut,
    /// Whole units not yet handed out.
    ready: Bytes,
    /// Bytes the incomplete unit in `buf` needs at least.
    needed: usize,
    /// A PING that came inside a multipart message: its context, to answer.
    pending_ping: Option<Bytes>,
    /// With CURVE: reads boxes and opens them into `buf` as plain frames.
    opener: Option<Box<Opener>>,
}

impl Inbound {
    #[cfg(test)]
    pub(crate) fn new() -> Inbound {
        Inbound::with_opener(None)
    }

    /// The receive side of a connection that `opener` reads (CURVE), or that is read as it is.
    pub(crate) fn with_opener(opener: Option<Opener>) -> Inbound {
        Inbound {
            buf: BytesMut::with_capacity(READ_CHUNK),
            ready: Bytes::new(),
            needed: 0,
            pending_ping: None,
            opener: opener.map(Box::new),
        }
    }

    /// Reads what `fd` has now, without blocking.
    pub(crate) fn fill(&mut self, fd: BorrowedFd<'_>) -> io::Result<Fill> {
        if let Some(opener) = &mut self.opener {
            return opener.fill(fd, &mut self.buf, self.needed);
        }
        let want = self.needed.saturating_sub(self.buf.len()).max(4096);
        if self.buf.capacity() - self.buf.len() < want {
            // Reclaims the old block when no message holds it any more, else allocates: one
            // allocation per READ_CHUNK of traffic at most, not one per message.
            self.buf.reserve(want.max(READ_CHUNK));
        }
        Ok(match super::sys::recv_now(fd, &mut self.buf, usize::MAX)? {
            None => Fill::Empty,
            Some(0) => Fill::Closed,
            Some(_) => Fill::Data,
        })
    }

    /// The context of a PING that came inside a message, to answer with PONG.
    pub(crate) fn take_ping(&mut self) -> Option<Bytes> {
        self.pending_ping.take()
    }

    /// The next whole item, if the bytes read so far hold one. A PING's context is then
    /// waiting in [`Inbound::take_ping`], for the caller to answer.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>, FrameScanError> {
        if self.ready.is_empty() {
            let (end, needed) = complete_prefix(&self.buf)?;
            self.needed = needed;
            if end == 0 {
                return Ok(None);
            }
            self.ready = self.buf.split_to(end).freeze();
        }
        let (header, body) = self.next_frame();
        if header.kind == FrameKind::Command {
            let item = self.command(body);
            self.let_go();
            return Ok(Some(item));
        }
        let mut parts = Vec::new();
        let mut more = header.more;
        while more {
            let (h, b) = self.next_frame();
            match h.kind {
                FrameKind::Message => {
                    more = h.more;
                    parts.push(b);
                }
                FrameKind::Command => {
                    let _ = self.command(b);
                }
            }
        }
        self.let_go();
        Ok(Some(Item::Message { first: body, parts }))
    }

    /// An empty run still holds the block it was cut from: let go of it, so that the next
    /// [`Inbound::fill`] can take the block up again once the messages handed out are dropped,
    /// instead of allocating (and faulting in) fresh memory for every large message.
    fn let_go(&mut self) {
        if self.ready.is_empty() {
            self.ready = Bytes::new();
        }
    }

    /// Splits one frame off `ready`, which holds only whole frames (checked by
    /// [`complete_prefix`]); an impossible short frame yields an empty body.
    fn next_frame(&mut self) -> (FrameHeader, Bytes) {
        use bytes::Buf;
        let (header, header_len) =
            FrameHeader::parse(&self.ready).unwrap_or((FrameHeader::message(0, false), 0));
        let end = (header_len + header.len as usize).min(self.ready.len());
        // One reference count for the body; the header bytes are just skipped.
        let body = self.ready.slice(header_len.min(end)..end);
        self.ready.advance(end);
        (header, body)
    }

    /// A command frame's meaning; a PING's context is kept for [`Inbound::take_ping`].
    fn command(&mut self, body: Bytes) -> Item {
        let data_at = 1 + usize::from(body.first().copied().unwrap_or(0));
        match Command::parse(&body) {
            Ok(Command::Subscribe(_)) => Item::Subscribe(body.slice(data_at.min(body.len())..)),
            Ok(Command::Cancel(_)) => Item::Cancel(body.slice(data_at.min(body.len())..)),
            Ok(Command::Ping { context, .. }) => {
                let start = body.len() - context.len();
                self.pending_ping = Some(body.slice(start..));
                Item::Ignored
            }
            Ok(Command::Error { .. }) => Item::Error,
            Ok(_) | Err(CommandError::Truncated) | Err(_) => Item::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_prefix_stops_at_whole_messages() {
        // "a" (one frame), then a two-frame message, then half of a third.
        let bytes = b"\x00\x01a\x01\x02bc\x00\x01d\x00\x05ef";
        assert_eq!(complete_prefix(bytes), Ok((10, 7)));
        assert_eq!(complete_prefix(&bytes[..5]), Ok((3, 4)));
        assert_eq!(complete_prefix(&bytes[..3]), Ok((3, 2)));
        assert_eq!(complete_prefix(b""), Ok((0, 2)));
        // A long header, split inside its size.
        assert_eq!(complete_prefix(b"\x02\x00\x00"), Ok((0, 9)));
        // A command inside a message belongs to it; one between messages stands alone.
        let ping = b"\x04\x07\x04PING\x00\x00";
        let mut m = b"\x01\x01x".to_vec();
        m.extend_from_slice(ping);
        assert_eq!(complete_prefix(&m), Ok((0, m.len() + 2)));
        m.extend_from_slice(b"\x00\x01y");
        assert_eq!(complete_prefix(&m), Ok((m.len(), 2)));
        assert_eq!(complete_prefix(ping), Ok((9, 2)));
    }

    #[test]
    fn complete_prefix_refuses_bad_headers() {
        assert_eq!(
            complete_prefix(b"\x80\x00"),
            Err(FrameScanError::Header(HeaderError::ReservedFlags(0x80)))
        );
        assert_eq!(
            complete_prefix(b"\x05\x00"),
            Err(FrameScanError::Header(HeaderError::CommandWithMore))
        );
        let huge = b"\x02\x7f\xff\xff\xff\xff\xff\xff\xff";
        assert!(matches!(
            complete_prefix(huge),
            Err(FrameScanError::FrameTooLong(_))
        ));
    }

    /// Feeds `stream` into an `Inbound` `chunk` bytes at a time and collects its items.
    fn items(stream: &[u8], chunk: usize) -> (Vec<Item>, Vec<Bytes>) {
        let mut inbound = Inbound::new();
        let mut out = Vec::new();
        let mut pings = Vec::new();
        for piece in stream.chunks(chunk) {
            inbound.buf.extend_from_slice(piece);
            while let Some(item) = inbound.next_item().unwrap() {
                out.push(item);
                pings.extend(inbound.take_ping());
            }
        }
        (out, pings)
    }

    #[test]
    fn items_in_every_fragmentation() {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\x00\x05imu 1");
        stream.extend_from_slice(b"\x01\x05imu 2\x04\x09\x04PING\x00\x01ab\x00\x01c");
        stream.extend_from_slice(b"\x04\x0d\x09SUBSCRIBEimu");
        stream.extend_from_slice(b"\x04\x0a\x06CANCELimu");
        let mut long = vec![0x02, 0, 0, 0, 0, 0, 0, 1, 0];
        long.extend(std::iter::repeat_n(0xab, 256));
        stream.extend_from_slice(&long);
        for chunk in [1, 2, 7, 64, 1000] {
            let (got, pings) = items(&stream, chunk);
            assert_eq!(got.len(), 5, "chunk {chunk}");
            assert_eq!(
                got[0],
                Item::Message {
                    first: Bytes::from_static(b"imu 1"),
                    parts: vec![]
                }
            );
            assert_eq!(
                got[1],
                Item::Message {
                    first: Bytes::from_static(b"imu 2"),
                    parts: vec![Bytes::from_static(b"c")]
                }
            );
            assert_eq!(pings, vec![Bytes::from_static(b"ab")]);
            assert_eq!(got[2], Item::Subscribe(Bytes::from_static(b"imu")));
            assert_eq!(got[3], Item::Cancel(Bytes::from_static(b"imu")));
            match &got[4] {
                Item::Message { first, parts } => {
                    assert_eq!(first.len(), 256);
                    assert!(parts.is_empty());
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
