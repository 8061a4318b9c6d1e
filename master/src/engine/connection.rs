//! One accepted TCP connection: its handshake, partial input, outbound queue, subscriptions and
//! timers. The engine's `topic.rs` drives it.

use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::handshake::Handshake;
use super::outbox::Outbox;
use super::subscriptions::Subscriptions;

/// Bytes of a unit (greeting, command or message) that arrived without the rest of it. Empty
/// between units. A large message is handed out of it by reference ([`Partial::take_front`]);
/// its memory is taken up again for the next read once every queue that held it let go, so a
/// stream of large messages reuses the same memory.
#[derive(Debug, Default)]
pub(super) struct Partial {
    /// Always initialised up to its length (reads go into `buf[len..]`).
    buf: BytesMut,
    len: usize,
}

impl Partial {
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for the next read: at least `want` bytes after the data.
    pub(super) fn spare(&mut self, want: usize) -> &mut [u8] {
        let end = self.len.saturating_add(want);
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        &mut self.buf[self.len..end]
    }

    /// `n` bytes were read into [`spare`](Self::spare).
    pub(super) fn filled(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    pub(super) fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub(super) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Hands out the first `n` bytes of the data (no copy); the rest stays.
    pub(super) fn take_front(&mut self, n: usize) -> Bytes {
        let n = n.min(self.len);
        self.len -= n;
        self.buf.split_to(n).freeze()
    }

    /// Keeps `data[from..to]`, moved to the front.
    pub(super) fn keep(&mut self, from: usize, to: usize) {
        self.buf.copy_within(from..to, 0);
        self.len = to - from;
    }

    /// Gives the memory back when nothing is pending and it grew past a few reads (a large
    /// message passed and the connection went quiet).
    pub(super) fn release(&mut self) {
        if self.len == 0 && self.buf.capacity() > super::READ_LEN * 4 {
            self.buf = BytesMut::new();
        }
    }

    /// Starts over with `bytes` (the leftover of a read into the engine's scratch buffer).
    pub(super) fn set(&mut self, bytes: &[u8]) {
        self.len = 0;
        self.spare(bytes.len()).copy_from_slice(bytes);
        self.len = bytes.len();
    }
}

pub(super) struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub handshake: Handshake,
    pub partial: Partial,
    /// Bytes the unit in `partial` needs in all, when known (sizes the next read).
    pub need: usize,
    pub outbox: Outbox,
    /// Subscriber connections only.
    pub subs: Subscriptions,
    pub accepted: Instant,
    pub last_recv: Instant,
    pub last_ping: Instant,
    /// The outbox could not be written out: flushed on the next writable edge.
    pub write_wait: bool,
    /// In the topic's list of connections to flush.
    pub touched: bool,
    /// Missing messages because the outbox is at the high-water mark.
    pub dropping: bool,
    pub missed: u64,
    /// On the engine's ready list: input may be left (in `partial` from a turn that used up its
    /// budget, or in the socket after a turn of full reads); events leave it to that turn.
    pub backlog: bool,
    /// Subscriber connections: since when it holds no subscription.
    pub unsubscribed_since: Instant,
}

impl Conn {
    pub(super) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        handshake: Handshake,
        now: Instant,
    ) -> Self {
        Conn {
            stream,
            peer,
            handshake,
            partial: Partial::default(),
            need: 0,
            outbox: Outbox::default(),
            subs: Subscriptions::default(),
            accepted: now,
            last_recv: now,
            last_ping: now,
            write_wait: false,
            touched: false,
            dropping: false,
            missed: 0,
            backlog: false,
            unsubscribed_since: now,
        }
    }
}

/// A vector of slots with reused free indices: connection handles stay small integers that fit
/// an epoll token.
pub(super) struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub(super) fn insert(&mut self, item: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.items[i] = Some(item);
                i
            }
            None => {
                self.items.push(Some(item));
                self.items.len() - 1
            }
        }
    }

    pub(super) fn remove(&mut self, i: usize) -> Option<T> {
        let item = self.items.get_mut(i)?.take();
        if item.is_some() {
            self.free.push(i);
        }
        item
    }

    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i)?.as_mut()
    }

    /// One past the highest index in use or ever used.
    pub(super) fn bound(&self) -> usize {
        self.items.len()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.items
            .iter_mut()
            .enumerate()
            .filter_map(|(i, t)| t.as_mut().map(|t| (i, t)))
    }

    pub(super) fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }
}
