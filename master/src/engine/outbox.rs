//! A connection's outbound queue: whole messages and commands coalesced into one contiguous
//! buffer, written with as few system calls as the socket allows.
//!
//! The queue counts messages (not commands) so that the high-water mark means what libzmq's
//! means: messages waiting in the master for this peer (the kernel's socket buffer comes on top).
//! Commands a peer causes (PONGs) are counted apart, so that a peer which sends PINGs and never
//! reads is bounded too.

use std::collections::VecDeque;
use std::io::{self, Write};

/// A drained buffer larger than this gives its memory back (a burst should not pin it).
const KEEP_CAPACITY: usize = 1 << 20;

/// Unsent bytes at the front are moved out of the way once they pass this and half the buffer.
const COMPACT_AFTER: usize = 256 << 10;

#[derive(Debug, Default)]
pub(super) struct Outbox {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    head: usize,
    /// End offsets (in `buf`) of the queued messages, oldest first.
    ends: VecDeque<usize>,
    /// End offsets of the queued replies a peer asked for (PONGs), oldest first.
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
        self.head == self.buf.len()
    }

    /// Queues a whole message, its frames as on the wire.
    pub(super) fn push_message(&mut self, wire: &[u8]) {
        self.buf.extend_from_slice(wire);
        self.ends.push_back(self.buf.len());
    }

    /// Ends a message whose bytes went in through [`control_buf`](Self::control_buf) (boxed
    /// parts): counted as one message, as [`push_message`](Self::push_message) counts.
    pub(super) fn end_message(&mut self) {
        self.ends.push_back(self.buf.len());
    }

    /// Replies the peer asked for (PONGs) queued and not yet fully written.
    pub(super) fn replies(&self) -> usize {
        self.replies.len()
    }

    /// Marks what was pushed since the last mark (through [`control_buf`](Self::control_buf))
    /// as one reply, counted by [`replies`](Self::replies).
    pub(super) fn mark_reply(&mut self) {
        self.replies.push_back(self.buf.len());
    }

    /// The buffer commands are encoded into (see `handshake::push_encoded`).
    pub(super) fn control_buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes as much as `out` takes.
    pub(super) fn flush(&mut self, out: &mut impl Write) -> io::Result<Flushed> {
        while self.head < self.buf.len() {
            match out.write(&self.buf[self.head..]) {
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

    fn advance(&mut self, n: usize) {
        self.head += n;
        while self.ends.front().is_some_and(|&end| end <= self.head) {
            self.ends.pop_front();
        }
        while self.replies.front().is_some_and(|&end| end <= self.head) {
            self.replies.pop_front();
        }
    }

    /// Drops the written front when it is large, so a subscriber that is always a little behind
    /// does not grow the buffer forever.
    fn compact(&mut self) {
        if self.head >= COMPACT_AFTER && self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            for end in self.ends.iter_mut().chain(self.replies.iter_mut()) {
                *end -= self.head;
            }
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
}
