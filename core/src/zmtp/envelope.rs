//! The REQ/REP envelope (RFC 28) as libzmq's REQ and REP sockets frame it.
//!
//! A REQ sends an empty delimiter frame (MORE) before its request; a REP reads the routing
//! frames up to and including that delimiter (a REQ sends none, a DEALER behind a ROUTER adds
//! its identity) and sends them back in front of its reply, so a REQ receives the delimiter and
//! then one reply frame.
//!
//! - REQ side: [`request_prefix`] (the bytes before a request body), [`ReplyShape`] (checks a
//!   reply's frames one at a time).
//! - REP side: [`split_request`] (a whole message's envelope and request frames).

use core::ops::Range;

use super::frame::{FrameHeader, FrameKind, FLAG_MORE, MAX_HEADER_LEN};

/// The empty delimiter frame: MORE, no body.
pub const DELIMITER: [u8; 2] = [FLAG_MORE, 0];

/// Longest [`request_prefix`]: the delimiter and the longest frame header.
pub const MAX_REQUEST_PREFIX_LEN: usize = DELIMITER.len() + MAX_HEADER_LEN;

/// REQ: the bytes that go before a request body of `len` bytes (the empty delimiter, then the
/// body's frame header), and how many of them are used.
pub fn request_prefix(len: usize) -> ([u8; MAX_REQUEST_PREFIX_LEN], usize) {
    let mut out = [0u8; MAX_REQUEST_PREFIX_LEN];
    out[..DELIMITER.len()].copy_from_slice(&DELIMITER);
    let (header, n) = FrameHeader::message(len, false).to_bytes();
    out[DELIMITER.len()..DELIMITER.len() + n].copy_from_slice(&header[..n]);
    (out, DELIMITER.len() + n)
}

/// Why a message does not have the REQ/REP shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A request without the empty delimiter frame (a DEALER that did not add it).
    NoDelimiter,
    /// The delimiter is the message's last frame: no request after it.
    NoBody,
    /// A reply that is not the empty delimiter followed by exactly one frame.
    BadReply,
    /// The message's frames are cut or malformed (not whole plain frames).
    Malformed,
}

impl core::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EnvelopeError::NoDelimiter => {
                "request without the REQ envelope (no empty delimiter frame)"
            }
            EnvelopeError::NoBody => "REQ envelope without a request after the delimiter",
            EnvelopeError::BadReply => {
                "reply is not the REP envelope (empty delimiter, then one frame)"
            }
            EnvelopeError::Malformed => "message frames are cut or malformed",
        })
    }
}

impl core::error::Error for EnvelopeError {}

/// REQ: follows the frames of a reply; it must be the empty delimiter, then one last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyShape {
    seen_delimiter: bool,
}

impl ReplyShape {
    pub const fn new() -> Self {
        ReplyShape {
            seen_delimiter: false,
        }
    }

    /// One message frame of the reply, `len` bytes, `more` if another follows. `Some(len)` when
    /// it was the reply's body (the reply is complete); start over with a new `ReplyShape`.
    pub fn on_frame(&mut self, len: usize, more: bool) -> Result<Option<usize>, EnvelopeError> {
        match (self.seen_delimiter, len, more) {
            (false, 0, true) => {
                self.seen_delimiter = true;
                Ok(None)
            }
            (true, len, false) => Ok(Some(len)),
            _ => Err(EnvelopeError::BadReply),
        }
    }
}

/// REP: a request's parts, as ranges of the message given to [`split_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The routing frames and the delimiter, as on the wire: the reply starts with these bytes.
    pub envelope: Range<usize>,
    /// The first frame after the delimiter (its body).
    pub body: Range<usize>,
    /// Frames after the delimiter (a control request is one).
    pub frames: usize,
}

/// REP: splits a whole message given as plain frames (header and body each, as
/// `stream::next_unit` delivers it) into its envelope and its request.
pub fn split_request(wire: &[u8]) -> Result<Request, EnvelopeError> {
    let mut at = 0usize;
    let mut envelope_end = None;
    let mut body = 0..0;
    let mut frames = 0usize;
    while at < wire.len() {
        let rest = wire.get(at..).ok_or(EnvelopeError::Malformed)?;
        let (header, header_len) =
            FrameHeader::parse(rest).map_err(|_| EnvelopeError::Malformed)?;
        if header.kind != FrameKind::Message {
            return Err(EnvelopeError::Malformed);
        }
        let len = usize::try_from(header.len).map_err(|_| EnvelopeError::Malformed)?;
        let start = at + header_len;
        let end = start.checked_add(len).ok_or(EnvelopeError::Malformed)?;
        if end > wire.len() {
            return Err(EnvelopeError::Malformed);
        }
        match envelope_end {
            None if len == 0 => {
                envelope_end = Some(end);
                if !header.more {
                    return Err(EnvelopeError::NoBody);
                }
            }
            None if !header.more => return Err(EnvelopeError::NoDelimiter),
            None => {}
            Some(_) => {
                if frames == 0 {
                    body = start..end;
                }
                frames += 1;
            }
        }
        at = end;
        if !header.more {
            break;
        }
    }
    match envelope_end {
        None => Err(EnvelopeError::NoDelimiter),
        Some(_) if frames == 0 => Err(EnvelopeError::NoBody),
        Some(end) => Ok(Request {
            envelope: 0..end,
            body,
            frames,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_prefix_is_libzmqs_req_framing() {
        let (p, n) = request_prefix(10);
        assert_eq!(&p[..n], b"\x01\x00\x00\x0a");
        let (p, n) = request_prefix(300);
        assert_eq!(&p[..n], b"\x01\x00\x02\x00\x00\x00\x00\x00\x00\x01\x2c");
    }

    #[test]
    fn replies_must_be_the_delimiter_then_one_frame() {
        let mut r = ReplyShape::new();
        assert_eq!(r.on_frame(0, true), Ok(None));
        assert_eq!(r.on_frame(7, false), Ok(Some(7)));
        assert_eq!(
            ReplyShape::new().on_frame(3, false),
            Err(EnvelopeError::BadReply)
        );
        let mut r = ReplyShape::new();
        r.on_frame(0, true).unwrap();
        assert_eq!(r.on_frame(3, true), Err(EnvelopeError::BadReply));
    }

    #[test]
    fn requests_split_into_envelope_and_body() {
        // From a REQ: the delimiter, then the request.
        let req = b"\x01\x00\x00\x0aLIST_NODES";
        let r = split_request(req).unwrap();
        assert_eq!((r.envelope, r.body, r.frames), (0..2, 4..14, 1));
        // Through a ROUTER: an identity frame first; a two-frame request.
        let routed = b"\x01\x03id1\x01\x00\x01\x01a\x00\x01b";
        let r = split_request(routed).unwrap();
        assert_eq!(&routed[r.envelope.clone()], b"\x01\x03id1\x01\x00");
        assert_eq!((&routed[r.body.clone()], r.frames), (&b"a"[..], 2));
        // A long frame.
        let mut long = b"\x01\x00\x02\x00\x00\x00\x00\x00\x00\x01\x2c".to_vec();
        long.extend([b'x'; 300]);
        assert_eq!(split_request(&long).unwrap().body, 11..311);
        assert_eq!(
            split_request(b"\x00\x05hello"),
            Err(EnvelopeError::NoDelimiter)
        );
        assert_eq!(split_request(b"\x00\x00"), Err(EnvelopeError::NoBody));
        assert_eq!(split_request(b"\x01\x00"), Err(EnvelopeError::NoBody));
        assert_eq!(split_request(b""), Err(EnvelopeError::NoDelimiter));
        assert_eq!(
            split_request(b"\x01\x00\x00\x09cut"),
            Err(EnvelopeError::Malformed)
        );
        assert_eq!(
            split_request(b"\x04\x00"),
            Err(EnvelopeError::Malformed),
            "a command"
        );
    }

    /// Any bytes: a result, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut buf = [0u8; 64];
        for round in 0..20_000usize {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = (state >> 56) as u8 & 0x0b;
            }
            if let Ok(r) = split_request(&buf[..round % 64]) {
                assert!(r.envelope.end <= r.body.start && r.body.end <= round % 64);
            }
        }
    }
}
