//! A connection's outbound queue: whole messages and commands coalesced into one contiguous
//! buffer, written with as few system calls as the socket allows.
//!
//! The queue counts messages (not commands) so that the high-water mark means what libzmq's
//! means: messages waiting in the master for this peer (the kernel's socket buffer comes on top).

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

    /// Queues a command (or greeting); not counted as a message.
    pub(super) fn push_control(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
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
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
        Ok(Flushed::Empty)
    }

    fn advance(&mut self, n: usize) {
        self.head += n;
        while self.ends.front().is_some_and(|&end| end <= self.head) {
            self.ends.pop_front();
        }
    }

    /// Drops the written front when it is large, so a subscriber that is always a little behind
    /// does not grow the buffer forever.
    fn compact(&mut self) {
        if self.head >= COMPACT_AFTER && self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            for end in self.ends.iter_mut() {
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
        o.push_control(b"G");
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
}
