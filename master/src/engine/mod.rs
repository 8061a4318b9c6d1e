//! The data plane: the master's own thread accepts every topic's TCP connections and speaks
//! ZMTP itself, so a message crosses one thread (read, fan out, write) instead of libzmq's I/O
//! thread, the broker and libzmq again.
//!
//! - `zerosmq_core::zmtp::stream` (in core, fuzzed): splits a read into greeting, commands and
//!   whole messages, in place.
//! - `handshake.rs`: a connection's session on core's `zmtp::Connection` (NULL, PLAIN and
//!   CURVE, server side) and who it admits (passwords, CURVE keys, the ACL).
//! - `connection.rs`: one connection's state; `outbox.rs`: its outbound queue;
//!   `subscriptions.rs`: a subscriber's prefixes.
//! - `topic.rs`: a topic's listeners and connections, forwarding, probes, heartbeats.
//!
//! Readiness comes from `mio` (epoll, edge-triggered; the control port's descriptors sit in the
//! same poll). Every descriptor is registered once, for reading and writing, and never
//! re-registered. A connection gets a bounded turn (a few reads of 64 KiB, a budget of commands)
//! per wake-up; one that still has bytes pending after its turn goes on the ready list and gets
//! its next turn after the others had theirs (events for it meanwhile are left to that turn), so
//! one busy topic cannot starve the rest and no pending byte waits for an edge that will not
//! come. A listener that accepted its turn's worth does the same.

mod connection;
mod handshake;
mod outbox;
mod spin;
mod subscriptions;
mod topic;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;
use zerosmq_core::Topic;

pub(crate) use topic::TopicPlane;

use crate::broker::TopicState;
use crate::metrics::Gauge;
use crate::ports::PortPlan;
use crate::{MasterConfig, MasterError};
pub(crate) use handshake::{Auth, Handshake, HandshakeError, Opened};
use mio::unix::SourceFd;

/// Bytes read from a connection at once.
pub(super) const READ_LEN: usize = 64 << 10;

/// A peer must finish the handshake within this time (the control socket's too).
pub(crate) const HANDSHAKE: Duration = Duration::from_secs(5);

/// Idle time before the kernel probes a silent connection, for peers that vanish without a FIN
/// (the control socket's too).
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// A token (a `mio::Token`, pointer-sized) holds a topic's slot, a `Kind` and a connection's
/// index: 32, 2 and 30 bits on 64-bit targets, 14, 2 and 16 on 32-bit ones.
const IDX_BITS: u32 = if usize::BITS >= 64 { 30 } else { 16 };
const SLOT_SHIFT: u32 = IDX_BITS + 2;

/// Connection handles must fit the token's index bits.
const MAX_CONNECTIONS: usize = 1 << IDX_BITS;

/// Topic slots must fit the token's slot bits; the all-ones slot is left out, which keeps the
/// broker's own tokens (`usize::MAX`, `usize::MAX - 1`) clear of every engine token.
const MAX_SLOTS: usize = (usize::MAX >> SLOT_SHIFT) - 1;

/// Descriptors kept free of data connections: the control socket and its peers, libzmq's own,
/// the state file, logging (on top of two per open topic for its listeners).
const RESERVED_FDS: usize = 64;

pub(super) use crate::ratelimit::RateLimited;

/// The engine's repeated warnings.
#[derive(Debug, Default)]
pub(super) struct Warnings {
    pub refused: RateLimited,
    pub accept_failed: RateLimited,
}

/// What a token stands for (the two bits between the slot and the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    PublishListener,
    SubscribeListener,
    Publisher,
    Subscriber,
}

pub(super) fn token(slot: u32, kind: Kind, idx: usize) -> mio::Token {
    mio::Token(
        ((slot as usize) << SLOT_SHIFT)
            | ((kind as usize) << IDX_BITS)
            | (idx & (MAX_CONNECTIONS - 1)),
    )
}

fn untoken(token: mio::Token) -> (usize, Kind, usize) {
    let kind = match (token.0 >> IDX_BITS) & 3 {
        0 => Kind::PublishListener,
        1 => Kind::SubscribeListener,
        2 => Kind::Publisher,
        _ => Kind::Subscriber,
    };
    (token.0 >> SLOT_SHIFT, kind, token.0 & (MAX_CONNECTIONS - 1))
}

/// What a readiness event says about a descriptor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readiness {
    pub token: mio::Token,
    /// Input, end of input or an error is waiting: read (a read reports the end or the error).
    pub read: bool,
    /// End of input or an error is waiting too: read until the read says so, even after a
    /// short read (edge-triggered, no later event would report an end that is already there).
    pub closed: bool,
    pub write: bool,
}

impl Readiness {
    pub(crate) fn of(event: &mio::event::Event) -> Self {
        Readiness {
            token: event.token(),
            read: event.is_readable() || event.is_read_closed() || event.is_error(),
            closed: event.is_read_closed() || event.is_error(),
            write: event.is_writable(),
        }
    }
}

/// Limits every connection shares.
pub(crate) struct Limits {
    /// Messages queued per subscriber before it misses new ones.
    hwm: usize,
    max_frame: u64,
    /// A whole (multipart) message the engine buffers while it arrives.
    max_message: usize,
    heartbeat: Duration,
    /// Prefixes one subscriber connection may hold.
    max_subscriptions: usize,
    /// Connections (publishers and subscribers) on one topic.
    max_topic_connections: usize,
    /// A ZMTP 3.0 publisher silent, or a subscriber without a subscription, this long is closed.
    idle: Duration,
}

/// What a topic's connections need from the engine while handling an event.
pub(super) struct Env<'a> {
    registry: &'a mio::Registry,
    scratch: &'a mut [u8],
    limits: &'a Limits,
    auth: Option<&'a Auth>,
    now: Instant,
    warnings: &'a mut Warnings,
    /// The ready list: connections (and listeners) with input left over after their turn,
    /// served next turn, each at most once (see `Conn::backlog`).
    backlog: &'a mut Vec<mio::Token>,
    /// Data connections allowed over all topics now (`--max-connections`, and descriptors).
    connection_limit: usize,
}

/// The data plane's state outside the topics.
pub(crate) struct Engine {
    /// Topic of each slot (the topic part of an epoll token).
    slots: Vec<Option<Topic>>,
    free_slots: Vec<u32>,
    scratch: Box<[u8]>,
    limits: Limits,
    auth: Option<Auth>,
    sweep_every: Duration,
    next_sweep: Instant,
    spin: spin::Spin,
    /// Data connections open over all topics.
    open: Arc<Gauge>,
    open_topics: usize,
    max_connections: usize,
    /// The process's descriptor limit.
    fd_limit: usize,
    warnings: Warnings,
    /// The ready list (see [`Env`]).
    backlog: Vec<mio::Token>,
}

impl Engine {
    pub(crate) fn new(
        config: &MasterConfig,
        security: &crate::auth::Security,
        open: Arc<Gauge>,
    ) -> Result<Self, MasterError> {
        let max_frame = config.max_message_size as u64;
        let auth = Auth::new(security);
        let heartbeat = config.zmtp_heartbeat.max(Duration::from_millis(10));
        let sweep_every = (heartbeat / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        Ok(Engine {
            slots: Vec::new(),
            free_slots: Vec::new(),
            scratch: vec![0u8; READ_LEN].into_boxed_slice(),
            limits: Limits {
                hwm: match config.hwm {
                    0 => usize::MAX,
                    h => usize::try_from(h).unwrap_or(usize::MAX),
                },
                max_frame,
                // A multipart message may hold a few frames at the limit; beyond that it is
                // refused rather than buffered without bound.
                max_message: config.max_message_size.saturating_mul(2).max(1 << 20),
                heartbeat,
                max_subscriptions: config.max_subscriptions,
                max_topic_connections: config.max_topic_connections,
                idle: config.idle_timeout,
            },
            auth,
            sweep_every,
            next_sweep: Instant::now() + sweep_every,
            spin: spin::Spin::new(config.spin),
            open,
            open_topics: 0,
            max_connections: config.max_connections,
            fd_limit: fd_limit(),
            warnings: Warnings::default(),
            backlog: Vec::new(),
        })
    }

    /// Data connections allowed now: `--max-connections`, and what the descriptor limit leaves
    /// after the topics' listeners and a reserve (so that the control service and libzmq always
    /// have descriptors).
    fn connection_limit(&self) -> usize {
        let room = self
            .fd_limit
            .saturating_sub(RESERVED_FDS + 2 * self.open_topics);
        self.max_connections.min(room)
    }

    /// Binds a topic's two ports (`preferred` first, from the state file) and watches them.
    pub(crate) fn open_topic(
        &mut self,
        registry: &mio::Registry,
        ports: &mut PortPlan,
        topic: &Topic,
        preferred: Option<(u16, u16)>,
    ) -> std::io::Result<TopicPlane> {
        let publish = ports.listen_preferred(preferred.map(|p| p.0))?;
        let subscribe = ports.listen_preferred(preferred.map(|p| p.1))?;
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None if self.slots.len() >= MAX_SLOTS => {
                return Err(std::io::ErrorKind::OutOfMemory.into());
            }
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let plane = TopicPlane::new(topic.clone(), slot, publish, subscribe, self.open.clone());
        let (p, s) = plane.listener_fds();
        let readable = mio::Interest::READABLE;
        let watched = registry
            .register(
                &mut SourceFd(&p),
                token(slot, Kind::PublishListener, 0),
                readable,
            )
            .and_then(|()| {
                registry.register(
                    &mut SourceFd(&s),
                    token(slot, Kind::SubscribeListener, 0),
                    readable,
                )
            });
        if let Err(e) = watched {
            self.free_slots.push(slot);
            return Err(e);
        }
        self.slots[slot as usize] = Some(topic.clone());
        self.open_topics += 1;
        Ok(plane)
    }

    /// Forgets a closed topic; dropping it closes its listeners and connections.
    pub(crate) fn close_topic(&mut self, plane: TopicPlane) {
        if let Some(s) = self.slots.get_mut(plane.slot as usize) {
            *s = None;
            self.free_slots.push(plane.slot);
            self.open_topics = self.open_topics.saturating_sub(1);
        }
        if plane.connections() > 0 {
            info!(
                connections = plane.connections(),
                "closing the topic's connections"
            );
        }
    }
}

/// The process's (soft) descriptor limit.
fn fd_limit() -> usize {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| {
        usize::try_from(soft).unwrap_or(usize::MAX)
    })
}

impl Engine {
    /// Whether a connection has input left from its last turn (the loop must not sleep).
    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// The timeout of the next wait: `blocking` (`None`: no limit), or shorter to run the next
    /// sweep on time, or zero while spinning is worth it (see `spin.rs`; then true).
    pub(crate) fn timeout(&mut self, blocking: Option<Duration>, now: Instant) -> (Duration, bool) {
        let sweep = self.next_sweep.saturating_duration_since(now);
        let blocking = blocking.map_or(sweep, |b| b.min(sweep));
        let timeout = self.spin.timeout(blocking, now);
        (timeout, timeout.is_zero() && !blocking.is_zero())
    }

    /// Records what a wait returned (for the spin's estimate of how dense traffic is).
    pub(crate) fn after_wait(&mut self, events: bool, now: Instant) {
        self.spin.after_wait(events, now);
    }

    /// Handles a wait's events for the topics' descriptors, then the connections with input
    /// left from their last turn, then (when due) the sweep of handshake deadlines, heartbeats
    /// and silent peers.
    pub(crate) fn serve(
        &mut self,
        registry: &mio::Registry,
        topics: &mut BTreeMap<Topic, TopicState>,
        events: impl Iterator<Item = Readiness>,
        now: Instant,
    ) {
        let connection_limit = self.connection_limit();
        let backlog = std::mem::take(&mut self.backlog);
        let Engine {
            slots,
            scratch,
            limits,
            auth,
            warnings,
            backlog: next_backlog,
            ..
        } = self;
        let mut env = Env {
            registry,
            scratch,
            limits,
            auth: auth.as_ref(),
            now,
            warnings,
            backlog: next_backlog,
            connection_limit,
        };
        let find = |token: mio::Token| {
            let (slot, kind, idx) = untoken(token);
            // A topic closed meanwhile: its descriptors are gone with it.
            let topic = slots.get(slot).and_then(Option::as_ref)?;
            Some((topic, kind, idx))
        };
        for event in events {
            if let Some((topic, kind, idx)) = find(event.token) {
                if let Some(state) = topics.get_mut(topic) {
                    state
                        .data
                        .on_event(kind, idx, event, &mut env, &mut state.counters);
                }
            }
        }
        for token in backlog {
            if let Some((topic, kind, idx)) = find(token) {
                if let Some(state) = topics.get_mut(topic) {
                    state.data.resume(kind, idx, &mut env, &mut state.counters);
                }
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + self.sweep_every;
            // It can change under a running master (`prlimit`).
            let limit = fd_limit();
            if limit != self.fd_limit {
                self.fd_limit = limit;
                info!(limit, "descriptor limit changed");
            }
            for state in topics.values_mut() {
                state.data.sweep(&mut env);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_stay_clear_of_the_fixed_ones() {
        for (slot, kind, idx) in [
            (0, Kind::PublishListener, 0),
            (7, Kind::Subscriber, 12345),
            (MAX_SLOTS as u32 - 1, Kind::Publisher, MAX_CONNECTIONS - 1),
            (MAX_SLOTS as u32 - 1, Kind::Subscriber, MAX_CONNECTIONS - 1),
        ] {
            let t = token(slot, kind, idx);
            assert_eq!(untoken(t), (slot as usize, kind, idx));
            assert!(t != crate::broker::TOKEN_STOP && t != crate::broker::TOKEN_CONTROL);
        }
    }
}
