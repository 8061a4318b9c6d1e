//! The frame decoder: a state machine that says which bytes it needs next.
//!
//! The driver asks [`FrameDecoder::read_buffer`] for the slice of its receive buffer to fill,
//! reads at most that many bytes from the stream, and reports them with
//! [`FrameDecoder::commit`]. A frame body always lands at the start of the receive buffer, so a
//! decoded frame's body is `rx[..len]`, borrowed in place, never copied. Reads never cross a
//! frame boundary, so nothing of the next frame is ever buffered.

use super::frame::{FrameHeader, HeaderError};
use super::greeting::{Greeting, GREETING_LEN};
use super::ZmtpError;

/// Smallest receive buffer the decoder works with: a whole greeting must fit.
pub const MIN_RX_LEN: usize = GREETING_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting { have: u8 },
    Header { have: u8 },
    Body { header: FrameHeader, have: usize },
    Skip { remaining: u64 },
    Failed,
}

/// What a commit completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// The peer's greeting, checked.
    Greeting(Greeting),
    /// A whole frame; its body is `rx[..header.len]`.
    Frame(FrameHeader),
}

/// Decodes a peer's greeting and then frames, in any fragmentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameDecoder {
    state: State,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder waiting for the peer's greeting.
    pub const fn new() -> Self {
        FrameDecoder {
            state: State::Greeting { have: 0 },
        }
    }

    /// A decoder past the greeting (for tests and fuzzing of the frame layer alone).
    pub const fn after_greeting() -> Self {
        FrameDecoder {
            state: State::Header { have: 0 },
        }
    }

    /// Whether a fatal error stopped the decoder.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// The range of `rx` the next read must fill (at most); empty only after a fatal error or
    /// when `rx` is shorter than [`MIN_RX_LEN`].
    fn wanted(&self, rx: &[u8]) -> core::ops::Range<usize> {
        let (from, to) = match self.state {
            State::Greeting { have } => (usize::from(have), GREETING_LEN),
            State::Header { have: 0 } => (0, 2),
            State::Header { have } => {
                let needed = rx.first().map_or(2, |&f| FrameHeader::len_from_flags(f));
                (usize::from(have), needed)
            }
            State::Body { header, have } => (have, usize::try_from(header.len).unwrap_or(0)),
            State::Skip { remaining } => (
                0,
                usize::try_from(remaining).map_or(rx.len(), |r| r.min(rx.len())),
            ),
            State::Failed => (0, 0),
        };
        if rx.len() < MIN_RX_LEN || to > rx.len() || from > to {
            return 0..0;
        }
        from..to
    }

    /// The part of `rx` to read into next.
    pub fn read_buffer<'b>(&self, rx: &'b mut [u8]) -> &'b mut [u8] {
        let range = self.wanted(rx);
        &mut rx[range]
    }

    /// Records that `n` bytes were read into the slice [`read_buffer`](Self::read_buffer)
    /// returned. `Ok(None)` means more bytes are needed.
    ///
    /// [`ZmtpError::FrameTooLarge`] is not fatal: the decoder skips that frame's body and stays in
    /// sync; every other error is fatal and the decoder stops.
    pub fn commit(&mut self, n: usize, rx: &[u8]) -> Result<Option<Decoded>, ZmtpError> {
        let range = self.wanted(rx);
        if n == 0 {
            return Ok(None);
        }
        if n > range.len() {
            return self.fail(ZmtpError::InvalidCommit);
        }
        let have = range.start + n;
        match self.state {
            State::Greeting { .. } => {
                if have < GREETING_LEN {
                    self.state = State::Greeting { have: have as u8 };
                    return Ok(None);
                }
                match Greeting::parse(rx) {
                    Ok(g) => {
                        self.state = State::Header { have: 0 };
                        Ok(Some(Decoded::Greeting(g)))
                    }
                    Err(e) => self.fail(ZmtpError::Greeting(e)),
                }
            }
            State::Header { .. } => match FrameHeader::parse(&rx[..have]) {
                Err(HeaderError::Incomplete { .. }) => {
                    self.state = State::Header { have: have as u8 };
                    Ok(None)
                }
                Err(e) => self.fail(ZmtpError::Header(e)),
                Ok((header, _)) => self.start_body(header, rx.len()),
            },
            State::Body { header, .. } => {
                if (have as u64) < header.len {
                    self.state = State::Body { header, have };
                    return Ok(None);
                }
                self.state = State::Header { have: 0 };
                Ok(Some(Decoded::Frame(header)))
            }
            State::Skip { remaining } => {
                let remaining = remaining.saturating_sub(n as u64);
                self.state = if remaining == 0 {
                    State::Header { have: 0 }
                } else {
                    State::Skip { remaining }
                };
                Ok(None)
            }
            State::Failed => Err(ZmtpError::Closed),
        }
    }

    fn start_body(
        &mut self,
        header: FrameHeader,
        capacity: usize,
    ) -> Result<Option<Decoded>, ZmtpError> {
        if header.len == 0 {
            self.state = State::Header { have: 0 };
            return Ok(Some(Decoded::Frame(header)));
        }
        if header.len > capacity as u64 {
            self.state = State::Skip {
                remaining: header.len,
            };
            return Err(ZmtpError::FrameTooLarge { header, capacity });
        }
        self.state = State::Body { header, have: 0 };
        Ok(None)
    }

    fn fail(&mut self, e: ZmtpError) -> Result<Option<Decoded>, ZmtpError> {
        self.state = State::Failed;
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::FrameKind;
    use super::*;

    /// Feeds `input` in chunks of `chunk` bytes; collects frames as (kind, more, body).
    fn run(
        dec: &mut FrameDecoder,
        rx: &mut [u8],
        input: &[u8],
        chunk: usize,
        mut on: impl FnMut(Result<Decoded, ZmtpError>, &[u8]),
    ) {
        let mut input = input;
        while !input.is_empty() {
            let dst = dec.read_buffer(rx);
            let n = dst.len().min(chunk).min(input.len());
            if n == 0 {
                break;
            }
            dst[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            match dec.commit(n, rx) {
                Ok(None) => {}
                Ok(Some(d)) => on(Ok(d), rx),
                Err(e) => on(Err(e), rx),
            }
        }
    }

    #[test]
    fn recorded_libzmq_pub_stream_in_every_fragmentation() {
        let stream = include_bytes!("testdata/libzmq-pub.bin");
        for chunk in [1, 2, 3, 7, 64, 1000] {
            let mut dec = FrameDecoder::new();
            let mut rx = [0u8; 64];
            let mut seen = 0;
            run(&mut dec, &mut rx, stream, chunk, |d, rx| {
                match (seen, d) {
                    (0, Ok(Decoded::Greeting(g))) => assert_eq!(g.minor, 1),
                    (1, Ok(Decoded::Frame(h))) => {
                        assert_eq!(h, FrameHeader::command(25));
                        assert_eq!(&rx[..6], b"\x05READY");
                    }
                    (2, Ok(Decoded::Frame(h))) => {
                        assert_eq!(h, FrameHeader::message(9, false));
                        assert_eq!(&rx[..9], b"imu hello");
                    }
                    other => panic!("unexpected {other:?}"),
                }
                seen += 1;
            });
            assert_eq!(seen, 3, "chunk {chunk}");
        }
    }

    #[test]
    fn long_frames_and_empty_frames() {
        let mut stream = [0u8; 2 + 9 + 300];
        stream[..2].copy_from_slice(&[0x01, 0x00]);
        stream[2..11].copy_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x2c]);
        stream[11..].fill(0xAB);
        let mut dec = FrameDecoder::after_greeting();
        let mut rx = [0u8; 300];
        let mut frames = 0;
        run(&mut dec, &mut rx, &stream, 5, |d, rx| {
            match d {
                Ok(Decoded::Frame(h)) if frames == 0 => {
                    assert_eq!(h, FrameHeader::message(0, true))
                }
                Ok(Decoded::Frame(h)) => {
                    assert_eq!(h.kind, FrameKind::Message);
                    assert_eq!(h.len, 300);
                    assert!(rx.iter().all(|&b| b == 0xAB));
                }
                other => panic!("{other:?}"),
            }
            frames += 1;
        });
        assert_eq!(frames, 2);
    }

    #[test]
    fn oversized_frame_is_skipped_and_stream_stays_in_sync() {
        let mut stream = [0u8; 2 + 100 + 2 + 3];
        stream[..2].copy_from_slice(&[0x00, 100]);
        stream[102..].copy_from_slice(&[0x00, 3, b'a', b'b', b'c']);
        for chunk in [1, 13, 200] {
            let mut dec = FrameDecoder::after_greeting();
            let mut rx = [0u8; 64];
            let mut log = [0u8; 2];
            let mut i = 0;
            run(&mut dec, &mut rx, &stream, chunk, |d, rx| {
                match d {
                    Err(ZmtpError::FrameTooLarge { header, capacity }) => {
                        assert_eq!((header.len, capacity), (100, 64));
                        log[i] = 1;
                    }
                    Ok(Decoded::Frame(h)) => {
                        assert_eq!(&rx[..h.len as usize], b"abc");
                        log[i] = 2;
                    }
                    other => panic!("{other:?}"),
                }
                i += 1;
            });
            assert_eq!(log, [1, 2]);
            assert!(!dec.is_failed());
        }
    }

    #[test]
    fn fatal_errors_stop_the_decoder() {
        let mut dec = FrameDecoder::new();
        let mut rx = [0u8; 64];
        let dst = dec.read_buffer(&mut rx);
        assert_eq!(dst.len(), 64);
        dst.fill(0);
        assert_eq!(
            dec.commit(64, &rx),
            Err(ZmtpError::Greeting(
                super::super::GreetingError::BadSignature
            ))
        );
        assert!(dec.is_failed());
        assert!(dec.read_buffer(&mut rx).is_empty());

        let mut dec = FrameDecoder::after_greeting();
        rx[..2].copy_from_slice(&[0x80, 0]);
        assert!(matches!(dec.commit(2, &rx), Err(ZmtpError::Header(_))));

        let mut dec = FrameDecoder::after_greeting();
        assert_eq!(dec.commit(3, &rx), Err(ZmtpError::InvalidCommit));
        let mut small = [0u8; 10];
        assert!(FrameDecoder::new().read_buffer(&mut small).is_empty());
    }
}
