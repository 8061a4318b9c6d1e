//! A subscriber's connection to the master's XPUB socket for its topic, driven from the
//! caller's thread: `recv` reads the socket itself (64 KiB at a time, many messages per read),
//! answers PINGs, and reconnects with backoff, re-sending the subscriptions.
//!
//! Reconnecting never makes a receive wait longer than asked: the TCP connect is non-blocking
//! and the handshake ([`Handshake`]) advances as far as the bytes already there allow, then
//! waits at most until the caller's deadline; the next receive (or the I/O thread) carries on.
//! libzmq connected in its I/O thread, so a `recv_timeout(10 ms)` never saw a silent master.
//!
//! An application that does not call `recv` for a while would leave the master's PINGs
//! unanswered, and the master would drop the connection (libzmq's I/O thread answered them).
//! So the node's I/O thread serves a link nobody used for [`KEEP_IDLE`]
//! ([`SubscriberLink::keep_alive`], on its timer about twice a second): it parks what arrived
//! (up to the high-water mark, as libzmq's receive queue), answers PINGs, sends ours, and
//! reconnects. While the application is away the link's socket is also registered with the I/O
//! thread's poll, so what arrives then is served at once ([`SubscriberLink::on_ready`]); the
//! next `recv` takes the registration back, so a busy receiver never wakes the I/O thread.
//! The socket stays owned by the link (behind the link's mutex): the I/O thread touches it
//! only while holding that lock, and a registration is only ever removed for the socket it
//! was made for.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use bytes::Bytes;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use zerosmq_core::zmtp::SocketType;

use super::handshake::{self, ConnectError, Established, Handshake};
use super::inbound::{Fill, Inbound, Item};
use super::io_thread::IoHandle;
use super::mechanism::{Mechanism, Sealer};
use super::{next_backoff, sys, DEAD_AFTER, PING_AFTER, RECONNECT_FIRST};

/// A link unused for this long is served by the node's I/O thread.
pub(crate) const KEEP_IDLE: Duration = Duration::from_millis(500);

/// Where and how to connect.
pub(crate) struct Target {
    pub host: String,
    pub port: Arc<AtomicU16>,
    pub mechanism: Mechanism,
    pub timeout: Duration,
}

/// One live connection.
struct Live {
    stream: TcpStream,
    minor: u8,
    /// Frames what we write (CURVE boxes it).
    sealer: Sealer,
    inbound: Inbound,
    last_rx: Instant,
    pinged: bool,
    /// The last read found nothing and nothing was read since: a waiting receive right after
    /// a non-blocking one (`recv_timeout`, a sweep over topics) goes straight to poll.
    drained: bool,
}

/// Why the link cannot go on.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// The master refused the PLAIN credentials.
    AuthFailed,
}

/// A received message: its first frame and further frames.
pub(crate) type Frames = (Bytes, Vec<Bytes>);

pub(crate) struct SubscriberLink {
    target: Target,
    /// The port of the live (or last tried) connection.
    port: u16,
    /// The master's addresses, resolved once (resolving may block); their ports are ignored.
    addrs: Vec<SocketAddr>,
    live: Option<Live>,
    /// The connection attempt under way, when not live.
    connecting: Option<Handshake>,
    /// Every prefix subscribed, sent again after a reconnect.
    subscriptions: Vec<Vec<u8>>,
    next_attempt: Instant,
    backoff: Duration,
    /// Reused for outgoing commands.
    out: Vec<u8>,
    /// Messages the I/O thread read while the application was away; `recv` hands them out first.
    parked: VecDeque<Frames>,
    /// When `recv` last returned.
    last_use: Instant,
    /// Counts live connections, so that a registration can tell the socket it was made for.
    generation: u64,
    /// The I/O thread that serves the link while the application is away, and its token.
    watch: Option<Watch>,
}

/// A link's place in its node's I/O thread.
struct Watch {
    io: Arc<IoHandle>,
    token: Token,
    /// Messages parked at most.
    hwm: usize,
    /// The live socket registered with the poll, and its generation.
    registered: Option<(RawFd, u64)>,
}

impl SubscriberLink {
    /// Connects at once, waiting up to the handshake timeout (the common case: the master is
    /// there), else later, inside `recv`.
    pub(crate) fn open(target: Target) -> Result<Self, LinkError> {
        let port = target.port.load(Ordering::Acquire);
        let until = Instant::now() + target.timeout;
        let mut link = SubscriberLink {
            addrs: handshake::resolve(&target.host, port).unwrap_or_default(),
            target,
            port,
            live: None,
            connecting: None,
            subscriptions: Vec::new(),
            next_attempt: Instant::now(),
            backoff: RECONNECT_FIRST,
            out: Vec::new(),
            parked: VecDeque::new(),
            last_use: Instant::now(),
            generation: 0,
            watch: None,
        };
        link.connect(until)?;
        Ok(link)
    }

    /// Whether the grant moved to another port.
    pub(crate) fn moved(&self) -> bool {
        self.target.port.load(Ordering::Acquire) != self.port
    }

    /// Drops the connection and starts connecting to the grant's current port.
    pub(crate) fn follow(&mut self) -> Result<(), LinkError> {
        self.live = None;
        self.connecting = None;
        self.port = self.target.port.load(Ordering::Acquire);
        self.backoff = RECONNECT_FIRST;
        self.next_attempt = Instant::now();
        self.connect(Instant::now())
    }

    pub(crate) fn subscribe(&mut self, prefix: &[u8]) {
        self.subscriptions.push(prefix.to_vec());
        self.send_subscription(true, prefix);
    }

    pub(crate) fn unsubscribe(&mut self, prefix: &[u8]) {
        if let Some(i) = self.subscriptions.iter().position(|p| p == prefix) {
            self.subscriptions.remove(i);
        }
        self.send_subscription(false, prefix);
    }

    fn send_subscription(&mut self, subscribe: bool, prefix: &[u8]) {
        let Some(live) = &mut self.live else { return };
        self.out.clear();
        live.sealer
            .subscription(live.minor, subscribe, prefix, &mut self.out);
        self.write_out();
    }

    /// Writes `out` on the live connection; a failure drops the connection.
    fn write_out(&mut self) {
        let Some(live) = &mut self.live else { return };
        if (&live.stream).write_all(&self.out).is_err() {
            self.live = None;
        }
    }

    /// Starts an attempt when none is under way and the backoff passed, and advances it,
    /// waiting until `until` at the latest; at the peer's READY the connection goes live.
    fn connect(&mut self, until: Instant) -> Result<(), LinkError> {
        if self.live.is_some() {
            return Ok(());
        }
        if self.connecting.is_none() {
            if Instant::now() < self.next_attempt {
                return Ok(());
            }
            let addrs = self.addresses();
            let t = &self.target;
            match Handshake::start(addrs, SocketType::Sub, &t.mechanism, t.timeout) {
                Ok(h) => self.connecting = Some(h),
                Err(e) => return self.attempt_failed(e),
            }
        }
        let Some(h) = &mut self.connecting else {
            return Ok(());
        };
        match h.advance(&self.target.mechanism, until) {
            Ok(false) => Ok(()),
            Ok(true) => match self.connecting.take().map(Handshake::finish) {
                Some(Ok(est)) => {
                    self.go_live(est);
                    Ok(())
                }
                Some(Err(e)) => self.attempt_failed(e),
                None => Ok(()),
            },
            Err(e) => {
                self.connecting = None;
                self.attempt_failed(e)
            }
        }
    }

    /// The master's addresses with the current port.
    fn addresses(&mut self) -> Vec<SocketAddr> {
        if self.addrs.is_empty() {
            // Resolving failed when opening: try again (blocking, but only in this rare case).
            self.addrs = handshake::resolve(&self.target.host, self.port).unwrap_or_default();
        }
        let port = self.port;
        self.addrs
            .iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect()
    }

    fn attempt_failed(&mut self, e: ConnectError) -> Result<(), LinkError> {
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = next_backoff(self.backoff);
        match e {
            ConnectError::AuthFailed => Err(LinkError::AuthFailed),
            ConnectError::Io | ConnectError::Protocol | ConnectError::ServerKey => Ok(()),
        }
    }

    /// The handshake is done: re-sends every subscription.
    fn go_live(&mut self, est: Established) {
        self.backoff = RECONNECT_FIRST;
        self.generation += 1;
        self.out.clear();
        let mut sealer = est.sealer;
        for p in &self.subscriptions {
            sealer.subscription(est.minor, true, p, &mut self.out);
        }
        self.live = Some(Live {
            stream: est.stream,
            minor: est.minor,
            sealer,
            inbound: Inbound::with_opener(est.opener),
            last_rx: Instant::now(),
            pinged: false,
            drained: false,
        });
        self.write_out();
    }

    /// The next message within `timeout` (zero: only what is already there, one non-blocking
    /// read at most). Commands are handled on the way; a lost connection is re-made.
    pub(crate) fn recv(&mut self, timeout: Duration) -> Result<Option<Frames>, LinkError> {
        if self.watch.as_ref().is_some_and(|w| w.registered.is_some()) {
            self.unregister();
        }
        if let Some(f) = self.parked.pop_front() {
            return Ok(Some(f));
        }
        let r = self.receive(timeout);
        self.last_use = Instant::now();
        r
    }

    /// For the node's I/O thread: when nobody used the link for [`KEEP_IDLE`], reads what arrived
    /// without waiting, parks up to `hwm` messages, answers PINGs, sends our own PING on a
    /// quiet connection and reconnects a lost one.
    pub(crate) fn keep_alive(&mut self, registry: &Registry) {
        if self.last_use.elapsed() < KEEP_IDLE {
            return;
        }
        let hwm = self.watch.as_ref().map_or(1, |w| w.hwm).max(1);
        while self.parked.len() < hwm {
            match self.receive(Duration::ZERO) {
                Ok(Some(f)) => self.parked.push_back(f),
                Ok(None) | Err(_) => break,
            }
        }
        self.register(registry);
    }

    /// Puts the link in the care of the node's I/O thread, as `token` of its poll.
    pub(crate) fn watch(&mut self, io: Arc<IoHandle>, token: Token, hwm: usize) {
        self.watch = Some(Watch {
            io,
            token,
            hwm,
            registered: None,
        });
    }

    /// For the node's I/O thread, on its poll's event for the link: serves it when the
    /// application is away, else hands the registration back.
    pub(crate) fn on_ready(&mut self, registry: &Registry) {
        if self.last_use.elapsed() < KEEP_IDLE {
            self.unregister();
        } else {
            self.keep_alive(registry);
        }
    }

    /// The live socket and its generation.
    fn source(&self) -> Option<(RawFd, u64)> {
        let live = self.live.as_ref()?;
        Some((live.stream.as_raw_fd(), self.generation))
    }

    /// Registers the live socket with the I/O thread's poll, unless it is already.
    fn register(&mut self, registry: &Registry) {
        let source = self.source();
        let Some(w) = self.watch.as_mut() else { return };
        let Some(source) = source else {
            // No connection: a closed socket left the poll by itself.
            w.registered = None;
            return;
        };
        if w.registered == Some(source) {
            return;
        }
        let mut fd = SourceFd(&source.0);
        if registry
            .register(&mut fd, w.token, Interest::READABLE)
            .is_ok()
            || registry
                .reregister(&mut fd, w.token, Interest::READABLE)
                .is_ok()
        {
            w.registered = Some(source);
        }
    }

    /// Takes the registration back, for the very socket it was made for only (a closed one
    /// left the poll by itself, and its number may belong to another socket by now).
    fn unregister(&mut self) {
        let source = self.source();
        let Some(w) = self.watch.as_mut() else { return };
        if let Some(registered) = w.registered.take() {
            if source == Some(registered) {
                let _ = w.io.registry().deregister(&mut SourceFd(&registered.0));
            }
        }
    }

    fn receive(&mut self, timeout: Duration) -> Result<Option<Frames>, LinkError> {
        // The clock is read only once there is nothing to hand out (a system call on some VMs).
        let mut deadline = None;
        let mut skip_read = !timeout.is_zero() && self.live.as_ref().is_some_and(|l| l.drained);
        loop {
            let Some(live) = &mut self.live else {
                let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                self.connect(deadline)?;
                if self.live.is_some() {
                    continue;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                if self.connecting.is_none() {
                    // Backing off.
                    std::thread::sleep(self.next_attempt.min(deadline) - now);
                }
                continue;
            };
            // Decoded messages first: under load most calls end here, without a system call.
            match live.inbound.next_item() {
                Ok(Some(item)) => {
                    let ping = live.inbound.take_ping();
                    if let Some(ctx) = ping {
                        self.pong(&ctx);
                    }
                    match item {
                        Item::Message { first, parts } => return Ok(Some((first, parts))),
                        Item::Error => self.live = None,
                        _ => {}
                    }
                    continue;
                }
                Ok(None) => {}
                Err(_) => {
                    self.live = None;
                    continue;
                }
            }
            if !std::mem::take(&mut skip_read) {
                match live.inbound.fill(live.stream.as_fd()) {
                    Ok(Fill::Data) => {
                        live.last_rx = Instant::now();
                        live.pinged = false;
                        live.drained = false;
                        continue;
                    }
                    Ok(Fill::Empty) => live.drained = true,
                    Ok(Fill::Closed) | Err(_) => {
                        self.live = None;
                        continue;
                    }
                }
            }
            // Nothing there right after a read.
            let now = Instant::now();
            let deadline = *deadline.get_or_insert(now + timeout);
            let quiet = now.saturating_duration_since(live.last_rx);
            if quiet >= DEAD_AFTER {
                self.live = None; // half-open: nothing from the master for too long
                continue;
            }
            if quiet >= PING_AFTER && !live.pinged {
                live.pinged = true;
                self.ping();
                continue;
            }
            if now >= deadline {
                return Ok(None);
            }
            let until = if live.pinged { DEAD_AFTER } else { PING_AFTER } - quiet;
            let wait = deadline.saturating_duration_since(now).min(until);
            if sys::poll_one(live.stream.as_fd(), false, wait).is_err() {
                self.live = None;
            }
        }
    }

    fn ping(&mut self) {
        let Some(live) = &mut self.live else { return };
        self.out.clear();
        live.sealer.ping(&mut self.out);
        self.write_out();
    }

    fn pong(&mut self, context: &[u8]) {
        let Some(live) = &mut self.live else { return };
        self.out.clear();
        live.sealer.pong(context, &mut self.out);
        self.write_out();
    }
}
