//! A publisher's connection to the master's SUB socket for its topic.
//!
//! Batching without added latency: a message published after a pause (of every publisher of
//! the node) is sent at once from the caller's thread (one non-blocking `sendmsg`, no
//! hand-off); a message that closely follows another is appended to its topic's outbox, and the
//! node's [`Flusher`] thread drains the outboxes in large non-blocking writes while callers keep
//! appending. The flusher is woken (an eventfd write) only when it sleeps, so a burst costs one
//! wake-up, not one per message, and under load each topic's outbox gathers many messages per
//! write even when a burst goes round a thousand topics. Each publisher also has its own
//! writer thread: it connects, reads the socket (the master's SUBSCRIBE, i.e. readiness, and
//! PINGs, answered even when the application only publishes) and finishes writes the socket
//! did not take at once, so a stalled master stalls only its own topic.
//!
//! Never blocking: like libzmq's PUB, a message nobody subscribed to (no master connected yet,
//! or not yet subscribed) is dropped, and so is a message beyond `hwm` queued ones when the
//! master does not keep up. The writer reconnects by itself, with backoff, and follows the
//! grant's port when the master moves the topic.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zerosmq_core::zmtp::{command, Connection, SocketType};

use super::handshake::{self, ConnectError, Established};
use super::inbound::{Fill, Inbound, Item};
use super::sys::{self, Waker};
use super::{next_backoff, push_ping, DEAD_AFTER, PING_AFTER, RECONNECT_FIRST};

/// A message published less than this after the previous one goes through the writer thread
/// (batched); after a longer pause it is written directly. Round trips are tens of µs apart,
/// bursts well under 1 µs.
const BATCH_GAP: Duration = Duration::from_micros(20);

/// The node-wide thread that drains publishers' outboxes (see the module doc), and the clock
/// that tells a burst from an isolated message.
pub(crate) struct Flusher {
    state: Mutex<FlushState>,
    waker: Waker,
    base: Instant,
    /// Nanoseconds since `base` of the node's last publish.
    last_publish: std::sync::atomic::AtomicU64,
}

struct FlushState {
    /// Publishers with messages in their outbox, each once.
    dirty: Vec<Arc<Shared>>,
    sleeping: bool,
    woken: bool,
    stop: bool,
}

impl Flusher {
    /// Starts the flusher thread; it runs until [`Flusher::stop`].
    pub(crate) fn start() -> std::io::Result<Arc<Flusher>> {
        let flusher = Arc::new(Flusher {
            state: Mutex::new(FlushState {
                dirty: Vec::new(),
                sleeping: false,
                woken: false,
                stop: false,
            }),
            waker: Waker::new()?,
            base: Instant::now(),
            last_publish: std::sync::atomic::AtomicU64::new(0),
        });
        let f = flusher.clone();
        std::thread::Builder::new()
            .name("zerosmq-flush".into())
            .spawn(move || f.run())?;
        Ok(flusher)
    }

    /// Ends the thread (the node is dropped; its publishers are gone).
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.waker.wake();
    }

    fn lock(&self) -> MutexGuard<'_, FlushState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a publish now; returns the time since the node's previous one.
    fn tick(&self) -> Duration {
        let now = self.base.elapsed().as_nanos() as u64;
        let before = self.last_publish.swap(now, Ordering::Relaxed);
        Duration::from_nanos(now.saturating_sub(before))
    }

    /// Queues `shared` (whose outbox just got its first message) and wakes the thread if it
    /// sleeps.
    fn mark(&self, shared: Arc<Shared>) {
        let mut st = self.lock();
        st.dirty.push(shared);
        if st.sleeping && !st.woken {
            st.woken = true;
            self.waker.wake();
        }
    }

    fn run(&self) {
        let mut list = Vec::new();
        let mut batch = Vec::with_capacity(64 * 1024);
        loop {
            {
                let mut st = self.lock();
                if st.stop {
                    return;
                }
                if st.dirty.is_empty() {
                    st.sleeping = true;
                    st.woken = false;
                    drop(st);
                    let _ = sys::poll_in(self.waker.fd(), None, None);
                    self.waker.reset();
                    self.lock().sleeping = false;
                    continue;
                }
                std::mem::swap(&mut st.dirty, &mut list);
            }
            for shared in list.drain(..) {
                flush_outbox(&shared, &mut batch);
            }
        }
    }
}

/// Writes what `shared`'s outbox holds, as far as the socket takes it now; the rest goes back
/// to the front of the outbox for the publisher's own writer, which may block.
fn flush_outbox(shared: &Shared, batch: &mut Vec<u8>) {
    let mut st = lock(shared);
    st.dirty = false;
    let Some(fd) = st.fd else { return };
    if st.writing || st.out.is_empty() {
        return;
    }
    std::mem::swap(&mut st.out, batch);
    st.in_flight = st.out_msgs;
    st.out_msgs = 0;
    st.writing = true;
    drop(st);
    // The fd stays open while `writing` is set (see `serve`'s end).
    let sent = sys::send_now(fd, &[batch]).unwrap_or(0);
    let mut st = lock(shared);
    st.writing = false;
    if sent < batch.len() {
        st.out.splice(0..0, batch[sent..].iter().copied());
        st.out_msgs += st.in_flight;
        if st.sleeping && !st.woken {
            st.woken = true;
            shared.waker.wake();
        }
    }
    st.in_flight = 0;
    batch.clear();
    let notify = st.flush_waiters > 0 || st.fd.is_none();
    drop(st);
    if notify {
        shared.changed.notify_all();
    }
}

/// Stack of a publisher's writer thread.
const WRITER_STACK: usize = 256 * 1024;

/// Where and how to connect.
pub(crate) struct Target {
    pub host: String,
    pub port: Arc<AtomicU16>,
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
    /// `TOPIC SP`: a subscription that is a prefix of it makes the path ready.
    pub topic_head: Vec<u8>,
    /// The node's flusher.
    pub flusher: Arc<Flusher>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    waker: Arc<Waker>,
    target: Target,
}

struct State {
    /// Whole messages (and PINGs, PONGs) queued for the writer, already framed.
    out: Vec<u8>,
    /// Messages in `out`.
    out_msgs: usize,
    /// Messages in the batch the writer is writing.
    in_flight: usize,
    /// The writer has taken a batch: direct sends must wait their turn (order).
    writing: bool,
    /// The live connection's socket, for direct sends; `None` while disconnected. Only closed
    /// by the writer after clearing this under the lock, so a direct send never hits a reused
    /// descriptor.
    fd: Option<RawFd>,
    /// Prefixes the master's SUB subscribed to on this connection.
    subscriptions: Vec<Vec<u8>>,
    /// The writer sleeps in poll; a producer must wake it.
    sleeping: bool,
    /// A wake is already pending.
    woken: bool,
    /// Queued at the flusher.
    dirty: bool,
    /// Threads waiting in `flush`.
    flush_waiters: usize,
    /// The publisher is being dropped; the writer sends what is queued until this deadline.
    closing: Option<Instant>,
    /// The writer thread has exited.
    finished: bool,
    /// The last handshake failed on the credentials.
    auth_failed: bool,
}

impl State {
    fn ready(&self, topic_head: &[u8]) -> bool {
        self.fd.is_some() && self.subscriptions.iter().any(|p| topic_head.starts_with(p))
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

/// The publishing end: owned by the `Publisher`; dropping it flushes for up to `linger`.
pub(crate) struct PublisherLink {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    linger: Duration,
}

impl PublisherLink {
    /// Starts the writer thread, which connects at once.
    pub(crate) fn start(
        target: Target,
        waker: Arc<Waker>,
        linger: Duration,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                out: Vec::with_capacity(64 * 1024),
                out_msgs: 0,
                in_flight: 0,
                writing: false,
                fd: None,
                subscriptions: Vec::new(),
                sleeping: false,
                woken: false,
                dirty: false,
                flush_waiters: 0,
                closing: None,
                finished: false,
                auth_failed: false,
            }),
            changed: Condvar::new(),
            waker,
            target,
        });
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("zerosmq-pub".into())
            // One per topic: a thousand topics must not reserve 2 GiB of stacks. Its buffers
            // are on the heap.
            .stack_size(WRITER_STACK)
            .spawn(move || writer_loop(&writer))?;
        Ok(PublisherLink {
            shared,
            thread: Some(thread),
            linger,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes one message: the first frame is `head` then `body` (`TOPIC SP PAYLOAD`), then
    /// the frames of `rest`. Dropped when nobody subscribed or `hwm` messages are queued.
    pub(crate) fn send(&self, head: &[u8], body: &[u8], rest: &[&[u8]], hwm: usize) {
        let mut st = self.lock();
        let Some(fd) = st.fd else { return };
        if !st.matches(head, body) || st.out_msgs + st.in_flight >= hwm.max(1) {
            return;
        }
        let gap = self.shared.target.flusher.tick();
        let direct = st.out.is_empty() && !st.writing && gap >= BATCH_GAP;
        let (h, n) = Connection::message_header(head.len() + body.len(), !rest.is_empty());
        st.out.extend_from_slice(&h[..n]);
        st.out.extend_from_slice(head);
        st.out.extend_from_slice(body);
        for (i, part) in rest.iter().enumerate() {
            let (h, n) = Connection::message_header(part.len(), i + 1 < rest.len());
            st.out.extend_from_slice(&h[..n]);
            st.out.extend_from_slice(part);
        }
        st.out_msgs += 1;
        if direct {
            // The common case sends everything; a partial send leaves the rest to the writer,
            // and an error is the writer's to find (its read sees the reset).
            if let Ok(sent) = sys::send_now(fd, &[&st.out]) {
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
            drop(st);
            self.shared.target.flusher.mark(self.shared.clone());
        }
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
            if (st.out.is_empty() && !st.writing) || st.fd.is_none() {
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
    /// Sends what is queued for up to `linger` (libzmq's linger), then stops the writer.
    fn drop(&mut self) {
        let deadline = Instant::now() + self.linger;
        {
            let mut st = self.lock();
            st.closing = Some(deadline);
            self.shared.waker.wake();
            while !st.finished {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                st = wait(&self.shared.changed, st, left);
            }
            if !st.finished {
                // A stalled write notices the passed deadline within one write slice.
                return;
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait<'a>(cv: &Condvar, guard: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
    match cv.wait_timeout(guard, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer thread: connect (with backoff), serve, repeat until the publisher is dropped.
fn writer_loop(shared: &Shared) {
    let t = &shared.target;
    let mut backoff = RECONNECT_FIRST;
    while lock(shared).closing.is_none() {
        let port = t.port.load(Ordering::Acquire);
        match handshake::connect(
            &t.host,
            port,
            SocketType::Pub,
            t.credentials.as_ref(),
            t.timeout,
        ) {
            Ok(est) => {
                backoff = RECONNECT_FIRST;
                lock(shared).auth_failed = false;
                serve(shared, est, port);
                continue;
            }
            Err(ConnectError::AuthFailed) => {
                lock(shared).auth_failed = true;
                shared.changed.notify_all();
            }
            Err(_) => {}
        }
        // Sleeps until the backoff passed, or a wake (drop, new port).
        let _ = sys::poll_in(shared.waker.fd(), None, Some(backoff));
        shared.waker.reset();
        backoff = next_backoff(backoff);
    }
    lock(shared).finished = true;
    shared.changed.notify_all();
}

/// Why serving a connection ended.
enum End {
    /// Lost, refused, dead, or moved: reconnect.
    Reconnect,
}

/// Serves one connection until it fails, the grant moves, or the publisher is dropped.
fn serve(shared: &Shared, est: Established, port: u16) {
    let Established { stream, .. } = est;
    let fd = stream.as_raw_fd();
    {
        let mut st = lock(shared);
        st.fd = Some(fd);
        st.subscriptions.clear();
        st.out.clear();
        st.out_msgs = 0;
    }
    let mut inbound = Inbound::new();
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut last_rx = Instant::now();
    let mut pinged = false;
    let _: End = loop {
        let mut st = lock(shared);
        if shared.target.port.load(Ordering::Acquire) != port {
            break End::Reconnect;
        }
        if !st.out.is_empty() && !st.writing {
            std::mem::swap(&mut st.out, &mut batch);
            st.in_flight = st.out_msgs;
            st.out_msgs = 0;
            st.writing = true;
            drop(st);
            let written = write_all(shared, &stream, &batch, port);
            batch.clear();
            let mut st = lock(shared);
            st.writing = false;
            st.in_flight = 0;
            let waiters = st.flush_waiters > 0;
            drop(st);
            if waiters {
                shared.changed.notify_all();
            }
            if !written {
                break End::Reconnect;
            }
            // Input waits at most one batch: PINGs and subscriptions are small and rare.
            if take_input(shared, fd, &mut inbound, &mut last_rx, &mut pinged).is_err() {
                break End::Reconnect;
            }
            continue;
        }
        if st.closing.is_some() {
            break End::Reconnect;
        }
        let quiet = last_rx.elapsed();
        if quiet >= DEAD_AFTER {
            break End::Reconnect; // half-open: nothing from the master for too long
        }
        if quiet >= PING_AFTER && !pinged {
            pinged = true;
            push_ping(&mut st.out);
            continue;
        }
        let until = if pinged { DEAD_AFTER } else { PING_AFTER };
        st.sleeping = true;
        st.woken = false;
        drop(st);
        let readable = sys::poll_in(fd, Some(shared.waker.fd()), Some(until - quiet));
        let mut st = lock(shared);
        st.sleeping = false;
        drop(st);
        let Ok(readable) = readable else {
            break End::Reconnect;
        };
        if readable.second {
            shared.waker.reset();
        }
        if readable.first
            && take_input(shared, fd, &mut inbound, &mut last_rx, &mut pinged).is_err()
        {
            break End::Reconnect;
        }
    };
    let mut st = lock(shared);
    st.fd = None;
    // The flusher may be writing on this descriptor: close it only after.
    while st.writing {
        st = wait(&shared.changed, st, Duration::from_millis(100));
    }
    st.subscriptions.clear();
    st.out.clear();
    st.out_msgs = 0;
    drop(st);
    shared.changed.notify_all();
    drop(stream);
}

/// Writes `bytes` in write slices; false when the connection failed, the grant moved, or the
/// publisher's linger deadline passed.
fn write_all(
    shared: &Shared,
    mut stream: &std::net::TcpStream,
    mut bytes: &[u8],
    port: u16,
) -> bool {
    use std::io::{ErrorKind, Write};
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                let st = lock(shared);
                if st.closing.is_some_and(|d| Instant::now() >= d)
                    || shared.target.port.load(Ordering::Acquire) != port
                {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Reads and handles what the master sent: subscriptions, cancellations, PINGs. `Ok(true)`
/// when bytes arrived; `Err` when the connection is over.
/// Reads what the master sent (see [`read_input`]); anything heard restarts the PING clock.
/// `Err`: the connection is gone.
fn take_input(
    shared: &Shared,
    fd: RawFd,
    inbound: &mut Inbound,
    last_rx: &mut Instant,
    pinged: &mut bool,
) -> Result<(), ()> {
    if read_input(shared, fd, inbound)? {
        *last_rx = Instant::now();
        *pinged = false;
    }
    Ok(())
}

fn read_input(shared: &Shared, fd: RawFd, inbound: &mut Inbound) -> Result<bool, ()> {
    let mut got = false;
    loop {
        match inbound.fill(fd) {
            Ok(Fill::Data) => got = true,
            Ok(Fill::Empty) => break,
            Ok(Fill::Closed) | Err(_) => return Err(()),
        }
    }
    let mut changed = false;
    loop {
        let item = inbound.next_item().map_err(|_| ())?;
        let pong = inbound.take_ping();
        let Some(item) = item else { break };
        let mut st = lock(shared);
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
            let mut buf = [0u8; 32];
            if let Ok(n) = command::encode_pong(&ctx, &mut buf) {
                st.out.extend_from_slice(&buf[..n]);
            }
        }
    }
    if changed {
        shared.changed.notify_all();
    }
    Ok(got)
}
