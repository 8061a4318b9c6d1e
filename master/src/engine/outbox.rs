//! A connection's outbound queue: whole messages and commands coalesced into one contiguous
//! buffer, written with as few system calls as the socket allows; a large message is queued by
//! reference instead ([`Outbox::push_shared`]), so that every subscriber it goes to writes it
//! from the one buffer it was read into, and it is written with what surrounds it in one
//! gathered write.
//!
//! The queue counts messages (not commands) so that the high-water mark means what libzmq's
//! means: messages waiting in the master for this peer (the kernel's socket buffer comes on top).
//! Commands a peer causes (PONGs) are counted apart, so that a peer which sends PINGs and never
//! reads is bounded too.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::Bytes;

/// A drained buffer larger than this gives its memory back (a burst should not pin it).
const KEEP_CAPACITY: usize = 1 << 20;

/// Unsent bytes at the front are moved out of the way once they pass this and half the buffer.
const COMPACT_AFTER: usize = 256 << 10;

/// Pieces handed to one gathered write at most.
const MAX_SLICES: usize = 16;

/// Offsets are positions in the connection's outbound stream since the queue was last empty
/// (`buf` starts at `buf_base`), so that queued ends stay valid when bytes move between `buf`
/// and `shared`.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Messages queued by reference, in stream order, ahead of everything in `buf`.
    shared: VecDeque<Bytes>,
    /// Bytes of the front of `shared` already written.
    shared_head: usize,
    /// Bytes queued after the last shared message.
    buf: Vec<u8>,
    /// Bytes of `buf` already written (only ever non-zero while `shared` is empty).
    head: usize,
    /// Stream position of `buf[0]`.
    buf_base: usize,
    /// Stream position up to which everything was written.
    written: usize,
    /// End positions of the queued messages, oldest first.
    ends: VecDeque<usize>,
    /// End positions of the queued replies a peer asked for (PONGs), oldest first.
    replies: VecDeque<usize>,
}

/// What a flush left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flushed {
    /// Everything was written.
    Empty,
    /// The socket is full; wait until it is writable.
    Blocked,
}

impl Outbox {
    /// Messages queued and not yet fully written.
    pub(super) fn messages(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.shared.is_empty() && self.head == self.buf.len()
    }

    /// The stream position after everything queued.
    fn end(&self) -> usize {
        self.buf_base + self.buf.len()
    }

    /// Queues a whole message, its frames as on the wire.
    pub(super) fn push_message(&mut self, wire: &[u8]) {
        self.buf.extend_from_slice(wire);
        self.ends.push_back(self.end());
    }

    /// Queues a whole message by reference (its frames as on the wire): no copy of it is made.
    pub(super) fn push_shared(&mut self, wire: Bytes) {
        if self.head < self.buf.len() {
            // What is queued before it goes ahead of it, as a piece of its own.
            let unsent = Bytes::copy_from_slice(&self.buf[self.head..]);
            self.shared.push_back(unsent);
        }
        self.buf_base = self.end();
        self.buf.clear();
        self.head = 0;
        self.buf_base += wire.len();
        self.shared.push_back(wire);
        self.ends.push_back(self.buf_base);
    }

    /// Ends a message whose bytes went in through [`control_buf`](Self::control_buf) (boxed
    /// parts): counted as one message, as [`push_message`](Self::push_message) counts.
    pub(super) fn end_message(&mut self) {
        self.ends.push_back(self.end());
    }

    /// Replies the peer asked for (PONGs) queued and not yet fully written.
    pub(super) fn replies(&self) -> usize {
        self.replies.len()
    }

    /// Marks what was pushed since the last mark (through [`control_buf`](Self::control_buf))
    /// as one reply, counted by [`replies`](Self::replies).
    pub(super) fn mark_reply(&mut self) {
        self.replies.push_back(self.end());
    }

    /// The buffer commands are encoded into (see `handshake::push_encoded`).
    pub(super) fn control_buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes as much as `out` takes.
    pub(super) fn flush(&mut self, out: &mut impl Write) -> io::Result<Flushed> {
        while !self.is_empty() {
            let result = if self.shared.is_empty() {
                out.write(&self.buf[self.head..])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (i, piece) in self.shared.iter().take(MAX_SLICES - 1).enumerate() {
                    let from = if i == 0 { self.shared_head } else { 0 };
                    slices[n] = IoSlice::new(&piece[from..]);
                    n += 1;
                }
                if n < MAX_SLICES && n == self.shared.len() {
                    slices[n] = IoSlice::new(&self.buf[self.head..]);
                    n += 1;
                }
                out.write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.compact();
                    return Ok(Flushed::Blocked);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.head = 0;
        self.buf_base = 0;
        self.written = 0;
        self.ends.clear();
        self.replies.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
        // The offsets of a long queue go too (one per message).
        if self.ends.capacity() > KEEP_CAPACITY / 64 {
            self.ends.shrink_to(KEEP_CAPACITY / 64);
        }
        if self.replies.capacity() > KEEP_CAPACITY / 64 {
            self.replies.shrink_to(KEEP_CAPACITY / 64);
        }
        Ok(Flushed::Empty)
    }

    /// `n` more bytes were written: shared pieces first, then `buf`.
    fn advance(&mut self, mut n: usize) {
        self.written += n;
        while n > 0 {
            let Some(front) = self.shared.front() else {
                self.head += n;
                break;
            };
            let left = front.len() - self.shared_head;
            if n < left {
                self.shared_head += n;
                break;
            }
            n -= left;
            self.shared.pop_front();
            self.shared_head = 0;
        }
        while self.ends.front().is_some_and(|&end| end <= self.written) {
            self.ends.pop_front();
        }
        while self.replies.front().is_some_and(|&end| end <= self.written) {
            self.replies.pop_front();
        }
    }

    /// Drops the written front when it is large, so a subscriber that is always a little behind
    /// does not grow the buffer forever.
    fn compact(&mut self) {
        if self.head >= COMPACT_AFTER && self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            self.buf_base += self.head;
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `room` bytes, then blocks.
    struct Pipe {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn counts_messages_until_fully_written() {
        let mut o = Outbox::default();
        o.control_buf().extend_from_slice(b"G");
        o.push_message(b"abc");
        o.push_message(b"de");
        assert_eq!(o.messages(), 2);
        let mut p = Pipe {
            got: Vec::new(),
            room: 3,
        };
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Blocked);
        assert_eq!(o.messages(), 2, "abc is only partly written");
        p.room = 1;
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Blocked);
        assert_eq!(o.messages(), 1);
        p.room = 10;
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Empty);
        assert_eq!(p.got, b"Gabcde");
        assert!(o.is_empty() && o.messages() == 0);
    }

    #[test]
    fn counts_replies_until_written() {
        let mut o = Outbox::default();
        o.push_message(b"m");
        o.control_buf().extend_from_slice(b"PONG");
        o.mark_reply();
        assert_eq!((o.messages(), o.replies()), (1, 1));
        let mut p = Pipe {
            got: Vec::new(),
            room: 4,
        };
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Blocked);
        assert_eq!((o.messages(), o.replies()), (0, 1));
        p.room = 1;
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Empty);
        assert_eq!((o.messages(), o.replies()), (0, 0));
    }

    #[test]
    fn shared_messages_keep_their_place_and_count() {
        let mut o = Outbox::default();
        o.push_message(b"ab");
        let big = Bytes::from_static(b"LARGE");
        o.push_shared(big.clone());
        o.control_buf().extend_from_slice(b"P");
        o.mark_reply();
        o.push_message(b"cd");
        o.push_shared(big.clone());
        assert_eq!((o.messages(), o.replies()), (4, 1));
        let mut p = Pipe {
            got: Vec::new(),
            room: 1,
        };
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Blocked);
        assert_eq!(o.messages(), 4, "ab is only partly written");
        p.room = 4;
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Blocked);
        assert_eq!(
            (o.messages(), o.replies()),
            (3, 1),
            "into the shared message"
        );
        p.room = 4;
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Blocked);
        assert_eq!((o.messages(), o.replies()), (2, 0), "past the PONG and c");
        p.room = 100;
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Empty);
        assert_eq!(p.got, b"abLARGEPcdLARGE");
        assert!(o.is_empty() && o.messages() == 0);
        // Queued from empty again: positions start over.
        o.push_shared(big);
        o.push_message(b"e");
        assert_eq!(o.flush(&mut p).unwrap(), Flushed::Empty);
        assert_eq!(&p.got[15..], b"LARGEe");
    }
}
