//! A subscriber's connection to the master's XPUB socket for its topic, driven from the
//! caller's thread: `recv` reads the socket itself (64 KiB at a time, many messages per read),
//! answers PINGs, and reconnects with backoff, re-sending the subscriptions.
//!
//! An application that does not call `recv` for a while would leave the master's PINGs
//! unanswered, and the master would drop the connection (libzmq's I/O thread answered them).
//! So the node's keeper thread calls [`SubscriberLink::keep_alive`] about once a second: for a
//! link nobody used for [`KEEP_IDLE`], it parks what arrived (up to the high-water mark, as
//! libzmq's receive queue) and answers PINGs. A busy subscriber never meets the keeper.

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use bytes::Bytes;
use zerosmq_core::zmtp::{command, SocketType};

use super::handshake::{self, ConnectError};
use super::inbound::{Fill, Inbound, Item};
use super::{encode_subscription, next_backoff, sys, DEAD_AFTER, PING_AFTER, RECONNECT_FIRST};

/// A link unused for this long is served by the keeper thread.
pub(crate) const KEEP_IDLE: Duration = Duration::from_millis(500);

/// Where and how to connect.
pub(crate) struct Target {
    pub host: String,
    pub port: Arc<AtomicU16>,
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
}

/// One live connection.
struct Live {
    stream: TcpStream,
    minor: u8,
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
    live: Option<Live>,
    /// Every prefix subscribed, sent again after a reconnect.
    subscriptions: Vec<Vec<u8>>,
    next_attempt: Instant,
    backoff: Duration,
    /// Reused for outgoing commands.
    out: Vec<u8>,
    /// Messages the keeper read while the application was away; `recv` hands them out first.
    parked: VecDeque<Frames>,
    /// When `recv` last returned.
    last_use: Instant,
}

impl SubscriberLink {
    /// Connects at once (the common case: the master is there), else later, inside `recv`.
    pub(crate) fn open(target: Target) -> Result<Self, LinkError> {
        let port = target.port.load(Ordering::Acquire);
        let mut link = SubscriberLink {
            target,
            port,
            live: None,
            subscriptions: Vec::new(),
            next_attempt: Instant::now(),
            backoff: RECONNECT_FIRST,
            out: Vec::new(),
            parked: VecDeque::new(),
            last_use: Instant::now(),
        };
        link.try_connect()?;
        Ok(link)
    }

    /// Whether the grant moved to another port.
    pub(crate) fn moved(&self) -> bool {
        self.target.port.load(Ordering::Acquire) != self.port
    }

    /// Drops the connection and connects to the grant's current port.
    pub(crate) fn follow(&mut self) -> Result<(), LinkError> {
        self.live = None;
        self.port = self.target.port.load(Ordering::Acquire);
        self.backoff = RECONNECT_FIRST;
        self.next_attempt = Instant::now();
        self.try_connect()
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
        let Some(live) = &self.live else { return };
        self.out.clear();
        encode_subscription(live.minor, subscribe, prefix, &mut self.out);
        self.write_out();
    }

    /// Writes `out` on the live connection; a failure drops the connection.
    fn write_out(&mut self) {
        let Some(live) = &mut self.live else { return };
        if (&live.stream).write_all(&self.out).is_err() {
            self.live = None;
        }
    }

    fn try_connect(&mut self) -> Result<(), LinkError> {
        if self.live.is_some() || Instant::now() < self.next_attempt {
            return Ok(());
        }
        let t = &self.target;
        match handshake::connect(
            &t.host,
            self.port,
            SocketType::Sub,
            t.credentials.as_ref(),
            t.timeout,
        ) {
            Ok(est) => {
                self.backoff = RECONNECT_FIRST;
                self.out.clear();
                for p in &self.subscriptions {
                    encode_subscription(est.minor, true, p, &mut self.out);
                }
                self.live = Some(Live {
                    stream: est.stream,
                    minor: est.minor,
                    inbound: Inbound::new(),
                    last_rx: Instant::now(),
                    pinged: false,
                    drained: false,
                });
                self.write_out();
                Ok(())
            }
            Err(e) => {
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = next_backoff(self.backoff);
                match e {
                    ConnectError::AuthFailed => Err(LinkError::AuthFailed),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The next message within `timeout` (zero: only what is already there, one non-blocking
    /// read at most). Commands are handled on the way; a lost connection is re-made.
    pub(crate) fn recv(&mut self, timeout: Duration) -> Result<Option<Frames>, LinkError> {
        if let Some(f) = self.parked.pop_front() {
            return Ok(Some(f));
        }
        let r = self.receive(timeout);
        self.last_use = Instant::now();
        r
    }

    /// For the keeper thread: when nobody used the link for [`KEEP_IDLE`], reads what arrived
    /// without waiting, parks up to `hwm` messages, answers PINGs, sends our own PING on a
    /// quiet connection and reconnects a lost one.
    pub(crate) fn keep_alive(&mut self, hwm: usize) {
        if self.last_use.elapsed() < KEEP_IDLE {
            return;
        }
        while self.parked.len() < hwm.max(1) {
            match self.receive(Duration::ZERO) {
                Ok(Some(f)) => self.parked.push_back(f),
                Ok(None) | Err(_) => break,
            }
        }
    }

    fn receive(&mut self, timeout: Duration) -> Result<Option<Frames>, LinkError> {
        // The clock is read only once there is nothing to hand out (a system call on some VMs).
        let mut deadline = None;
        let mut skip_read = !timeout.is_zero() && self.live.as_ref().is_some_and(|l| l.drained);
        loop {
            let Some(live) = &mut self.live else {
                self.try_connect()?;
                if self.live.is_some() {
                    continue;
                }
                let now = Instant::now();
                let deadline = *deadline.get_or_insert(now + timeout);
                if now >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(
                    self.next_attempt
                        .min(deadline)
                        .saturating_duration_since(now),
                );
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
            let fd = live.stream.as_raw_fd();
            if !std::mem::take(&mut skip_read) {
                match live.inbound.fill(fd) {
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
            if sys::poll_in(fd, None, Some(wait)).is_err() {
                self.live = None;
            }
        }
    }

    fn ping(&mut self) {
        let mut buf = [0u8; 16];
        let ttl = u16::try_from(DEAD_AFTER.as_millis() / 100).unwrap_or(u16::MAX);
        if let Ok(n) = command::encode_ping(ttl, b"", &mut buf) {
            self.out.clear();
            self.out.extend_from_slice(&buf[..n]);
            self.write_out();
        }
    }

    fn pong(&mut self, context: &[u8]) {
        let mut buf = [0u8; 32];
        if let Ok(n) = command::encode_pong(context, &mut buf) {
            self.out.clear();
            self.out.extend_from_slice(&buf[..n]);
            self.write_out();
        }
    }
}
