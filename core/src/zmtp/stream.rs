//! Splits a peer's byte stream into greeting, commands and whole messages, in place.
//!
//! Unlike [`FrameDecoder`](super::FrameDecoder), which reads one frame at a time into a small
//! buffer, a forwarder (the master) reads up to 64 KiB at once and wants every complete message
//! in that read: [`next_unit`] looks at the front of a buffer and says what it holds, without
//! copying.

use core::ops::Range;

use super::{FrameHeader, FrameKind, HeaderError, GREETING_LEN};

/// What the front of a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// Not complete yet; `need` is the buffer length the unit needs, when known.
    Incomplete { need: usize },
    /// The peer's 64-byte greeting.
    Greeting,
    /// A command frame; `body` is its body within the buffer.
    Command { end: usize, body: Range<usize> },
    /// A whole message (one or more frames). `wire` is its bytes as they go on to subscribers,
    /// `first` the first frame's body, `body_len` the sum of the frame bodies.
    Message {
        wire: Range<usize>,
        first: Range<usize>,
        frames: usize,
        body_len: u64,
    },
    /// A command between the frames of a message (RFC 23 allows it; libzmq can send a PING
    /// there). `frame` is the whole command frame, which the caller handles and cuts out.
    CommandInMessage {
        frame: Range<usize>,
        body: Range<usize>,
    },
}

/// Why a peer's stream is refused; the peer is disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// A frame header with reserved bits or a command with MORE.
    BadHeader(HeaderError),
    /// A frame longer than `max_message_size`.
    FrameTooLarge { len: u64, max: u64 },
    /// A multipart message longer than the engine buffers for one message.
    MessageTooLarge { max: usize },
}

impl core::fmt::Display for StreamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StreamError::BadHeader(HeaderError::ReservedFlags(b)) => {
                write!(f, "frame flags {b:#04x} set reserved bits")
            }
            StreamError::BadHeader(_) => f.write_str("invalid frame header"),
            StreamError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is over the {max}-byte limit")
            }
            StreamError::MessageTooLarge { max } => {
                write!(f, "multipart message over the {max}-byte limit")
            }
        }
    }
}

impl core::error::Error for StreamError {}

/// Looks at the front of `buf`. `greeting` says the peer's greeting is still due. `max_frame`
/// caps each frame's body, `max_message` a whole message's bytes on the wire.
pub fn next_unit(
    buf: &[u8],
    greeting: bool,
    max_frame: u64,
    max_message: usize,
) -> Result<Unit, StreamError> {
    if greeting {
        return Ok(if buf.len() >= GREETING_LEN {
            Unit::Greeting
        } else {
            Unit::Incomplete { need: GREETING_LEN }
        });
    }
    let mut at = 0usize;
    let mut first = None;
    let mut frames = 0usize;
    let mut body_len = 0u64;
    loop {
        let (header, header_len) = match FrameHeader::parse(&buf[at..]) {
            Ok(h) => h,
            Err(HeaderError::Incomplete { needed }) => {
                return Ok(Unit::Incomplete { need: at + needed })
            }
            Err(e) => return Err(StreamError::BadHeader(e)),
        };
        if header.len > max_frame {
            return Err(StreamError::FrameTooLarge {
                len: header.len,
                max: max_frame,
            });
        }
        // A frame this long cannot be in memory on this target (32-bit): too large.
        let Ok(len) = usize::try_from(header.len) else {
            return Err(StreamError::FrameTooLarge {
                len: header.len,
                max: max_frame,
            });
        };
        let start = at + header_len;
        let body = start..start.saturating_add(len);
        if body.end > max_message {
            return Err(StreamError::MessageTooLarge { max: max_message });
        }
        if body.end > buf.len() {
            return Ok(Unit::Incomplete { need: body.end });
        }
        if header.kind == FrameKind::Command {
            return Ok(if at == 0 {
                Unit::Command {
                    end: body.end,
                    body,
                }
            } else {
                Unit::CommandInMessage {
                    frame: at..body.end,
                    body,
                }
            });
        }
        frames += 1;
        body_len = body_len.saturating_add(header.len);
        let end = body.end;
        first.get_or_insert(body);
        if !header.more {
            return Ok(Unit::Message {
                wire: 0..end,
                first: first.unwrap_or(0..0),
                frames,
                body_len,
            });
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 20;

    #[test]
    fn greeting_needs_64_bytes() {
        assert_eq!(
            next_unit(&[0xFF; 10], true, MAX, 1 << 20),
            Ok(Unit::Incomplete { need: 64 })
        );
        assert_eq!(next_unit(&[0; 64], true, MAX, 1 << 20), Ok(Unit::Greeting));
    }

    #[test]
    fn single_and_multipart_messages_are_whole() {
        // "ab" with MORE, then "c" last, then the start of another frame.
        let buf = [0x01, 2, b'a', b'b', 0x00, 1, b'c', 0x00];
        assert_eq!(
            next_unit(&buf, false, MAX, 1 << 20),
            Ok(Unit::Message {
                wire: 0..7,
                first: 2..4,
                frames: 2,
                body_len: 3
            })
        );
        assert_eq!(
            next_unit(&buf[..5], false, MAX, 1 << 20),
            Ok(Unit::Incomplete { need: 6 })
        );
        assert_eq!(
            next_unit(&buf[7..], false, MAX, 1 << 20),
            Ok(Unit::Incomplete { need: 2 })
        );
    }

    #[test]
    fn long_frames_and_limits() {
        let mut buf = [7u8; 9 + 256];
        buf[..9].copy_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert!(matches!(
            next_unit(&buf, false, MAX, 1 << 20),
            Ok(Unit::Message { wire, .. }) if wire == (0..265)
        ));
        assert_eq!(
            next_unit(&buf, false, 255, 1 << 20),
            Err(StreamError::FrameTooLarge { len: 256, max: 255 })
        );
        // 2^64 - 1 announced: refused before any arithmetic on it.
        let huge = [0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(
            next_unit(&huge, false, MAX, 1 << 20),
            Err(StreamError::FrameTooLarge { .. })
        ));
        assert_eq!(
            next_unit(&buf, false, MAX, 100),
            Err(StreamError::MessageTooLarge { max: 100 })
        );
        assert_eq!(
            next_unit(&[0x08, 0], false, MAX, 1 << 20),
            Err(StreamError::BadHeader(HeaderError::ReservedFlags(0x08)))
        );
    }

    #[test]
    fn commands_alone_and_inside_messages() {
        let ping = [0x04, 7, 4, b'P', b'I', b'N', b'G', 0, 0];
        assert_eq!(
            next_unit(&ping, false, MAX, 1 << 20),
            Ok(Unit::Command { end: 9, body: 2..9 })
        );
        let mut buf = [0u8; 3 + 9 + 3];
        buf[..3].copy_from_slice(&[0x01, 1, b'x']);
        buf[3..12].copy_from_slice(&ping);
        buf[12..].copy_from_slice(&[0x00, 1, b'y']);
        assert_eq!(
            next_unit(&buf, false, MAX, 1 << 20),
            Ok(Unit::CommandInMessage {
                frame: 3..12,
                body: 5..12
            })
        );
    }

    /// Any bytes, cut anywhere: a unit or an error, never a panic, and ranges inside the buffer.
    #[test]
    fn arbitrary_input_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut bytes = [0u8; 600];
        for round in 0..20_000 {
            for b in bytes.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Mostly valid flags, so that frames chain into messages.
                *b = if state % 3 == 0 {
                    (state >> 8) as u8 & 0x07
                } else {
                    (state >> 16) as u8
                };
            }
            let len = (state as usize >> 3) % bytes.len();
            let buf = &bytes[..len];
            match next_unit(buf, round % 7 == 0, 300, 500) {
                Ok(Unit::Message { wire, first, .. }) => {
                    assert!(wire.end <= len && first.end <= wire.end)
                }
                Ok(Unit::Command { end, body }) => assert!(end <= len && body.end <= end),
                Ok(Unit::CommandInMessage { frame, body }) => {
                    assert!(frame.end <= len && body.end <= frame.end)
                }
                Ok(Unit::Incomplete { need }) => assert!(need > len),
                Ok(Unit::Greeting) => assert!(len >= GREETING_LEN),
                Err(_) => {}
            }
        }
    }
}
