//! Frame headers (RFC 23 section "Framing"): one flags byte, then a 1-byte or 8-byte size.
//!
//! ```text
//! flags: bit 0 MORE, bit 1 LONG (8-byte big-endian size follows), bit 2 COMMAND, bits 3-7 zero
//! ```

use super::FrameEncodeError;

/// Flags bit: more frames of this message follow.
pub const FLAG_MORE: u8 = 0x01;
/// Flags bit: the size is 8 bytes (big endian) instead of 1.
pub const FLAG_LONG: u8 = 0x02;
/// Flags bit: the frame is a command, not a message frame.
pub const FLAG_COMMAND: u8 = 0x04;
/// Bits that must be zero.
const FLAGS_RESERVED: u8 = !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND);

/// Longest header: flags and an 8-byte size.
pub const MAX_HEADER_LEN: usize = 9;
/// Longest body a short (1-byte size) frame carries.
pub const MAX_SHORT_LEN: usize = 255;

/// Whether a frame is part of a message or a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Message,
    Command,
}

/// A decoded or to-be-encoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: FrameKind,
    /// MORE: another frame of the same message follows (never set on commands).
    pub more: bool,
    /// Body length in bytes, as the peer announced it (not yet checked against any buffer).
    pub len: u64,
}

/// Why a header is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer bytes than the header needs; `needed` is the full header length known so far.
    Incomplete { needed: usize },
    /// A reserved flags bit is set.
    ReservedFlags(u8),
    /// A command frame with MORE set, which RFC 23 forbids.
    CommandWithMore,
}

impl FrameHeader {
    /// A message frame header.
    pub const fn message(len: usize, more: bool) -> Self {
        FrameHeader {
            kind: FrameKind::Message,
            more,
            len: len as u64,
        }
    }

    /// A command frame header.
    pub const fn command(len: usize) -> Self {
        FrameHeader {
            kind: FrameKind::Command,
            more: false,
            len: len as u64,
        }
    }

    /// Whether the size needs the long (8-byte) form.
    pub const fn is_long(&self) -> bool {
        self.len > MAX_SHORT_LEN as u64
    }

    /// Bytes the header takes on the wire.
    pub const fn encoded_len(&self) -> usize {
        if self.is_long() {
            MAX_HEADER_LEN
        } else {
            2
        }
    }

    /// The flags byte.
    pub const fn flags(&self) -> u8 {
        let mut f = 0;
        if self.more {
            f |= FLAG_MORE;
        }
        if self.is_long() {
            f |= FLAG_LONG;
        }
        if matches!(self.kind, FrameKind::Command) {
            f |= FLAG_COMMAND;
        }
        f
    }

    /// Header length announced by a flags byte (2 or 9).
    pub const fn len_from_flags(flags: u8) -> usize {
        if flags & FLAG_LONG != 0 {
            MAX_HEADER_LEN
        } else {
            2
        }
    }

    /// Writes the header into `buf`; returns the bytes used.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, FrameEncodeError> {
        let n = self.encoded_len();
        let out = buf.get_mut(..n).ok_or(FrameEncodeError::BufferTooSmall)?;
        out[0] = self.flags();
        if self.is_long() {
            out[1..].copy_from_slice(&self.len.to_be_bytes());
        } else {
            out[1] = self.len as u8;
        }
        Ok(n)
    }

    /// The header as an array plus its length, for drivers that write header and body separately.
    pub fn to_bytes(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut b = [0u8; MAX_HEADER_LEN];
        let n = self.encode(&mut b).unwrap_or(0);
        (b, n)
    }

    /// Parses a header from the start of `bytes`; returns it and the bytes it took.
    pub fn parse(bytes: &[u8]) -> Result<(FrameHeader, usize), HeaderError> {
        let &flags = bytes.first().ok_or(HeaderError::Incomplete { needed: 2 })?;
        if flags & FLAGS_RESERVED != 0 {
            return Err(HeaderError::ReservedFlags(flags));
        }
        let kind = if flags & FLAG_COMMAND != 0 {
            FrameKind::Command
        } else {
            FrameKind::Message
        };
        let more = flags & FLAG_MORE != 0;
        if more && kind == FrameKind::Command {
            return Err(HeaderError::CommandWithMore);
        }
        let needed = Self::len_from_flags(flags);
        let size = bytes
            .get(1..needed)
            .ok_or(HeaderError::Incomplete { needed })?;
        let len = match size {
            [b] => u64::from(*b),
            _ => {
                let mut be = [0u8; 8];
                be.copy_from_slice(size);
                u64::from_be_bytes(be)
            }
        };
        Ok((FrameHeader { kind, more, len }, needed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_headers_exact_bytes() {
        let mut b = [0u8; 9];
        assert_eq!(FrameHeader::message(0, true).encode(&mut b), Ok(2));
        assert_eq!(&b[..2], &[0x01, 0x00]);
        assert_eq!(FrameHeader::message(255, false).encode(&mut b), Ok(2));
        assert_eq!(&b[..2], &[0x00, 0xff]);
        assert_eq!(FrameHeader::message(256, true).encode(&mut b), Ok(9));
        assert_eq!(b, [0x03, 0, 0, 0, 0, 0, 0, 0x01, 0x00]);
        assert_eq!(FrameHeader::command(25).encode(&mut b), Ok(2));
        assert_eq!(&b[..2], &[0x04, 0x19]);
        assert_eq!(FrameHeader::command(300).encode(&mut b), Ok(9));
        assert_eq!(b, [0x06, 0, 0, 0, 0, 0, 0, 0x01, 0x2c]);
        assert_eq!(
            FrameHeader::message(1, false).encode(&mut b[..1]),
            Err(FrameEncodeError::BufferTooSmall)
        );
    }

    #[test]
    fn parse_round_trip_and_errors() {
        for h in [
            FrameHeader::message(0, false),
            FrameHeader::message(7, true),
            FrameHeader::message(70_000, false),
            FrameHeader::command(13),
            FrameHeader::command(1 << 20),
        ] {
            let (b, n) = h.to_bytes();
            assert_eq!(FrameHeader::parse(&b[..n]), Ok((h, n)));
            assert_eq!(
                FrameHeader::parse(&b[..n - 1]),
                Err(HeaderError::Incomplete { needed: n })
            );
        }
        assert_eq!(
            FrameHeader::parse(&[]),
            Err(HeaderError::Incomplete { needed: 2 })
        );
        assert_eq!(
            FrameHeader::parse(&[0x08, 0]),
            Err(HeaderError::ReservedFlags(0x08))
        );
        assert_eq!(
            FrameHeader::parse(&[0x05, 0]),
            Err(HeaderError::CommandWithMore)
        );
        // A long size that does not fit in usize on small targets is still parsed as u64.
        assert_eq!(
            FrameHeader::parse(&[0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .map(|(h, _)| h.len),
            Ok(u64::MAX)
        );
    }
}
