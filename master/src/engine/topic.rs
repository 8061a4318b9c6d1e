//! One topic of the data plane: its two listeners, the publisher connections it reads and
//! the subscriber connections it forwards to.

use std::io::{self, Read as _};
use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info, warn};
use zerosmq_core::message::{MAX_READY_PROBE_LEN, READY_PROBE_PREFIX};
use zerosmq_core::zmtp::command::encode_pong;
use zerosmq_core::zmtp::{Command, FrameHeader, SocketType, GREETING_LEN};
use zerosmq_core::Topic;

use super::connection::{Conn, Slab};
use super::handshake::{push_encoded, Handshake, HandshakeError, Opened};
use super::outbox::Flushed;
use super::subscriptions::{has_prefix, Change};
use super::{token, Env, Kind, Readiness, READ_LEN};
use crate::auth::Access;
use crate::metrics::Gauge;
use crate::registry::TopicCounters;
use zerosmq_core::zmtp::stream::{next_unit, StreamError, Unit};

/// Reads from one connection per turn before the others get theirs (one with more waiting goes
/// on the ready list): bounded work, so one busy topic cannot starve the rest.
const READS_PER_TURN: usize = 4;

/// Messages from this size on are queued by reference, not copied, for each subscriber.
const SHARE_MIN: usize = 64 << 10;

/// A connection quiet this long gives back the memory a large message grew its input buffer to.
const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Connections accepted per turn of a listener (one with more waiting goes on the ready list).
const ACCEPTS_PER_TURN: usize = 64;

/// Commands and subscription changes handled from one connection per wake-up; the rest of its
/// input waits (not read further) until the next turn of the loop, so that a peer sending tiny
/// frames cannot hold the loop (messages are bounded by the bytes of a turn's reads instead).
const CHANGES_PER_TURN: usize = 1024;

/// The peers on one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Publishers connect here; the master is their SUB.
    Publishers,
    /// Subscribers connect here; the master is their XPUB.
    Subscribers,
}

impl Side {
    fn ours(self) -> SocketType {
        match self {
            Side::Publishers => SocketType::Sub,
            Side::Subscribers => SocketType::XPub,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Side::Publishers => Kind::Publisher,
            Side::Subscribers => Kind::Subscriber,
        }
    }

    fn access(self) -> Access {
        match self {
            Side::Publishers => Access::Write,
            Side::Subscribers => Access::Read,
        }
    }
}

/// Why a connection is closed.
enum Close {
    Inbound(StreamError),
    Handshake(HandshakeError),
    Malformed,
    PeerError,
    TooManySubscriptions(usize),
    UnreadPongs(usize),
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Inbound(e) => e.fmt(f),
            Close::Handshake(e) => e.fmt(f),
            Close::Malformed => f.write_str("malformed command"),
            Close::PeerError => f.write_str("peer sent ERROR"),
            Close::TooManySubscriptions(n) => {
                write!(f, "more than {n} subscriptions (--max-subscriptions)")
            }
            Close::UnreadPongs(n) => write!(f, "{n} PONGs queued unread (peer does not read)"),
        }
    }
}

pub(crate) struct TopicPlane {
    topic: Topic,
    pub(super) slot: u32,
    publish_listener: TcpListener,
    subscribe_listener: TcpListener,
    pub(crate) publish_port: u16,
    pub(crate) subscribe_port: u16,
    publishers: Slab<Conn>,
    subscribers: Slab<Conn>,
    /// Subscribers given messages since their last flush.
    touched: Vec<usize>,
    /// Commands and subscription changes the current connection may still cause this turn.
    budget: usize,
    /// Connections open over all topics (the engine's count, shared).
    open: Arc<Gauge>,
    /// Connections refused because a connection or descriptor limit was reached.
    pub(crate) refused: u64,
    /// Listeners whose accepting failed for want of descriptors (publishers', subscribers');
    /// tried again at the next sweep.
    paused: [bool; 2],
    /// Listeners on the engine's ready list (publishers', subscribers').
    accept_queued: [bool; 2],
}

impl TopicPlane {
    pub(super) fn new(
        topic: Topic,
        slot: u32,
        (publish_listener, publish_port): (TcpListener, u16),
        (subscribe_listener, subscribe_port): (TcpListener, u16),
        open: Arc<Gauge>,
    ) -> Self {
        TopicPlane {
            topic,
            slot,
            publish_listener,
            subscribe_listener,
            publish_port,
            subscribe_port,
            publishers: Slab::default(),
            subscribers: Slab::default(),
            touched: Vec::new(),
            budget: CHANGES_PER_TURN,
            open,
            refused: 0,
            paused: [false; 2],
            accept_queued: [false; 2],
        }
    }

    pub(super) fn listener_fds(&self) -> (i32, i32) {
        (
            self.publish_listener.as_raw_fd(),
            self.subscribe_listener.as_raw_fd(),
        )
    }

    pub(crate) fn connections(&self) -> usize {
        self.publishers.len() + self.subscribers.len()
    }

    fn conns(&mut self, side: Side) -> &mut Slab<Conn> {
        match side {
            Side::Publishers => &mut self.publishers,
            Side::Subscribers => &mut self.subscribers,
        }
    }

    /// One readiness event for this topic. A connection or listener on the ready list is not
    /// read here: it gets its turn from the list.
    pub(super) fn on_event(
        &mut self,
        kind: Kind,
        idx: usize,
        event: Readiness,
        env: &mut Env<'_>,
        counters: &mut TopicCounters,
    ) {
        let side = match kind {
            Kind::PublishListener | Kind::SubscribeListener => {
                let side = listener_side(kind);
                if !self.accept_queued[side as usize] {
                    self.accept(side, env);
                }
                return;
            }
            Kind::Publisher => Side::Publishers,
            Kind::Subscriber => Side::Subscribers,
        };
        let Some(conn) = self.conns(side).get_mut(idx) else {
            return;
        };
        let (write, read) = (event.write && conn.write_wait, event.read && !conn.backlog);
        if write {
            self.flush(side, idx);
        }
        if read {
            self.budget = CHANGES_PER_TURN;
            self.read(side, idx, event.closed, env, counters);
        }
        self.flush_touched();
    }

    /// Another turn for a connection that had input left over after its last one.
    pub(super) fn resume(
        &mut self,
        kind: Kind,
        idx: usize,
        env: &mut Env<'_>,
        counters: &mut TopicCounters,
    ) {
        let side = match kind {
            Kind::Publisher => Side::Publishers,
            Kind::Subscriber => Side::Subscribers,
            Kind::PublishListener | Kind::SubscribeListener => {
                let side = listener_side(kind);
                self.accept_queued[side as usize] = false;
                return self.accept(side, env);
            }
        };
        self.budget = CHANGES_PER_TURN;
        // Events that came while it waited were left to this turn, an end of input among them.
        self.read(side, idx, true, env, counters);
        self.flush_touched();
    }

    fn listener(&self, side: Side) -> &TcpListener {
        match side {
            Side::Publishers => &self.publish_listener,
            Side::Subscribers => &self.subscribe_listener,
        }
    }

    /// Accepts a turn's worth of connections; a listener with more waiting goes on the ready
    /// list.
    fn accept(&mut self, side: Side, env: &mut Env<'_>) {
        for _ in 0..ACCEPTS_PER_TURN {
            let (stream, peer) = match self.listener(side).accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors (EMFILE, ENFILE) or kernel memory: the connections
                    // waiting are tried again at the next sweep (edge-triggered, the listener
                    // does not report them again by itself).
                    self.paused[side as usize] = true;
                    if let Some(more) = env.warnings.accept_failed.hit(env.now) {
                        warn!(topic = %self.topic, error = %e, failures = more + 1, "accepting connections paused until the next sweep: accepting failed");
                    }
                    return;
                }
            };
            let (open, on_topic) = (self.open.get(), self.connections());
            if open >= env.connection_limit || on_topic >= env.limits.max_topic_connections {
                // As mosquitto's max_connections: accepted and closed at once, so the peer
                // learns it (and a libzmq peer retries at its reconnect interval).
                drop(stream);
                self.refused += 1;
                if let Some(more) = env.warnings.refused.hit(env.now) {
                    warn!(topic = %self.topic, %peer, open, on_topic, limit = env.connection_limit, per_topic = env.limits.max_topic_connections, refused = more + 1, "connection refused: connection limit reached (--max-connections, --max-topic-connections or descriptors)");
                }
                continue;
            }
            // Latency: every message is written as soon as a batch ends; Nagle would hold it.
            // Kernel keepalive as on the control socket, for peers that vanish without a FIN
            // (ZMTP 3.0 peers get no heartbeats).
            let keepalive = socket2::TcpKeepalive::new().with_time(super::KEEPALIVE_IDLE);
            if let Err(e) = stream
                .set_nonblocking(true)
                .and_then(|()| stream.set_nodelay(true))
                .and_then(|()| socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive))
            {
                warn!(topic = %self.topic, %peer, error = %e, "cannot configure a connection");
                continue;
            }
            let fd = stream.as_raw_fd();
            let mut conn = Conn::new(stream, peer, Handshake::new(side.ours(), env.auth), env.now);
            conn.handshake.transmit(conn.outbox.control_buf());
            let conns = self.conns(side);
            let idx = conns.insert(conn);
            if idx >= super::MAX_CONNECTIONS {
                conns.remove(idx);
                warn!(topic = %self.topic, %peer, "too many connections on one topic");
                continue;
            }
            // Registered once for both directions, never changed: a write-blocked outbox is
            // flushed on the next writable edge (`Conn::write_wait`).
            if let Err(e) = env.registry.register(
                &mut mio::unix::SourceFd(&fd),
                token(self.slot, side.kind(), idx),
                mio::Interest::READABLE | mio::Interest::WRITABLE,
            ) {
                self.conns(side).remove(idx);
                warn!(topic = %self.topic, %peer, error = %e, "cannot watch a connection");
                continue;
            }
            self.open.set(self.open.get() + 1);
            debug!(topic = %self.topic, %peer, ?side, "connection accepted");
            self.flush(side, idx);
        }
        if !std::mem::replace(&mut self.accept_queued[side as usize], true) {
            env.backlog.push(token(self.slot, listener_kind(side), 0));
        }
    }

    /// Reads what the connection has (a few reads at most), handles every complete unit, and
    /// answers on it. One that may have more waiting at the end of its turn goes on the ready
    /// list: edge-triggered readiness does not report bytes that were already there. A short
    /// read ends the turn, unless `to_end` (an end of input may be waiting behind the bytes).
    fn read(
        &mut self,
        side: Side,
        idx: usize,
        to_end: bool,
        env: &mut Env<'_>,
        counters: &mut TopicCounters,
    ) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns(side).get_mut(idx) else {
                return;
            };
            if conn.backlog {
                // On the ready list: input left from an earlier turn comes before any new read.
                let outcome = self.consume_partial(side, idx, env, counters);
                if !self.after_consume(side, idx, outcome, env) {
                    return;
                }
                if let Some(conn) = self.conns(side).get_mut(idx) {
                    conn.backlog = false;
                }
                continue;
            }
            // Nothing pending: read into the shared scratch buffer and keep only a leftover.
            // A unit under way: read into the connection's own buffer, sized for that unit.
            let from_scratch = conn.partial.is_empty();
            let asked;
            let result = if from_scratch {
                asked = env.scratch.len();
                conn.stream.read(env.scratch)
            } else {
                // At least what the unit lacks (up to a whole read), and some more, so that the
                // messages behind it come in the same system call.
                let want = conn.need.saturating_sub(conn.partial.data_mut().len());
                let spare = conn.partial.spare(want.clamp(READ_LEN / 4, READ_LEN));
                asked = spare.len();
                conn.stream.read(spare)
            };
            let n = match result {
                Ok(0) => {
                    // A libzmq peer of another mechanism may close before its greeting is
                    // out, or with part of it sent.
                    let reason = if conn.handshake.wants_greeting() {
                        conn.handshake.closed_in_greeting()
                    } else if from_scratch {
                        "peer closed the connection"
                    } else {
                        "peer closed the connection mid-frame"
                    };
                    return self.close(side, idx, reason, from_scratch);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(side, idx, &e, true),
            };
            conn.last_recv = env.now;
            let outcome = if from_scratch {
                let buf = &mut env.scratch[..n];
                let outcome = self.consume(side, idx, buf, env.limits, env.auth, counters, env.now);
                if let (Ok((at, len, need)), Some(conn)) = (&outcome, self.conns(side).get_mut(idx))
                {
                    conn.partial.set(&env.scratch[*at..*len]);
                    conn.need = *need;
                }
                outcome
            } else {
                conn.partial.filled(n);
                self.consume_partial(side, idx, env, counters)
            };
            if !self.after_consume(side, idx, outcome, env) {
                return;
            }
            if n < asked && !to_end {
                return; // drained: the next bytes come with an edge
            }
        }
        // A full turn of full reads: more may be waiting.
        if let Some(conn) = self.conns(side).get_mut(idx) {
            if !std::mem::replace(&mut conn.backlog, true) {
                env.backlog.push(token(self.slot, side.kind(), idx));
            }
        }
    }

    /// A large message at the front of a publisher's own buffer goes to every subscriber by
    /// reference: each queue shares the bytes as read, no copy is made per subscriber (NULL and
    /// PLAIN; a CURVE subscriber gets its own box).
    fn forward_large(
        &mut self,
        idx: usize,
        partial: &mut super::connection::Partial,
        env: &mut Env<'_>,
        counters: &mut TopicCounters,
    ) -> bool {
        let Some(conn) = self.publishers.get_mut(idx) else {
            return false;
        };
        if !conn.handshake.is_open() || conn.handshake.is_curve() {
            return false;
        }
        let limits = env.limits;
        let unit = next_unit(partial.data(), false, limits.max_frame, limits.max_message);
        let Ok(Unit::Message {
            wire,
            first,
            body_len,
            ..
        }) = unit
        else {
            return false;
        };
        if wire.start != 0 || wire.len() < SHARE_MIN {
            return false;
        }
        let bytes = partial.take_front(wire.end);
        let first = &bytes[first];
        // As a SUB: only what starts with the topic.
        if has_prefix(first, self.topic.as_bytes()) {
            self.fan_out(&bytes, Some(&bytes), first, limits.hwm, counters);
            counters.messages += 1;
            counters.bytes += body_len;
            counters.last_activity = Some(env.now);
        }
        true
    }

    /// Handles the units in the connection's own buffer and keeps what is left of them.
    fn consume_partial(
        &mut self,
        side: Side,
        idx: usize,
        env: &mut Env<'_>,
        counters: &mut TopicCounters,
    ) -> Result<(usize, usize, usize), Close> {
        let Some(conn) = self.conns(side).get_mut(idx) else {
            return Ok((0, 0, 0));
        };
        let mut partial = std::mem::take(&mut conn.partial);
        if side == Side::Publishers {
            while self.forward_large(idx, &mut partial, env, counters) {}
        }
        let outcome = self.consume(
            side,
            idx,
            partial.data_mut(),
            env.limits,
            env.auth,
            counters,
            env.now,
        );
        if let (Ok((at, len, need)), Some(conn)) = (&outcome, self.conns(side).get_mut(idx)) {
            partial.keep(*at, *len);
            conn.partial = partial;
            conn.need = *need;
        }
        outcome
    }

    /// Closes the connection on an error, answers on it, and parks it when it used up its turn
    /// with input left over. Returns whether it may read on.
    fn after_consume(
        &mut self,
        side: Side,
        idx: usize,
        outcome: Result<(usize, usize, usize), Close>,
        env: &mut Env<'_>,
    ) -> bool {
        if let Err(why) = outcome {
            // Best effort: an ERROR the handshake queued goes out before the close.
            if let Some(conn) = self.conns(side).get_mut(idx) {
                let _ = conn.outbox.flush(&mut conn.stream);
            }
            self.close(side, idx, &why, false);
            return false;
        }
        let Some(conn) = self.conns(side).get_mut(idx) else {
            return false;
        };
        if !conn.outbox.is_empty() {
            self.flush(side, idx);
        }
        if self.budget > 0 {
            return true;
        }
        // Not read again until its turn from the ready list (where a connection taken from it
        // goes back, flagged still; one flagged is never on it twice: events skip it).
        let Some(conn) = self.conns(side).get_mut(idx) else {
            return false;
        };
        conn.backlog = true;
        env.backlog.push(token(self.slot, side.kind(), idx));
        false
    }

    /// Handles every complete unit at the front of `buf`. Returns `(at, len, need)`: the
    /// unhandled bytes are `buf[at..len]` (commands inside a message are cut out, which may
    /// shorten the data), and `need` is how many bytes their unit needs in all.
    #[allow(clippy::too_many_arguments)]
    fn consume(
        &mut self,
        side: Side,
        idx: usize,
        buf: &mut [u8],
        limits: &super::Limits,
        auth: Option<&super::Auth>,
        counters: &mut TopicCounters,
        now: Instant,
    ) -> Result<(usize, usize, usize), Close> {
        let mut at = 0;
        let mut len = buf.len();
        loop {
            if self.budget == 0 {
                return Ok((at, len, 0));
            }
            let Some(conn) = self.conns(side).get_mut(idx) else {
                return Ok((at, at, 0));
            };
            let unit = next_unit(
                &buf[at..len],
                conn.handshake.wants_greeting(),
                limits.max_frame,
                limits.max_message,
            )
            .map_err(Close::Inbound)?;
            match unit {
                Unit::Incomplete { need } => return Ok((at, len, need)),
                Unit::Greeting => {
                    conn.handshake
                        .on_greeting(&buf[at..at + GREETING_LEN])
                        .map_err(Close::Handshake)?;
                    conn.handshake.transmit(conn.outbox.control_buf());
                    at += GREETING_LEN;
                }
                Unit::Command { end, body } => {
                    let session = !conn.handshake.is_open() || conn.handshake.is_curve();
                    self.budget -= 1;
                    if session {
                        let frame = &mut buf[at..at + end];
                        self.on_session_frame(side, idx, frame, limits, auth, counters, now)?;
                    } else {
                        let body = &buf[at + body.start..at + body.end];
                        self.on_command(side, idx, body, limits, now)?;
                    }
                    at += end;
                }
                Unit::CommandInMessage { frame, body } => {
                    if !conn.handshake.is_open() {
                        return Err(Close::Handshake(HandshakeError::Unexpected));
                    }
                    let curve = conn.handshake.is_curve();
                    self.budget -= 1;
                    if curve {
                        let frame = &mut buf[at + frame.start..at + frame.end];
                        self.on_session_frame(side, idx, frame, limits, auth, counters, now)?;
                    } else {
                        let body = &buf[at + body.start..at + body.end];
                        self.on_command(side, idx, body, limits, now)?;
                    }
                    buf.copy_within(at + frame.end..len, at + frame.start);
                    len -= frame.len();
                }
                Unit::Message { wire, .. } if conn.handshake.is_curve() => {
                    if !conn.handshake.is_open() {
                        return Err(Close::Handshake(HandshakeError::Unexpected));
                    }
                    // Every frame is a box of its own (libzmq sends each part in one).
                    let (mut from, end) = (at + wire.start, at + wire.end);
                    while from < end {
                        let Ok((header, header_len)) = FrameHeader::parse(&buf[from..end]) else {
                            break;
                        };
                        let to = from + header_len + header.len as usize;
                        self.budget = self.budget.saturating_sub(1);
                        let frame = &mut buf[from..to];
                        self.on_session_frame(side, idx, frame, limits, auth, counters, now)?;
                        from = to;
                    }
                    at += wire.end;
                }
                Unit::Message {
                    wire,
                    first,
                    frames,
                    body_len,
                } => {
                    if !conn.handshake.is_open() {
                        return Err(Close::Handshake(HandshakeError::Unexpected));
                    }
                    let first = &buf[at + first.start..at + first.end];
                    match side {
                        // As a SUB: only what starts with the topic.
                        Side::Publishers if has_prefix(first, self.topic.as_bytes()) => {
                            let wire = &buf[at + wire.start..at + wire.end];
                            self.fan_out(wire, None, first, limits.hwm, counters);
                            counters.messages += 1;
                            counters.bytes += body_len;
                            counters.last_activity = Some(now);
                        }
                        Side::Publishers => {}
                        Side::Subscribers => {
                            self.budget -= 1;
                            if let Some(change) =
                                (frames == 1).then(|| Change::from_message(first)).flatten()
                            {
                                self.on_subscription(idx, change, limits, now)?;
                            }
                        }
                    }
                    at += wire.end;
                }
            }
        }
    }

    /// A whole frame for the connection's session: a handshake frame, or any frame with CURVE
    /// (a box: a message part, a subscription, a PING).
    #[allow(clippy::too_many_arguments)]
    fn on_session_frame(
        &mut self,
        side: Side,
        idx: usize,
        frame: &mut [u8],
        limits: &super::Limits,
        auth: Option<&super::Auth>,
        counters: &mut TopicCounters,
        now: Instant,
    ) -> Result<(), Close> {
        let topic = &self.topic;
        let conns = match side {
            Side::Publishers => &mut self.publishers,
            Side::Subscribers => &mut self.subscribers,
        };
        let Some(conn) = conns.get_mut(idx) else {
            return Ok(());
        };
        let was_open = conn.handshake.is_open();
        let result = conn.handshake.on_frame(
            frame,
            auth,
            topic.as_str(),
            side.access(),
            limits.max_message,
        );
        // Handshake commands, a refusal (sent before the close), a boxed PONG.
        if conn.handshake.transmit(conn.outbox.control_buf()) && was_open {
            if conn.outbox.replies() >= limits.hwm {
                return Err(Close::UnreadPongs(conn.outbox.replies()));
            }
            conn.outbox.mark_reply();
        }
        let (opened, ready) = result.map_err(Close::Handshake)?;
        if ready {
            conn.last_recv = now;
            conn.last_ping = now;
            info!(%topic, peer = %conn.peer, ?side, zmtp = %format_args!("3.{}", conn.handshake.minor()), user = conn.handshake.user().unwrap_or(""), curve = conn.handshake.is_curve(), "peer connected");
            if side == Side::Publishers {
                // As libzmq's SUB: subscribe to the topic's bytes, which is also what a
                // waiting publisher sees arrive.
                conn.handshake
                    .push_subscribe(topic.as_bytes(), conn.outbox.control_buf());
            }
            return Ok(());
        }
        match (side, opened) {
            (Side::Publishers, Opened::Message) => {
                let message = conn.handshake.take_message();
                let forwarded = self.forward(&message, limits, counters, now);
                if let Some(conn) = self.publishers.get_mut(idx) {
                    conn.handshake.recycle(message);
                }
                forwarded
            }
            (
                Side::Subscribers,
                Opened::Subscription {
                    subscribe,
                    start,
                    len,
                },
            ) => {
                let prefix = frame.get(start..start + len).unwrap_or_default();
                let change = if subscribe {
                    Change::Subscribe(prefix)
                } else {
                    Change::Cancel(prefix)
                };
                self.on_subscription(idx, change, limits, now)
            }
            _ => Ok(()),
        }
    }

    /// A whole message from a publisher, as plain frames (CURVE, after opening its boxes).
    fn forward(
        &mut self,
        wire: &[u8],
        limits: &super::Limits,
        counters: &mut TopicCounters,
        now: Instant,
    ) -> Result<(), Close> {
        let mut body_len = 0u64;
        let mut first = None;
        let mut rest = wire;
        while let Ok((header, header_len)) = FrameHeader::parse(rest) {
            let len = header.len as usize;
            let body = rest.get(header_len..header_len + len).unwrap_or_default();
            first.get_or_insert(body);
            body_len += header.len;
            rest = &rest[(header_len + len).min(rest.len())..];
        }
        let first = first.unwrap_or_default();
        // As a SUB: only what starts with the topic.
        if has_prefix(first, self.topic.as_bytes()) {
            self.fan_out(wire, None, first, limits.hwm, counters);
            counters.messages += 1;
            counters.bytes += body_len;
            counters.last_activity = Some(now);
        }
        Ok(())
    }

    /// A command of an open NULL or PLAIN connection: heartbeats and subscriptions.
    fn on_command(
        &mut self,
        side: Side,
        idx: usize,
        body: &[u8],
        limits: &super::Limits,
        now: Instant,
    ) -> Result<(), Close> {
        let conns = match side {
            Side::Publishers => &mut self.publishers,
            Side::Subscribers => &mut self.subscribers,
        };
        let Some(conn) = conns.get_mut(idx) else {
            return Ok(());
        };
        let command = Command::parse(body).map_err(|_| Close::Malformed)?;
        match command {
            Command::Ping { context, .. } => {
                // A PONG waits in the queue like a message; a peer that lets `--hwm` of them
                // pile up sends PINGs without reading, and is dropped.
                if conn.outbox.replies() >= limits.hwm {
                    return Err(Close::UnreadPongs(conn.outbox.replies()));
                }
                push_encoded(conn.outbox.control_buf(), |b| encode_pong(context, b));
                conn.outbox.mark_reply();
            }
            Command::Error { .. } => return Err(Close::PeerError),
            _ => {
                if side == Side::Subscribers {
                    if let Some(change) = Change::from_command(&command) {
                        self.on_subscription(idx, change, limits, now)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A subscriber's subscription change; a ready probe is answered to it alone with a message
    /// of the probe's bytes (see `zerosmq_core::message::READY_PROBE_PREFIX`).
    /// A probe answer is a message like any other: past `--hwm` queued ones it is missed.
    fn on_subscription(
        &mut self,
        idx: usize,
        change: Change<'_>,
        limits: &super::Limits,
        now: Instant,
    ) -> Result<(), Close> {
        let Some(conn) = self.subscribers.get_mut(idx) else {
            return Ok(());
        };
        let cap = limits.max_subscriptions;
        conn.subs
            .apply(change, cap)
            .map_err(|_| Close::TooManySubscriptions(cap))?;
        if conn.subs.len() == 0 {
            conn.unsubscribed_since = now;
        }
        if let Change::Subscribe(prefix) = change {
            if prefix.starts_with(READY_PROBE_PREFIX) && prefix.len() <= MAX_READY_PROBE_LEN {
                if conn.outbox.messages() >= limits.hwm {
                    debug!(topic = %self.topic, peer = %conn.peer, "ready probe missed: subscriber at the high-water mark");
                    return Ok(());
                }
                debug!(topic = %self.topic, peer = %conn.peer, "answering ready probe");
                let header = FrameHeader::message(prefix.len(), false).to_bytes();
                let mut wire = Vec::with_capacity(header.1 + prefix.len());
                wire.extend_from_slice(&header.0[..header.1]);
                wire.extend_from_slice(prefix);
                conn.handshake.push_message(&wire, &mut conn.outbox);
            }
        }
        Ok(())
    }

    /// Queues one message for every subscriber whose subscriptions match; one that is at the
    /// high-water mark misses it (drop policy) and its run of misses counts one overflow.
    /// `shared`: the same bytes as `wire`, to queue by reference.
    fn fan_out(
        &mut self,
        wire: &[u8],
        shared: Option<&Bytes>,
        first: &[u8],
        hwm: usize,
        counters: &mut TopicCounters,
    ) {
        for (i, sub) in self.subscribers.iter_mut() {
            if !sub.handshake.is_open() || !sub.subs.matches(first) {
                continue;
            }
            if sub.outbox.messages() >= hwm {
                if !sub.dropping {
                    sub.dropping = true;
                    counters.overflows += 1;
                }
                sub.missed += 1;
                continue;
            }
            if sub.dropping {
                sub.dropping = false;
                debug!(topic = %self.topic, peer = %sub.peer, missed = sub.missed, "slow subscriber caught up");
                sub.missed = 0;
            }
            match shared {
                Some(bytes) if !sub.handshake.is_curve() => sub.outbox.push_shared(bytes.clone()),
                _ => sub.handshake.push_message(wire, &mut sub.outbox),
            }
            if !sub.touched {
                sub.touched = true;
                self.touched.push(i);
            }
        }
    }

    /// Writes out every subscriber given messages since the last flush: one write per
    /// subscriber per batch, not per message.
    fn flush_touched(&mut self) {
        while let Some(i) = self.touched.pop() {
            self.flush(Side::Subscribers, i);
        }
    }

    /// Writes a connection's outbox; one that cannot be written out waits for a writable edge.
    fn flush(&mut self, side: Side, idx: usize) {
        let Some(conn) = self.conns(side).get_mut(idx) else {
            return;
        };
        conn.touched = false;
        conn.write_wait = match conn.outbox.flush(&mut conn.stream) {
            Ok(Flushed::Empty) => false,
            Ok(Flushed::Blocked) => true,
            Err(e) => return self.close(side, idx, &e, true),
        };
    }

    /// Handshake deadline, PINGs and silent peers; called about once a second.
    pub(super) fn sweep(&mut self, env: &mut Env<'_>) {
        let heartbeat = env.limits.heartbeat;
        let idle = env.limits.idle;
        for side in [Side::Publishers, Side::Subscribers] {
            if std::mem::take(&mut self.paused[side as usize]) {
                self.accept(side, env);
            }
            for idx in 0..self.conns(side).bound() {
                let Some(conn) = self.conns(side).get_mut(idx) else {
                    continue;
                };
                if env.now.duration_since(conn.last_recv) >= RELEASE_AFTER {
                    conn.partial.release();
                }
                if !conn.handshake.is_open() {
                    if env.now.duration_since(conn.accepted) >= super::HANDSHAKE {
                        self.close(side, idx, "no handshake within 5 s", false);
                    }
                    continue;
                }
                // A subscriber connection without a subscription receives nothing: it only holds
                // a descriptor. One with a subscription may stay silent (that is what
                // subscribers do); kernel keepalive and failed writes find it dead.
                if side == Side::Subscribers
                    && conn.subs.len() == 0
                    && env.now.duration_since(conn.unsubscribed_since) >= idle
                {
                    self.close(side, idx, "no subscription for --idle-timeout", false);
                    continue;
                }
                // ZMTP 3.0 has no heartbeats: a publisher that stays silent cannot be told
                // from a dead or hostile one, so it goes (a libzmq peer reconnects by itself).
                if conn.handshake.minor() < 1 {
                    if side == Side::Publishers && env.now.duration_since(conn.last_recv) >= idle {
                        self.close(side, idx, "ZMTP 3.0 peer silent for --idle-timeout", false);
                    }
                    continue;
                }
                if env.now.duration_since(conn.last_recv) >= heartbeat * 3 {
                    self.close(side, idx, "silent for three heartbeat intervals", false);
                    continue;
                }
                if env.now.duration_since(conn.last_ping) >= heartbeat {
                    conn.last_ping = env.now;
                    conn.handshake.push_ping(conn.outbox.control_buf());
                    self.flush(side, idx);
                }
            }
        }
    }

    /// Drops a connection (its descriptor closes and leaves epoll). `quiet`: an ordinary end,
    /// logged at debug level; anything else is a warning.
    fn close(&mut self, side: Side, idx: usize, why: impl std::fmt::Display, quiet: bool) {
        let Some(conn) = self.conns(side).remove(idx) else {
            return;
        };
        self.open.set(self.open.get().saturating_sub(1));
        if quiet {
            info!(topic = %self.topic, peer = %conn.peer, ?side, reason = %why, "peer disconnected");
        } else {
            warn!(topic = %self.topic, peer = %conn.peer, ?side, reason = %why, "peer dropped");
        }
    }
}

fn listener_side(kind: Kind) -> Side {
    match kind {
        Kind::PublishListener | Kind::Publisher => Side::Publishers,
        Kind::SubscribeListener | Kind::Subscriber => Side::Subscribers,
    }
}

fn listener_kind(side: Side) -> Kind {
    match side {
        Side::Publishers => Kind::PublishListener,
        Side::Subscribers => Kind::SubscribeListener,
    }
}

impl Drop for TopicPlane {
    fn drop(&mut self) {
        self.open
            .set(self.open.get().saturating_sub(self.connections()));
    }
}
