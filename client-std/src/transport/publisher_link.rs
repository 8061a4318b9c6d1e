//! A publisher's connection to the master's SUB socket for its topic, served by the node's I/O
//! thread (`io_thread`), with no thread of its own.
//!
//! Batching without added latency: a message published after a pause (of every publisher of
//! the node) is sent at once from the caller's thread (one non-blocking `send` on the
//! connection the caller shares with the I/O thread, no hand-off); a message that closely
//! follows another is appended to its topic's outbox, and the I/O thread drains the outboxes in
//! large non-blocking writes while callers keep appending. The I/O thread also reads the socket
//! (the master's SUBSCRIBE, i.e. readiness, and PINGs, answered even when the application only
//! publishes), finishes writes the socket did not take at once (on its writable event, so a
//! stalled master stalls only its own topic), sends our PINGs, reconnects with backoff and
//! follows the grant's port when the master moves the topic.
//!
//! Never blocking: like libzmq's PUB, a message nobody subscribed to (no master connected yet,
//! or not yet subscribed) is dropped, and so is a message beyond `hwm` queued ones when the
//! master does not keep up.
//!
//! Ownership: the live `TcpStream` is an `Arc` held by the I/O thread and, for direct sends,
//! by the shared state; the descriptor is closed when the last holder lets go, so a direct
//! send never meets a closed or reused descriptor.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use zerosmq_core::zmtp::SocketType;

use super::handshake::{self, ConnectError, Established, Handshake};
use super::inbound::{Fill, Inbound, Item};
use super::io_thread::{IoHandle, NO_SLOT};
use super::mechanism::{Mechanism, Sealer};
use super::{next_backoff, sys, DEAD_AFTER, PING_AFTER, RECONNECT_FIRST};

/// A message published less than this after the previous one goes through the I/O thread
/// (batched); after a longer pause it is written directly. Round trips are tens of µs apart,
/// bursts well under 1 µs.
const BATCH_GAP: Duration = Duration::from_micros(20);

/// Where and how to connect.
pub(crate) struct Target {
    pub host: String,
    pub port: Arc<AtomicU16>,
    pub mechanism: Mechanism,
    pub timeout: Duration,
    /// `TOPIC SP`: a subscription that is a prefix of it makes the path ready.
    pub topic_head: Vec<u8>,
}

/// What the application's thread and the I/O thread share about one publisher.
pub(crate) struct PubShared {
    state: Mutex<State>,
    changed: Condvar,
    target: Target,
    /// The publisher's slot (and poll token) in the I/O thread, [`NO_SLOT`] before it has one.
    pub(crate) slot: AtomicUsize,
}

struct State {
    /// Whole messages (and PINGs, PONGs) queued for the I/O thread, already framed.
    out: Vec<u8>,
    /// Messages in `out`.
    out_msgs: usize,
    /// Messages the I/O thread took and has not written completely.
    in_flight: usize,
    /// The I/O thread holds bytes not yet written: direct sends must wait their turn (order).
    writing: bool,
    /// The live connection, for direct sends; `None` while disconnected.
    stream: Option<Arc<TcpStream>>,
    /// Prefixes the master's SUB subscribed to on this connection.
    subscriptions: Vec<Vec<u8>>,
    /// Queued at the I/O thread.
    dirty: bool,
    /// Threads waiting in `flush`.
    flush_waiters: usize,
    /// The publisher is being dropped; what is queued is sent until this deadline.
    closing: Option<Instant>,
    /// The I/O thread let go of the connection for good.
    finished: bool,
    /// The last handshake failed on the credentials.
    auth_failed: bool,
    /// Frames what goes into `out` for the live connection (CURVE boxes, in nonce order).
    sealer: Sealer,
    /// Messages dropped so far: published with no master connected or subscribed, beyond
    /// `hwm` queued, or queued when the connection was lost.
    dropped: u64,
}

impl State {
    fn ready(&self, topic_head: &[u8]) -> bool {
        self.stream.is_some() && self.subscriptions.iter().any(|p| topic_head.starts_with(p))
    }

    /// Whether a message whose first frame starts with `head` then `rest` matches a
    /// subscription (libzmq PUB's prefix filter).
    fn matches(&self, head: &[u8], rest: &[u8]) -> bool {
        self.subscriptions.iter().any(|p| {
            let (a, b) = p.split_at(p.len().min(head.len()));
            head.starts_with(a) && rest.starts_with(b)
        })
    }
}

impl PubShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The publishing end: owned by the `Publisher`; dropping it flushes for up to `linger`.
pub(crate) struct PublisherLink {
    shared: Arc<PubShared>,
    io: Arc<IoHandle>,
    linger: Duration,
}

impl PublisherLink {
    /// Hands the connection to the node's I/O thread, which connects at once.
    pub(crate) fn start(target: Target, io: Arc<IoHandle>, linger: Duration) -> Self {
        let shared = Arc::new(PubShared {
            state: Mutex::new(State {
                out: Vec::with_capacity(64 * 1024),
                out_msgs: 0,
                in_flight: 0,
                writing: false,
                stream: None,
                subscriptions: Vec::new(),
                dirty: false,
                flush_waiters: 0,
                closing: None,
                finished: false,
                auth_failed: false,
                sealer: Sealer::default(),
                dropped: 0,
            }),
            changed: Condvar::new(),
            target,
            slot: AtomicUsize::new(NO_SLOT),
        });
        io.add(shared.clone());
        PublisherLink { shared, io, linger }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Publishes one message: the first frame is `head` then `body` (`TOPIC SP PAYLOAD`), then
    /// the frames of `rest`. Dropped when nobody subscribed or `hwm` messages are queued.
    pub(crate) fn send(&self, head: &[u8], body: &[u8], rest: &[&[u8]], hwm: usize) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(stream) = st.stream.as_deref() else {
            st.dropped += 1;
            return;
        };
        if !st.matches(head, body) || st.out_msgs + st.in_flight >= hwm.max(1) {
            st.dropped += 1;
            return;
        }
        let gap = self.io.tick();
        let direct = st.out.is_empty() && !st.writing && gap >= BATCH_GAP;
        st.sealer
            .message(&[head, body], !rest.is_empty(), &mut st.out);
        for (i, part) in rest.iter().enumerate() {
            st.sealer.message(&[part], i + 1 < rest.len(), &mut st.out);
        }
        st.out_msgs += 1;
        if direct {
            // The common case sends everything; a partial send leaves the rest to the I/O
            // thread, and an error is its to find (its read sees the reset).
            if let Ok(sent) = sys::send_now(stream, &st.out) {
                if sent == st.out.len() {
                    st.out.clear();
                    st.out_msgs = 0;
                    return;
                }
                st.out.drain(..sent);
            }
        }
        if !st.dirty {
            st.dirty = true;
            drop(guard);
            self.io.mark_dirty(self.shared.clone());
        }
    }

    /// Messages dropped so far (see `State::dropped`).
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// True once the master subscribed on the live connection.
    pub(crate) fn is_ready(&self) -> bool {
        self.lock().ready(&self.shared.target.topic_head)
    }

    /// Waits until ready or `timeout`; `Err(())` when the master refused the credentials.
    pub(crate) fn wait_ready(&self, timeout: Duration) -> Result<bool, ()> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if st.ready(&self.shared.target.topic_head) {
                return Ok(true);
            }
            if st.auth_failed {
                return Err(());
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Ok(false);
            };
            st = wait(&self.shared.changed, st, left);
        }
    }

    /// Waits until every queued message was handed to the kernel (or the connection was lost,
    /// which drops them); false after `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        st.flush_waiters += 1;
        let done = loop {
            if (st.out.is_empty() && !st.writing) || st.stream.is_none() {
                break true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break false;
            };
            st = wait(&self.shared.changed, st, left);
        };
        st.flush_waiters -= 1;
        done
    }
}

impl Drop for PublisherLink {
    /// Sends what is queued for up to `linger` (libzmq's linger), then the I/O thread closes
    /// the connection; nothing is written after the deadline.
    fn drop(&mut self) {
        let deadline = Instant::now() + self.linger;
        let mut st = self.lock();
        st.closing = Some(deadline);
        drop(st);
        self.io.poke();
        let mut st = self.lock();
        while !st.finished {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            st = wait(&self.shared.changed, st, left);
        }
    }
}

fn wait<'a>(cv: &Condvar, guard: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
    match cv.wait_timeout(guard, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

/// The I/O thread's side of one publisher.
pub(crate) struct PubConn {
    shared: Arc<PubShared>,
    phase: Phase,
    backoff: Duration,
    /// The master's addresses, resolved once (resolving may block); their ports are ignored.
    addrs: Vec<SocketAddr>,
    /// The grant's port at the last attempt: a new one (the master restarted or moved the
    /// topic) is tried at once, not after the backoff the old one earned.
    tried_port: u16,
    /// Bytes taken from the outbox and not yet written, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
}

enum Phase {
    /// Disconnected; the next attempt is due at this time.
    Idle(Instant),
    Connecting(Box<Handshake>, u16),
    Live(Live),
    /// Closed for good.
    Done,
}

struct Live {
    stream: Arc<TcpStream>,
    port: u16,
    inbound: Inbound,
    last_rx: Instant,
    pinged: bool,
}

impl PubConn {
    pub(crate) fn new(shared: Arc<PubShared>) -> PubConn {
        PubConn {
            shared,
            phase: Phase::Idle(Instant::now()),
            backoff: RECONNECT_FIRST,
            addrs: Vec::new(),
            tried_port: 0,
            pending: Vec::with_capacity(64 * 1024),
            pending_at: 0,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<PubShared> {
        &self.shared
    }

    /// Timers and flags: closing, backoff, handshake progress and deadline, a moved grant,
    /// PINGs and half-open connections. True when the publisher is done and its slot free.
    pub(crate) fn on_timer(&mut self, registry: &Registry, token: Token, now: Instant) -> bool {
        let closing = self.shared.lock().closing;
        if let Some(deadline) = closing {
            if now >= deadline || !matches!(self.phase, Phase::Live(_)) || self.idle() {
                self.close(registry, token);
                return true;
            }
        }
        let port = self.shared.target.port.load(Ordering::Acquire);
        let mut ping = false;
        match &mut self.phase {
            Phase::Idle(at) if now >= *at || port != self.tried_port => {
                if port != self.tried_port {
                    self.backoff = RECONNECT_FIRST;
                }
                self.connect(registry, token)
            }
            Phase::Idle(_) | Phase::Done => {}
            Phase::Connecting(_, p) if *p != port => self.lost(registry, token, true),
            Phase::Connecting(..) => self.advance(registry, token),
            Phase::Live(live) => {
                let quiet = now.saturating_duration_since(live.last_rx);
                if live.port != port || quiet >= DEAD_AFTER {
                    // Moved, or half-open: nothing from the master for too long.
                    let moved = live.port != port;
                    self.lost(registry, token, moved);
                } else if quiet >= PING_AFTER && !live.pinged {
                    live.pinged = true;
                    ping = true;
                }
            }
        }
        if ping {
            {
                let mut guard = self.shared.lock();
                let st = &mut *guard;
                st.sealer.ping(&mut st.out);
            }
            self.flush(registry, token);
        }
        false
    }

    /// Nothing left to write.
    fn idle(&self) -> bool {
        self.pending_at >= self.pending.len() && self.shared.lock().out.is_empty()
    }

    /// After an event or a flush: a closing publisher with nothing left to write is done now
    /// (not at the next tick). True when its slot is free.
    pub(crate) fn finish_if_closed(&mut self, registry: &Registry, token: Token) -> bool {
        let closing = self.shared.lock().closing;
        if closing.is_some() && (self.idle() || !matches!(self.phase, Phase::Live(_))) {
            self.close(registry, token);
            return true;
        }
        false
    }

    /// A readiness event on the connection.
    pub(crate) fn on_event(&mut self, registry: &Registry, token: Token, readable: bool) {
        match &mut self.phase {
            Phase::Connecting(..) => self.advance(registry, token),
            Phase::Live(live) => {
                if readable && read_input(&self.shared, live).is_err() {
                    self.lost(registry, token, false);
                    return;
                }
                self.flush(registry, token);
            }
            Phase::Idle(_) | Phase::Done => {}
        }
    }

    fn connect(&mut self, registry: &Registry, token: Token) {
        let t = &self.shared.target;
        let port = t.port.load(Ordering::Acquire);
        self.tried_port = port;
        if self.addrs.is_empty() {
            // Blocks the I/O thread only for a name that is not resolved yet.
            self.addrs = handshake::resolve(&t.host, port).unwrap_or_default();
        }
        let addrs = self
            .addrs
            .iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect();
        match Handshake::start(addrs, SocketType::Pub, &t.mechanism, t.timeout) {
            Ok(h) => {
                let fd = h.stream().as_raw_fd();
                let interest = Interest::READABLE | Interest::WRITABLE;
                if registry
                    .register(&mut SourceFd(&fd), token, interest)
                    .is_err()
                {
                    self.failed(ConnectError::Io);
                    return;
                }
                self.phase = Phase::Connecting(Box::new(h), port);
                self.advance(registry, token);
            }
            Err(e) => self.failed(e),
        }
    }

    fn advance(&mut self, registry: &Registry, token: Token) {
        let Phase::Connecting(h, port) = &mut self.phase else {
            return;
        };
        let port = *port;
        match h.advance(&self.shared.target.mechanism, Instant::now()) {
            Ok(false) => {}
            Ok(true) => {
                let Phase::Connecting(h, _) = std::mem::replace(&mut self.phase, Phase::Done)
                else {
                    return;
                };
                let _ = registry.deregister(&mut SourceFd(&h.stream().as_raw_fd()));
                match h.finish_nonblocking() {
                    Ok(est) => self.go_live(registry, token, est, port),
                    Err(e) => self.failed(e),
                }
            }
            Err(e) => {
                let _ = registry.deregister(&mut SourceFd(&h.stream().as_raw_fd()));
                self.failed(e);
            }
        }
    }

    /// A connection attempt failed: wait for the backoff.
    fn failed(&mut self, e: ConnectError) {
        if matches!(e, ConnectError::AuthFailed) {
            self.shared.lock().auth_failed = true;
            self.shared.changed.notify_all();
        }
        self.phase = Phase::Idle(Instant::now() + self.backoff);
        self.backoff = next_backoff(self.backoff);
    }

    fn go_live(&mut self, registry: &Registry, token: Token, est: Established, port: u16) {
        let stream = Arc::new(est.stream);
        // Registered again (the handshake's registration was dropped: it may have moved on
        // to another address's socket).
        let fd = stream.as_raw_fd();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if registry
            .register(&mut SourceFd(&fd), token, interest)
            .is_err()
        {
            self.lost(registry, token, false);
            return;
        }
        {
            let mut st = self.shared.lock();
            st.stream = Some(stream.clone());
            st.subscriptions.clear();
            st.out.clear();
            st.out_msgs = 0;
            st.auth_failed = false;
            st.sealer = est.sealer;
        }
        self.pending.clear();
        self.pending_at = 0;
        self.backoff = RECONNECT_FIRST;
        self.phase = Phase::Live(Live {
            stream,
            port,
            inbound: Inbound::with_opener(est.opener),
            last_rx: Instant::now(),
            pinged: false,
        });
        // The master may have sent its SUBSCRIBE with its READY.
        self.on_event(registry, token, true);
    }

    /// Drops the connection (lost, half-open, moved) and what was queued for it; reconnects
    /// after the backoff, or at once when the grant `moved`.
    fn lost(&mut self, registry: &Registry, token: Token, moved: bool) {
        self.disconnect(registry, token);
        let wait = if moved { Duration::ZERO } else { self.backoff };
        self.phase = Phase::Idle(Instant::now() + wait);
        self.backoff = if moved {
            RECONNECT_FIRST
        } else {
            next_backoff(self.backoff)
        };
    }

    fn disconnect(&mut self, registry: &Registry, _token: Token) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Live(live) => {
                let _ = registry.deregister(&mut SourceFd(&live.stream.as_raw_fd()));
            }
            Phase::Connecting(h, _) => {
                let _ = registry.deregister(&mut SourceFd(&h.stream().as_raw_fd()));
            }
            Phase::Idle(_) | Phase::Done => {}
        }
        self.pending.clear();
        self.pending_at = 0;
        let mut st = self.shared.lock();
        st.stream = None;
        st.subscriptions.clear();
        st.out.clear();
        st.dropped += (st.out_msgs + st.in_flight) as u64;
        st.out_msgs = 0;
        st.in_flight = 0;
        st.writing = false;
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Closes for good (the publisher or the node is dropped).
    pub(crate) fn close(&mut self, registry: &Registry, token: Token) {
        self.disconnect(registry, token);
        self.shared.lock().finished = true;
        self.shared.changed.notify_all();
    }

    /// Writes what the socket takes now: first the bytes already taken, then the outbox.
    pub(crate) fn flush(&mut self, registry: &Registry, token: Token) {
        let Phase::Live(live) = &self.phase else {
            return;
        };
        let stream = live.stream.clone();
        loop {
            if self.pending_at < self.pending.len() {
                match sys::send_now(stream.as_fd(), &self.pending[self.pending_at..]) {
                    Ok(0) => return, // full: the writable event brings us back
                    Ok(n) => self.pending_at += n,
                    Err(_) => {
                        self.lost(registry, token, false);
                        return;
                    }
                }
                continue;
            }
            self.pending.clear();
            self.pending_at = 0;
            let mut st = self.shared.lock();
            st.dirty = false;
            if st.closing.is_some_and(|d| Instant::now() >= d) {
                return; // the timer closes it: nothing more is written after the linger
            }
            if st.out.is_empty() {
                let was = std::mem::take(&mut st.writing);
                st.in_flight = 0;
                let notify = was && st.flush_waiters > 0 || st.closing.is_some();
                drop(st);
                if notify {
                    self.shared.changed.notify_all();
                }
                return;
            }
            std::mem::swap(&mut st.out, &mut self.pending);
            st.in_flight = st.out_msgs;
            st.out_msgs = 0;
            st.writing = true;
        }
    }
}

/// Reads and handles what the master sent: subscriptions, cancellations, PINGs (answered
/// through the outbox). `Err` when the connection is over.
fn read_input(shared: &PubShared, live: &mut Live) -> Result<(), ()> {
    let mut got = false;
    loop {
        match live.inbound.fill(live.stream.as_fd()) {
            Ok(Fill::Data) => got = true,
            Ok(Fill::Empty) => break,
            Ok(Fill::Closed) | Err(_) => return Err(()),
        }
    }
    if got {
        live.last_rx = Instant::now();
        live.pinged = false;
    }
    let mut changed = false;
    loop {
        let item = live.inbound.next_item().map_err(|_| ())?;
        let pong = live.inbound.take_ping();
        let Some(item) = item else { break };
        let mut guard = shared.lock();
        let st = &mut *guard;
        match item {
            Item::Subscribe(p) => {
                st.subscriptions.push(p.to_vec());
                changed = true;
            }
            Item::Cancel(p) => {
                if let Some(i) = st.subscriptions.iter().position(|s| s[..] == p[..]) {
                    st.subscriptions.swap_remove(i);
                }
            }
            // A ZMTP 3.0 SUB subscribes with a message: 1 or 0, then the prefix.
            Item::Message { first, parts } if parts.is_empty() => match first.first() {
                Some(1) => {
                    st.subscriptions.push(first[1..].to_vec());
                    changed = true;
                }
                Some(0) => {
                    if let Some(i) = st.subscriptions.iter().position(|s| s[..] == first[1..]) {
                        st.subscriptions.swap_remove(i);
                    }
                }
                _ => {}
            },
            Item::Error => return Err(()),
            Item::Message { .. } | Item::Ignored => {}
        }
        if let Some(ctx) = pong {
            st.sealer.pong(&ctx, &mut st.out);
        }
    }
    if changed {
        shared.changed.notify_all();
    }
    Ok(())
}
