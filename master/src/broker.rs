//! The master's thread: one epoll over the control socket and every topic's sockets, and a list
//! of sockets that still have work, served in turn until none has.
//!
//! Why not `zmq_poll`: it reads two socket options and polls every descriptor on every wake-up,
//! which at 1,000 topics costs more than the messages. See `poller.rs`.

#[path = "poller.rs"]
pub(crate) mod poller;

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use poller::Poller;

use tracing::{debug, info, warn};
use zerosmq_core::message::{MAX_READY_PROBE_LEN, READY_PROBE_PREFIX};
use zerosmq_core::Topic;

use crate::registry::{Registry, TopicCounters};
use crate::sockets::{
    bound_port, send_keep, set_xpub_nodrop, MasterContext, PortPlan, SocketTuning, TopicSockets,
};
use crate::{MasterConfig, MasterError};

/// Messages forwarded from one socket before the others get a turn (a multipart message is
/// never split). Keeps one busy topic from starving the rest and the control service.
const FORWARD_BATCH: usize = 4096;

/// Largest control message libzmq accepts before disconnecting the peer (requests above
/// `MAX_CONTROL_REQUEST_LEN` but below this get a `too-large` reply).
const CONTROL_MAX_MESSAGE: i64 = 16 << 20;

/// The configured ZMTP heartbeat interval in ms, as libzmq takes it.
fn heartbeat_ms(config: &MasterConfig) -> i32 {
    i32::try_from(config.zmtp_heartbeat.as_millis())
        .unwrap_or(i32::MAX)
        .max(1)
}

/// Control requests answered per wake-up before the topics get a turn.
pub(crate) const CONTROL_BATCH: usize = 64;

/// How often, at most, silent nodes are looked for while the forwarder is busy.
const EXPIRY_CHECK: Duration = Duration::from_millis(100);

/// Poller tokens: a topic socket's token is its descriptor times two, plus one for the outbound.
pub(crate) const TOKEN_STOP: u64 = u64::MAX;
pub(crate) const TOKEN_CONTROL: u64 = u64::MAX - 1;

/// How a topic's messages travel: libzmq sockets, or the native engine's own connections.
pub(crate) enum DataPlane {
    Libzmq(TopicSockets),
    Native(crate::engine::NativeTopic),
}

pub(crate) struct TopicState {
    pub plane: DataPlane,
    pub counters: TopicCounters,
}

impl TopicState {
    /// The ports publishers and subscribers connect to.
    pub(crate) fn ports(&self) -> (u16, u16) {
        match &self.plane {
            DataPlane::Libzmq(s) => (s.publish_port, s.subscribe_port),
            DataPlane::Native(n) => (n.publish_port, n.subscribe_port),
        }
    }

    /// Connections refused because a limit was reached (the native engine's caps).
    pub(crate) fn refused(&self) -> u64 {
        match &self.plane {
            DataPlane::Libzmq(_) => 0,
            DataPlane::Native(n) => n.refused,
        }
    }
}

/// Why a topic's ports could not be opened.
pub(crate) struct OpenError {
    /// Out of ports or descriptors (a limit, not a fault).
    pub limit: bool,
    pub detail: String,
}

/// Field order matters: sockets must close before the context terminates.
pub(crate) struct Broker {
    pub(crate) control: zmq::Socket,
    pub(crate) topics: BTreeMap<Topic, TopicState>,
    pub(crate) registry: Registry,
    pub(crate) ports: PortPlan,
    pub(crate) tuning: SocketTuning,
    pub(crate) max_topics: usize,
    pub(crate) max_nodes: usize,
    pub(crate) max_grants_per_node: usize,
    pub(crate) state_file: Option<std::path::PathBuf>,
    /// The registry changed since the state file was last written.
    pub(crate) dirty: bool,
    /// Silence after which a node that sends heartbeats is dropped.
    pub(crate) node_timeout: Duration,
    /// Identifies this run of the master in heartbeat replies.
    pub(crate) epoch: u64,
    control_port: u16,
    pub(crate) poller: Poller,
    /// The native engine's state; `None` when the libzmq engine runs.
    pub(crate) native: Option<crate::engine::NativeEngine>,
    /// Which topic a watched descriptor (`ZMQ_FD`) belongs to.
    watched: HashMap<RawFd, Topic>,
    /// Topics with work pending (their sockets' `pending_*` flags say which side), each once.
    hot: Vec<Topic>,
    /// The control socket may have requests queued.
    pub(crate) control_hot: bool,
    last_expiry_check: Instant,
    pub(crate) security: crate::auth::Security,
    pub(crate) service: crate::control::ControlService,
    pub(crate) ctx: MasterContext,
}

impl Broker {
    pub(crate) fn new(config: &MasterConfig) -> Result<Self, MasterError> {
        // Two sockets per topic, the control socket, and headroom for libzmq's own.
        let max_sockets = i32::try_from(config.max_topics.saturating_mul(2).saturating_add(16))
            .map_err(|_| MasterError::Config("max_topics too large".into()))?;
        raise_fd_limit();
        let ctx = MasterContext::new(max_sockets, config.io_threads)?;
        let security = crate::auth::Security::start(config, &ctx)?;
        let control = ctx
            .socket(zmq::REP)
            .map_err(|e| MasterError::zmq("create control socket", e))?;
        control
            .set_linger(0)
            .map_err(|e| MasterError::zmq("set linger", e))?;
        // Requests over the limit are answered `too-large`; this cap only stops a peer from
        // making the master buffer gigabytes (it is disconnected instead).
        SocketTuning {
            hwm: 1000,
            max_message_size: CONTROL_MAX_MESSAGE,
            heartbeat_ms: heartbeat_ms(config),
        }
        .apply(&control)
        .map_err(|e| MasterError::zmq("configure control socket", e))?;
        security
            .protect(&control, crate::auth::CONTROL_DOMAIN)
            .map_err(|e| MasterError::zmq("secure control socket", e))?;
        // A ZAP domain, even without a ZAP handler (NULL then goes on unchecked), makes libzmq
        // refuse ZMTP 1.0 and 2.0 peers, which is what any peer whose first byte is not 0xFF is
        // taken for. As such a peer, random bytes from a port scanner parse as a request without
        // an envelope from a peer already gone; libzmq's REP drops it but keeps its router's
        // "inside a message" state (`router_t::rollback` resets it only when the peer's pipe
        // still exists), takes the next request's routing id for a frame of the dropped message
        // and sends that request's reply nowhere (issue 13; tests/tests/control_garbage.rs).
        control
            .set_zap_domain(crate::auth::CONTROL_DOMAIN)
            .map_err(|e| MasterError::zmq("set the control socket's ZAP domain", e))?;
        let endpoint = format!("tcp://{}:{}", config.bind, config.port);
        control
            .bind(&endpoint)
            .map_err(|e| MasterError::zmq(format!("bind control socket to {endpoint}"), e))?;
        let control_port =
            bound_port(&control).map_err(|e| MasterError::zmq("read bound port", e))?;
        info!(bind = %config.bind, port = control_port, "control service listening");
        let native = match config.engine {
            crate::Engine::Libzmq if security.curve.is_some() => {
                return Err(MasterError::Config(
                    "CURVE needs the native engine (this libzmq has no CURVE)".into(),
                ))
            }
            crate::Engine::Native => Some(crate::engine::NativeEngine::new(config, &security)),
            crate::Engine::Libzmq => None,
        };
        info!(
            engine = if native.is_some() { "native" } else { "libzmq" },
            "forwarding engine"
        );
        let mut poller = Poller::new()?;
        let control_fd = control
            .get_fd()
            .map_err(|e| MasterError::zmq("control socket descriptor", e))?;
        poller.add(control_fd, TOKEN_CONTROL)?;
        let mut broker = Broker {
            control,
            topics: BTreeMap::new(),
            registry: Registry::default(),
            ports: PortPlan::new(&config.bind, config.data_ports),
            tuning: SocketTuning {
                hwm: config.hwm,
                max_message_size: i64::try_from(config.max_message_size).unwrap_or(i64::MAX),
                heartbeat_ms: heartbeat_ms(config),
            },
            max_topics: config.max_topics,
            max_nodes: config.max_nodes,
            max_grants_per_node: config.max_grants_per_node,
            state_file: config.state_file.clone(),
            dirty: false,
            node_timeout: config.node_timeout,
            epoch: zerosmq_core::random::random_u64(),
            control_port,
            poller,
            native,
            watched: HashMap::new(),
            hot: Vec::new(),
            control_hot: true,
            last_expiry_check: Instant::now(),
            security,
            service: crate::control::ControlService::new(),
            ctx,
        };
        broker.restore()?;
        Ok(broker)
    }

    /// Opens a topic's ports with the running engine; `preferred` ports (from the state file of
    /// a previous run) are tried first so that peers' automatic reconnects find the topic again.
    pub(crate) fn open_topic(
        &mut self,
        topic: &Topic,
        preferred: Option<(u16, u16)>,
    ) -> Result<TopicState, OpenError> {
        let plane = match &mut self.native {
            Some(native) => native
                .open_topic(&mut self.poller, &mut self.ports, topic, preferred)
                .map(DataPlane::Native)
                .map_err(|e| OpenError {
                    limit: e.kind() == std::io::ErrorKind::AddrInUse
                        || e.raw_os_error() == Some(24),
                    detail: e.to_string(),
                })?,
            None => TopicSockets::open(
                &self.ctx,
                &mut self.ports,
                topic,
                self.tuning,
                &self.security,
                preferred,
            )
            .map(DataPlane::Libzmq)
            .map_err(|e| OpenError {
                limit: matches!(e, zmq::Error::EADDRINUSE | zmq::Error::EMFILE),
                detail: e.to_string(),
            })?,
        };
        Ok(TopicState {
            plane,
            counters: TopicCounters::default(),
        })
    }

    /// Closes a topic's ports and connections.
    pub(crate) fn close_topic(&mut self, topic: &Topic) -> bool {
        let Some(state) = self.topics.remove(topic) else {
            return false;
        };
        if let (DataPlane::Native(n), Some(native)) = (state.plane, &mut self.native) {
            native.close_topic(n);
        }
        true
    }

    pub(crate) fn control_port(&self) -> u16 {
        self.control_port
    }

    /// Serves until `stop` becomes readable (a byte written or the other end closed).
    pub(crate) fn run(&mut self, stop: &UnixStream) -> Result<(), MasterError> {
        if self.native.is_some() {
            return self.run_native(stop);
        }
        self.poller.add(stop.as_raw_fd(), TOKEN_STOP)?;
        loop {
            // Block only when no socket has work left; otherwise just collect new signals.
            let busy = self.control_hot || !self.hot.is_empty();
            let timeout = if busy {
                0
            } else {
                self.expire_nodes_if_due(true);
                self.idle_timeout_ms()
            };
            if self.collect(timeout)? {
                let _ = (&*stop).read(&mut [0u8; 16]);
                info!("master shutting down");
                return Ok(());
            }
            self.serve_topics();
            if self.control_hot {
                self.serve_control(CONTROL_BATCH);
                self.control_hot = readable(&self.control);
                self.watch_topics();
            }
            self.expire_nodes_if_due(false);
        }
    }

    /// How long an idle master may sleep: until the next node's heartbeat deadline.
    pub(crate) fn idle_timeout_ms(&self) -> i32 {
        match self.registry.next_expiry(self.node_timeout) {
            None => -1,
            Some(at) => {
                let ms = at.saturating_duration_since(Instant::now()).as_millis() + 1;
                ms.min(i32::MAX as u128) as i32
            }
        }
    }

    pub(crate) fn expire_nodes_if_due(&mut self, idle: bool) {
        if idle || self.last_expiry_check.elapsed() >= EXPIRY_CHECK {
            self.last_expiry_check = Instant::now();
            self.expire_nodes();
            self.save_state();
        }
    }

    /// Waits up to `timeout_ms` for signals and marks the signalled sockets hot. Returns true
    /// when the stop descriptor is readable.
    fn collect(&mut self, timeout_ms: i32) -> Result<bool, MasterError> {
        let mut stop = false;
        let mut unknown = Vec::new();
        for token in self.poller.wait(timeout_ms)? {
            match token {
                TOKEN_STOP => stop = true,
                TOKEN_CONTROL => self.control_hot = true,
                token => {
                    let fd = (token >> 1) as RawFd;
                    let outbound = token & 1 == 1;
                    let state = self
                        .watched
                        .get(&fd)
                        .and_then(|topic| self.topics.get_mut(topic));
                    let sockets = state.and_then(|s| match &mut s.plane {
                        DataPlane::Libzmq(sockets) => Some(sockets),
                        DataPlane::Native(_) => None,
                    });
                    match sockets {
                        Some(s) if s.watches(fd) => {
                            if outbound {
                                s.pending_out = true;
                            } else {
                                s.pending_in = true;
                            }
                            if !s.hot {
                                s.hot = true;
                                self.hot.push(self.watched[&fd].clone());
                            }
                        }
                        // A closed topic's socket, not yet reaped by libzmq.
                        _ => unknown.push(fd),
                    }
                }
            }
        }
        for fd in unknown {
            self.poller.remove(fd);
            self.watched.remove(&fd);
        }
        Ok(stop)
    }

    /// Serves every hot topic once; those with work left stay hot for the next round.
    fn serve_topics(&mut self) {
        let hot = std::mem::take(&mut self.hot);
        for topic in hot {
            let Some(TopicState {
                plane: DataPlane::Libzmq(sockets),
                counters,
            }) = self.topics.get_mut(&topic)
            else {
                continue; // closed meanwhile
            };
            let (inbound, outbound) = (sockets.pending_in, sockets.pending_out);
            if outbound {
                answer_probes(&topic, &sockets.outbound);
            }
            // A batch that ended before `EAGAIN` leaves messages behind.
            let inbound_left = inbound && forward(&topic, sockets, counters);
            // Sending may have taken the outbound socket's signal for subscriptions that are
            // now queued, so look at its state before sleeping.
            let outbound_left = readable(&sockets.outbound);
            let s = sockets;
            s.pending_in = inbound_left;
            s.pending_out = outbound_left;
            s.hot = inbound_left || outbound_left;
            if s.hot {
                self.hot.push(topic);
            }
        }
    }

    /// Watches the sockets of topics opened since the last call, and forgets closed ones.
    fn watch_topics(&mut self) {
        let topics = &self.topics;
        self.watched.retain(|_, t| topics.contains_key(t));
        for (topic, state) in self.topics.iter_mut() {
            let DataPlane::Libzmq(s) = &mut state.plane else {
                continue;
            };
            if s.watched {
                continue;
            }
            let fds = (s.inbound_fd, s.outbound_fd);
            let added = self
                .poller
                .add(fds.0, (fds.0 as u64) << 1)
                .and_then(|()| self.poller.add(fds.1, ((fds.1 as u64) << 1) | 1));
            if let Err(e) = added {
                warn!(%topic, error = %e, "cannot watch the topic's sockets");
                continue;
            }
            self.watched.insert(fds.0, topic.clone());
            self.watched.insert(fds.1, topic.clone());
            s.watched = true;
            // Anything that arrived before the watch started is served now.
            s.pending_in = true;
            s.pending_out = true;
            if !s.hot {
                s.hot = true;
                self.hot.push(topic.clone());
            }
        }
    }
}

/// True when `socket` has a message to receive (reading `ZMQ_EVENTS` also processes its
/// pending commands).
pub(crate) fn readable(socket: &zmq::Socket) -> bool {
    socket
        .get_events()
        .map(|e| e.contains(zmq::POLLIN))
        .unwrap_or(false)
}

/// Copies up to a batch of messages, every frame unchanged, from the topic's SUB to its XPUB.
/// Returns true when the batch ended before the SUB ran dry.
fn forward(topic: &Topic, sockets: &mut TopicSockets, counters: &mut TopicCounters) -> bool {
    let mut forwarded = 0usize;
    let mut more = false;
    let mut left = true;
    // The current message already counted an overflow (a multipart message counts once).
    let mut dropping = false;
    while more || forwarded < FORWARD_BATCH {
        let mut msg = zmq::Message::new();
        if !more {
            dropping = false;
        }
        match sockets.inbound.recv(&mut msg, zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => {
                left = false;
                break;
            }
            Err(e) => {
                warn!(%topic, error = %e, "receive from publishers failed");
                left = false;
                break;
            }
        }
        more = msg.get_more();
        counters.bytes += msg.len() as u64;
        let flags = if more {
            zmq::SNDMORE | zmq::DONTWAIT
        } else {
            zmq::DONTWAIT
        };
        match send_keep(&mut sockets.outbound, &mut msg, flags) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => {
                // A subscriber's queue is at the high-water mark. Drop policy: it misses this
                // message and the next ones until it catches up (libzmq parks its pipe), the
                // others get them, and the overflow is counted.
                let _ = set_xpub_nodrop(&mut sockets.outbound, false);
                let sent = send_keep(&mut sockets.outbound, &mut msg, flags);
                let _ = set_xpub_nodrop(&mut sockets.outbound, true);
                if !dropping {
                    counters.overflows += 1;
                    dropping = true;
                }
                if let Err(e) = sent {
                    warn!(%topic, error = %e, "send to subscribers failed");
                }
            }
            Err(e) => warn!(%topic, error = %e, "send to subscribers failed"),
        }
        if !more {
            counters.messages += 1;
            forwarded += 1;
        }
    }
    if forwarded > 0 {
        counters.last_activity = Some(Instant::now());
    }
    left
}

/// Reads subscription messages from the XPUB; answers ready probes (see
/// `zerosmq_core::message::READY_PROBE_PREFIX`) with a message of the probe's own bytes.
fn answer_probes(topic: &Topic, outbound: &zmq::Socket) {
    let mut msg = zmq::Message::new();
    loop {
        match outbound.recv(&mut msg, zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => return,
            Err(e) => {
                warn!(%topic, error = %e, "reading subscriptions failed");
                return;
            }
        }
        let Some((&kind, body)) = msg.split_first() else {
            continue;
        };
        if kind == 1 && body.starts_with(READY_PROBE_PREFIX) && body.len() <= MAX_READY_PROBE_LEN {
            debug!(%topic, "answering ready probe");
            if let Err(e) = outbound.send(body, zmq::DONTWAIT) {
                warn!(%topic, error = %e, "answering ready probe failed");
            }
        }
    }
}

/// Per-topic sockets and client connections are file descriptors; the default soft limit (often
/// 1,024) would cap the master at a few hundred topics, so raise it to the hard limit.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => debug!(limit = n, "open file limit"),
        Err(e) => warn!(error = %e, "could not raise the open file limit"),
    }
}
