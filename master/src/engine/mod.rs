//! The native engine: the master's own thread accepts every topic's TCP connections and speaks
//! ZMTP itself, so a message crosses one thread (read, fan out, write) instead of libzmq's I/O
//! thread, the broker and libzmq again.
//!
//! - `zerosmq_core::zmtp::stream` (in core, fuzzed): splits a read into greeting, commands and
//!   whole messages, in place.
//! - `handshake.rs`: a connection's session on core's `zmtp::Connection` (NULL, PLAIN and
//!   CURVE, server side) and who it admits (passwords, CURVE keys, the ACL).
//! - `connection.rs`: one connection's state; `outbox.rs`: its outbound queue;
//!   `subscriptions.rs`: a subscriber's prefixes.
//! - `topic.rs`: a topic's listeners and connections, forwarding, heartbeats.
//!
//! Readiness comes from the broker's own epoll wrapper (`poller.rs`), level-triggered: a
//! connection gets a bounded turn (a few reads of 64 KiB) per wake-up and epoll reports it again
//! if more is waiting, which gives fairness without a list of busy connections; the libzmq
//! control socket's `ZMQ_FD` sits in the same epoll.

mod connection;
mod handshake;
mod outbox;
mod spin;
mod subscriptions;
mod topic;

use std::cell::Cell;
use std::io::Read as _;
use std::net::{TcpListener, ToSocketAddrs as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::info;
use zerosmq_core::Topic;

pub(crate) use topic::NativeTopic;

use crate::broker::poller::Poller;
use crate::broker::{Broker, DataPlane, TOKEN_CONTROL, TOKEN_STOP};
use crate::sockets::PortPlan;
use crate::{MasterConfig, MasterError};
pub(crate) use handshake::Auth;

/// Bytes read from a connection at once.
pub(super) const READ_LEN: usize = 64 << 10;

/// A peer must finish the handshake within this time.
const HANDSHAKE: Duration = Duration::from_millis(crate::sockets::HANDSHAKE_MS as u64);

/// Connection handles must fit the token's low 30 bits.
const MAX_CONNECTIONS: usize = 1 << 30;

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

/// What an epoll token stands for (bits 30-31; bits 32-63 are the topic's slot, 0-29 the
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    PublishListener,
    SubscribeListener,
    Publisher,
    Subscriber,
}

pub(super) fn token(slot: u32, kind: Kind, idx: usize) -> u64 {
    (u64::from(slot) << 32) | ((kind as u64) << 30) | (idx as u64 & (MAX_CONNECTIONS as u64 - 1))
}

fn untoken(token: u64) -> (usize, Kind, usize) {
    let kind = match (token >> 30) & 3 {
        0 => Kind::PublishListener,
        1 => Kind::SubscribeListener,
        2 => Kind::Publisher,
        _ => Kind::Subscriber,
    };
    (
        (token >> 32) as usize,
        kind,
        (token as usize) & (MAX_CONNECTIONS - 1),
    )
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
    poller: &'a mut Poller,
    scratch: &'a mut [u8],
    limits: &'a Limits,
    auth: Option<&'a Auth>,
    now: Instant,
    warnings: &'a mut Warnings,
    /// Connections with input left over after their turn (tokens), served next turn.
    backlog: &'a mut Vec<u64>,
    /// Data connections allowed over all topics now (`--max-connections`, and descriptors).
    connection_limit: usize,
}

/// The native engine's state outside the topics.
pub(crate) struct NativeEngine {
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
    open: Rc<Cell<usize>>,
    open_topics: usize,
    max_connections: usize,
    /// The process's descriptor limit.
    fd_limit: usize,
    warnings: Warnings,
    backlog: Vec<u64>,
}

impl NativeEngine {
    pub(crate) fn new(config: &MasterConfig, security: &crate::auth::Security) -> Self {
        let max_frame = config.max_message_size as u64;
        let auth = Auth::new(security);
        let heartbeat = config.zmtp_heartbeat.max(Duration::from_millis(10));
        let sweep_every = (heartbeat / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        NativeEngine {
            slots: Vec::new(),
            free_slots: Vec::new(),
            scratch: vec![0u8; READ_LEN].into_boxed_slice(),
            limits: Limits {
                hwm: usize::try_from(config.hwm)
                    .ok()
                    .filter(|&h| h > 0)
                    .unwrap_or(usize::MAX),
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
            open: Rc::new(Cell::new(0)),
            open_topics: 0,
            max_connections: config.max_connections,
            fd_limit: fd_limit(),
            warnings: Warnings::default(),
            backlog: Vec::new(),
        }
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
        poller: &mut Poller,
        ports: &mut PortPlan,
        topic: &Topic,
        preferred: Option<(u16, u16)>,
    ) -> std::io::Result<NativeTopic> {
        let publish = bind_preferred(ports, preferred.map(|p| p.0))?;
        let subscribe = bind_preferred(ports, preferred.map(|p| p.1))?;
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).map_err(|_| std::io::ErrorKind::OutOfMemory)?
            }
        };
        let native = NativeTopic::new(topic.clone(), slot, publish, subscribe, self.open.clone());
        let (p, s) = native.listener_fds();
        let watched = poller
            .add(p, token(slot, Kind::PublishListener, 0))
            .and_then(|()| poller.add(s, token(slot, Kind::SubscribeListener, 0)));
        if let Err(e) = watched {
            self.free_slots.push(slot);
            return Err(e);
        }
        self.slots[slot as usize] = Some(topic.clone());
        self.open_topics += 1;
        Ok(native)
    }

    /// Forgets a closed topic; dropping it closes its listeners and connections.
    pub(crate) fn close_topic(&mut self, native: NativeTopic) {
        if let Some(s) = self.slots.get_mut(native.slot as usize) {
            *s = None;
            self.free_slots.push(native.slot);
            self.open_topics = self.open_topics.saturating_sub(1);
        }
        if native.connections() > 0 {
            info!(
                connections = native.connections(),
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

/// Binds a listener on `preferred` when it is free (and in the range, if any), else on any free
/// port of the plan: `PortPlan::bind_preferred` for plain TCP.
fn bind_preferred(
    ports: &mut PortPlan,
    preferred: Option<u16>,
) -> std::io::Result<(TcpListener, u16)> {
    if let Some(port) = preferred.filter(|&p| ports.range.is_none_or(|(l, h)| (l..=h).contains(&p)))
    {
        if let Ok(l) = listen(&ports.bind, port) {
            return Ok((l, port));
        }
    }
    let Some((low, high)) = ports.range else {
        let l = listen(&ports.bind, 0)?;
        let port = l.local_addr()?.port();
        return Ok((l, port));
    };
    for _ in 0..=u32::from(high - low) {
        let port = ports.next_port();
        match listen(&ports.bind, port) {
            Ok(l) => return Ok((l, port)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::ErrorKind::AddrInUse.into())
}

/// A non-blocking listener on `bind:port` (`*` and `0.0.0.0` mean every interface, as in libzmq
/// endpoints).
fn listen(bind: &str, port: u16) -> std::io::Result<TcpListener> {
    let host = match bind {
        "*" => "0.0.0.0",
        other => other.trim_start_matches('[').trim_end_matches(']'),
    };
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or(std::io::ErrorKind::AddrNotAvailable)?;
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl Broker {
    /// The native engine's loop: serves until `stop` becomes readable.
    pub(crate) fn run_native(&mut self, stop: &UnixStream) -> Result<(), MasterError> {
        self.poller.add(stop.as_raw_fd(), TOKEN_STOP)?;
        let mut events: Vec<(u64, u32)> = Vec::with_capacity(256);
        loop {
            let backlog = self.native.as_ref().is_some_and(|n| !n.backlog.is_empty());
            let timeout = if self.control_hot || backlog {
                0
            } else {
                self.expire_nodes_if_due(true);
                let native = self.native.as_ref().map_or(Duration::MAX, |n| {
                    n.next_sweep.saturating_duration_since(Instant::now())
                });
                let sweep_ms = i32::try_from(native.as_millis() + 1).unwrap_or(i32::MAX);
                match self.idle_timeout_ms() {
                    -1 => sweep_ms,
                    ms => ms.min(sweep_ms),
                }
            };
            let blocking = timeout;
            let timeout = match self.native.as_mut() {
                Some(n) => n.spin.timeout(timeout, Instant::now()),
                None => timeout,
            };
            if timeout == 0 && blocking != 0 {
                // Spinning: let a runnable thread on this core (a client, on a small machine)
                // go first, so that the spin takes only time nobody else wants.
                std::thread::yield_now();
            }
            events.clear();
            events.extend(self.poller.wait_events(timeout)?);
            let now = Instant::now();
            if let Some(n) = self.native.as_mut() {
                n.spin.after_wait(!events.is_empty(), now);
            }
            let Some(native) = self.native.as_mut() else {
                return Err(MasterError::Config("native engine not set up".into()));
            };
            let connection_limit = native.connection_limit();
            let backlog = std::mem::take(&mut native.backlog);
            let NativeEngine {
                slots,
                scratch,
                limits,
                auth,
                warnings,
                backlog: next_backlog,
                ..
            } = native;
            let mut env = Env {
                poller: &mut self.poller,
                scratch,
                limits,
                auth: auth.as_ref(),
                now,
                warnings,
                backlog: next_backlog,
                connection_limit,
            };
            for &(token, bits) in &events {
                match token {
                    TOKEN_STOP => {
                        let _ = (&*stop).read(&mut [0u8; 16]);
                        info!("master shutting down");
                        return Ok(());
                    }
                    TOKEN_CONTROL => self.control_hot = true,
                    token => {
                        let (slot, kind, idx) = untoken(token);
                        // A topic closed meanwhile: its descriptors are gone with it.
                        let Some(topic) = slots.get(slot).and_then(Option::as_ref) else {
                            continue;
                        };
                        let Some(state) = self.topics.get_mut(topic) else {
                            continue;
                        };
                        if let DataPlane::Native(t) = &mut state.plane {
                            t.on_event(kind, idx, bits, &mut env, &mut state.counters);
                        }
                    }
                }
            }
            for token in backlog {
                let (slot, kind, idx) = untoken(token);
                let Some(topic) = slots.get(slot).and_then(Option::as_ref) else {
                    continue;
                };
                if let Some(state) = self.topics.get_mut(topic) {
                    if let DataPlane::Native(t) = &mut state.plane {
                        t.resume(kind, idx, &mut env, &mut state.counters);
                    }
                }
            }
            if now >= native.next_sweep {
                native.next_sweep = now + native.sweep_every;
                // It can change under a running master (`prlimit`).
                let limit = fd_limit();
                if limit != native.fd_limit {
                    native.fd_limit = limit;
                    info!(limit, "descriptor limit changed");
                }
                for state in self.topics.values_mut() {
                    if let DataPlane::Native(t) = &mut state.plane {
                        t.sweep(&mut env);
                    }
                }
            }
            if self.control_hot {
                self.serve_control(crate::broker::CONTROL_BATCH);
                self.control_hot = crate::broker::readable(&self.control);
            }
            self.expire_nodes_if_due(false);
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
            (u32::MAX - 1, Kind::Publisher, MAX_CONNECTIONS - 1),
        ] {
            let t = token(slot, kind, idx);
            assert_eq!(untoken(t), (slot as usize, kind, idx));
            assert!(t != TOKEN_STOP && t != TOKEN_CONTROL);
        }
    }
}
