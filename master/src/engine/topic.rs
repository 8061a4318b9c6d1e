//! One topic in the native engine: its two listeners, the publisher connections it reads and
//! the subscriber connections it forwards to.

use std::io::{self, Read as _};
use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::time::Instant;

use tracing::{debug, info, warn};
use zerosmq_core::message::{MAX_READY_PROBE_LEN, READY_PROBE_PREFIX};
use zerosmq_core::zmtp::command::{encode_ping, encode_pong};
use zerosmq_core::zmtp::encode_subscription;
use zerosmq_core::zmtp::{Command, FrameHeader, SocketType, GREETING_LEN};
use zerosmq_core::Topic;

use super::connection::{Conn, Slab};
use super::handshake::{push_encoded, Handshake, HandshakeError};
use super::outbox::Flushed;
use super::subscriptions::{has_prefix, Change};
use super::{token, Env, Kind, READ_LEN};
use crate::auth::Access;
use crate::broker::poller::{EPOLLIN, EPOLLOUT};
use crate::registry::TopicCounters;
use zerosmq_core::zmtp::stream::{next_unit, InboundError, Unit};

/// Reads from one connection per wake-up before the others get a turn (level-triggered epoll
/// brings it back if more is waiting): bounded work, so one busy topic cannot starve the rest.
const READS_PER_TURN: usize = 4;

/// Idle time before the kernel probes a silent connection (as `SocketTuning` sets on libzmq's).
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Connections accepted per wake-up of a listener.
const ACCEPTS_PER_TURN: usize = 64;

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
    Inbound(InboundError),
    Handshake(HandshakeError),
    Malformed,
    PeerError,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Inbound(e) => e.fmt(f),
            Close::Handshake(e) => e.fmt(f),
            Close::Malformed => f.write_str("malformed command"),
            Close::PeerError => f.write_str("peer sent ERROR"),
        }
    }
}

pub(crate) struct NativeTopic {
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
}

impl NativeTopic {
    pub(super) fn new(
        topic: Topic,
        slot: u32,
        (publish_listener, publish_port): (TcpListener, u16),
        (subscribe_listener, subscribe_port): (TcpListener, u16),
    ) -> Self {
        NativeTopic {
            topic,
            slot,
            publish_listener,
            subscribe_listener,
            publish_port,
            subscribe_port,
            publishers: Slab::default(),
            subscribers: Slab::default(),
            touched: Vec::new(),
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

    /// One epoll event for this topic.
    pub(super) fn on_event(
        &mut self,
        kind: Kind,
        idx: usize,
        events: u32,
        env: &mut Env<'_>,
        counters: &mut TopicCounters,
    ) {
        let side = match kind {
            Kind::PublishListener => return self.accept(Side::Publishers, env),
            Kind::SubscribeListener => return self.accept(Side::Subscribers, env),
            Kind::Publisher => Side::Publishers,
            Kind::Subscriber => Side::Subscribers,
        };
        if events & EPOLLOUT != 0 {
            self.flush(side, idx, env);
        }
        if events & !EPOLLOUT != 0 {
            self.read(side, idx, env, counters);
        }
        self.flush_touched(env);
    }

    fn accept(&mut self, side: Side, env: &mut Env<'_>) {
        for _ in 0..ACCEPTS_PER_TURN {
            let listener = match side {
                Side::Publishers => &self.publish_listener,
                Side::Subscribers => &self.subscribe_listener,
            };
            let (stream, peer) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!(topic = %self.topic, error = %e, "accepting a connection failed");
                    return;
                }
            };
            // Latency: every message is written as soon as a batch ends; Nagle would hold it.
            // Kernel keepalive as on the libzmq sockets, for peers that vanish without a FIN
            // (ZMTP 3.0 peers get no heartbeats).
            let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
            if let Err(e) = stream
                .set_nonblocking(true)
                .and_then(|()| stream.set_nodelay(true))
                .and_then(|()| socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive))
            {
                warn!(topic = %self.topic, %peer, error = %e, "cannot configure a connection");
                continue;
            }
            let fd = stream.as_raw_fd();
            let mut conn = Conn::new(
                stream,
                peer,
                Handshake::new(side.ours(), env.limits.mechanism),
                env.now,
            );
            conn.outbox.push_control(&env.limits.mechanism.greeting());
            let conns = self.conns(side);
            let idx = conns.insert(conn);
            if idx >= super::MAX_CONNECTIONS {
                conns.remove(idx);
                warn!(topic = %self.topic, %peer, "too many connections on one topic");
                continue;
            }
            if let Err(e) = env
                .poller
                .add_with(fd, token(self.slot, side.kind(), idx), EPOLLIN)
            {
                self.conns(side).remove(idx);
                warn!(topic = %self.topic, %peer, error = %e, "cannot watch a connection");
                continue;
            }
            debug!(topic = %self.topic, %peer, ?side, "connection accepted");
            self.flush(side, idx, env);
        }
    }

    /// Reads what the connection has (a few reads at most), handles every complete unit, and
    /// answers on it.
    fn read(&mut self, side: Side, idx: usize, env: &mut Env<'_>, counters: &mut TopicCounters) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns(side).get_mut(idx) else {
                return;
            };
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
                    let reason = if from_scratch {
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
                let mut partial = std::mem::take(&mut conn.partial);
                let outcome = self.consume(
                    side,
                    idx,
                    partial.data_mut(),
                    env.limits,
                    env.auth,
                    counters,
                    env.now,
                );
                if let (Ok((at, len, need)), Some(conn)) = (&outcome, self.conns(side).get_mut(idx))
                {
                    partial.keep(*at, *len);
                    conn.partial = partial;
                    conn.need = *need;
                }
                outcome
            };
            if let Err(why) = outcome {
                // Best effort: an ERROR the handshake queued goes out before the close.
                if let Some(conn) = self.conns(side).get_mut(idx) {
                    let _ = conn.outbox.flush(&mut conn.stream);
                }
                return self.close(side, idx, &why, false);
            }
            if self
                .conns(side)
                .get_mut(idx)
                .is_some_and(|c| !c.outbox.is_empty())
            {
                self.flush(side, idx, env);
            }
            if n < asked {
                return; // drained
            }
        }
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
                    at += GREETING_LEN;
                }
                Unit::Command { end, body } => {
                    let body = &buf[at + body.start..at + body.end];
                    self.on_command(side, idx, body, auth, now)?;
                    at += end;
                }
                Unit::CommandInMessage { frame, body } => {
                    if !conn.handshake.is_open() {
                        return Err(Close::Handshake(HandshakeError::Unexpected));
                    }
                    let body = &buf[at + body.start..at + body.end];
                    self.on_command(side, idx, body, auth, now)?;
                    buf.copy_within(at + frame.end..len, at + frame.start);
                    len -= frame.len();
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
                            self.fan_out(wire, first, limits.hwm, counters);
                            counters.messages += 1;
                            counters.bytes += body_len;
                            counters.last_activity = Some(now);
                        }
                        Side::Publishers => {}
                        Side::Subscribers => {
                            if let Some(change) =
                                (frames == 1).then(|| Change::from_message(first)).flatten()
                            {
                                self.on_subscription(idx, change);
                            }
                        }
                    }
                    at += wire.end;
                }
            }
        }
    }

    /// A command: the handshake's while it runs, then heartbeats and subscriptions.
    fn on_command(
        &mut self,
        side: Side,
        idx: usize,
        body: &[u8],
        auth: Option<&super::Auth>,
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
        if !conn.handshake.is_open() {
            let allow = |user: &[u8], password: &[u8]| {
                auth.is_some_and(|a| a.allows(user, password, topic, side.access()))
            };
            let opened = conn
                .handshake
                .on_command(body, allow, conn.outbox.control_buf())
                .map_err(Close::Handshake)?;
            if opened {
                conn.last_recv = now;
                conn.last_ping = now;
                info!(%topic, peer = %conn.peer, ?side, zmtp = %format_args!("3.{}", conn.handshake.minor()), user = conn.handshake.user().unwrap_or(""), "peer connected");
                if side == Side::Publishers {
                    // As libzmq's SUB: subscribe to the topic's bytes, which is also what a
                    // waiting publisher sees arrive.
                    let minor = conn.handshake.minor();
                    push_encoded(conn.outbox.control_buf(), |b| {
                        encode_subscription(minor, true, topic.as_bytes(), b)
                    });
                }
            }
            return Ok(());
        }
        let command = Command::parse(body).map_err(|_| Close::Malformed)?;
        match command {
            Command::Ping { context, .. } => {
                push_encoded(conn.outbox.control_buf(), |b| encode_pong(context, b));
            }
            Command::Error { .. } => return Err(Close::PeerError),
            _ => {
                if side == Side::Subscribers {
                    if let Some(change) = Change::from_command(&command) {
                        self.on_subscription(idx, change);
                    }
                }
            }
        }
        Ok(())
    }

    /// A subscriber's subscription change; a ready probe is answered to it alone with a message
    /// of the probe's bytes (see `zerosmq_core::message::READY_PROBE_PREFIX`).
    fn on_subscription(&mut self, idx: usize, change: Change<'_>) {
        let Some(conn) = self.subscribers.get_mut(idx) else {
            return;
        };
        conn.subs.apply(change);
        if let Change::Subscribe(prefix) = change {
            if prefix.starts_with(READY_PROBE_PREFIX) && prefix.len() <= MAX_READY_PROBE_LEN {
                debug!(topic = %self.topic, peer = %conn.peer, "answering ready probe");
                let header = FrameHeader::message(prefix.len(), false).to_bytes();
                conn.outbox.push_control(&header.0[..header.1]);
                conn.outbox.push_message(prefix);
            }
        }
    }

    /// Queues one message for every subscriber whose subscriptions match; one that is at the
    /// high-water mark misses it (drop policy) and its run of misses counts one overflow.
    fn fan_out(&mut self, wire: &[u8], first: &[u8], hwm: usize, counters: &mut TopicCounters) {
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
            sub.outbox.push_message(wire);
            if !sub.touched {
                sub.touched = true;
                self.touched.push(i);
            }
        }
    }

    /// Writes out every subscriber given messages since the last flush: one write per
    /// subscriber per batch, not per message.
    fn flush_touched(&mut self, env: &mut Env<'_>) {
        while let Some(i) = self.touched.pop() {
            self.flush(Side::Subscribers, i, env);
        }
    }

    /// Writes a connection's outbox; watches for writability while it cannot be written out.
    fn flush(&mut self, side: Side, idx: usize, env: &mut Env<'_>) {
        let slot = self.slot;
        let Some(conn) = self.conns(side).get_mut(idx) else {
            return;
        };
        conn.touched = false;
        let result = conn.outbox.flush(&mut conn.stream);
        let want_write = match result {
            Ok(Flushed::Empty) => false,
            Ok(Flushed::Blocked) => true,
            Err(e) => return self.close(side, idx, &e, true),
        };
        if want_write != conn.write_wait {
            let events = if want_write {
                EPOLLIN | EPOLLOUT
            } else {
                EPOLLIN
            };
            let fd = conn.stream.as_raw_fd();
            match env.poller.modify(fd, token(slot, side.kind(), idx), events) {
                Ok(()) => conn.write_wait = want_write,
                Err(e) => self.close(side, idx, &e, false),
            }
        }
    }

    /// Handshake deadline, PINGs and silent peers; called about once a second.
    pub(super) fn sweep(&mut self, env: &mut Env<'_>) {
        let heartbeat = env.limits.heartbeat;
        for side in [Side::Publishers, Side::Subscribers] {
            for idx in 0..self.conns(side).bound() {
                let Some(conn) = self.conns(side).get_mut(idx) else {
                    continue;
                };
                if !conn.handshake.is_open() {
                    if env.now.duration_since(conn.accepted) >= super::HANDSHAKE {
                        self.close(side, idx, "no handshake within 5 s", false);
                    }
                    continue;
                }
                // ZMTP 3.0 has no heartbeats.
                if conn.handshake.minor() < 1 {
                    continue;
                }
                if env.now.duration_since(conn.last_recv) >= heartbeat * 3 {
                    self.close(side, idx, "silent for three heartbeat intervals", false);
                    continue;
                }
                if env.now.duration_since(conn.last_ping) >= heartbeat {
                    conn.last_ping = env.now;
                    push_encoded(conn.outbox.control_buf(), |b| encode_ping(0, b"", b));
                    self.flush(side, idx, env);
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
        if quiet {
            info!(topic = %self.topic, peer = %conn.peer, ?side, reason = %why, "peer disconnected");
        } else {
            warn!(topic = %self.topic, peer = %conn.peer, ?side, reason = %why, "peer dropped");
        }
    }
}
