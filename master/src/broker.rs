//! The master's thread: one run loop over the control socket and the data plane (`engine/`),
//! woken by one `mio` poll (epoll, edge-triggered).
//!
//! The control socket's `ZMQ_FD` is a notification, not readiness (edge-triggered by nature):
//! after any operation on the socket the loop reads `ZMQ_EVENTS` (which also processes libzmq's
//! pending commands) before it sleeps again, and keeps serving while a request is queued.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tracing::{debug, info, warn};
use zerosmq_core::Topic;

use crate::engine::{Engine, Readiness, TopicPlane};
use crate::ports::PortPlan;
use crate::registry::{Registry, TopicCounters};
use crate::sockets::{bound_port, tune_control, MasterContext};
use crate::{MasterConfig, MasterError};

/// Largest control message libzmq accepts before disconnecting the peer (requests above
/// `MAX_CONTROL_REQUEST_LEN` but below this get a `too-large` reply).
const CONTROL_MAX_MESSAGE: i64 = 16 << 20;

/// Control requests answered per wake-up before the topics get a turn.
const CONTROL_BATCH: usize = 64;

/// How often, at most, silent nodes are looked for while the forwarder is busy.
const EXPIRY_CHECK: Duration = Duration::from_millis(100);

/// Tokens of the broker's own descriptors; the engine's tokens never take these.
pub(crate) const TOKEN_STOP: Token = Token(usize::MAX);
pub(crate) const TOKEN_CONTROL: Token = Token(usize::MAX - 1);

/// Events taken from the kernel per wait.
const EVENTS: usize = 256;

pub(crate) struct TopicState {
    pub data: TopicPlane,
    pub counters: TopicCounters,
}

impl TopicState {
    /// The ports publishers and subscribers connect to.
    pub(crate) fn ports(&self) -> (u16, u16) {
        (self.data.publish_port, self.data.subscribe_port)
    }

    /// Connections refused because a limit was reached.
    pub(crate) fn refused(&self) -> u64 {
        self.data.refused
    }
}

/// Why a topic's ports could not be opened.
pub(crate) struct OpenError {
    /// Out of ports or descriptors (a limit, not a fault).
    pub limit: bool,
    pub detail: String,
}

pub(crate) struct Broker {
    pub(crate) control: zmq::Socket,
    pub(crate) topics: BTreeMap<Topic, TopicState>,
    pub(crate) registry: Registry,
    ports: PortPlan,
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
    poll: Poll,
    engine: Engine,
    /// The control socket may have requests queued.
    control_hot: bool,
    last_expiry_check: Instant,
    pub(crate) security: crate::auth::Security,
    pub(crate) service: crate::control::ControlService,
}

impl Broker {
    pub(crate) fn new(config: &MasterConfig) -> Result<Self, MasterError> {
        raise_fd_limit();
        let ctx = MasterContext::new(config.io_threads)?;
        let security = crate::auth::Security::start(config, &ctx)?;
        let engine = Engine::new(config, &security)?;
        let control = ctx
            .socket(zmq::REP)
            .map_err(|e| MasterError::zmq("create control socket", e))?;
        control
            .set_linger(0)
            .map_err(|e| MasterError::zmq("set linger", e))?;
        // Requests over the limit are answered `too-large`; this cap only stops a peer from
        // making the master buffer gigabytes (it is disconnected instead).
        tune_control(&control, CONTROL_MAX_MESSAGE, config.zmtp_heartbeat)
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
        let poll = Poll::new()?;
        let control_fd = control
            .get_fd()
            .map_err(|e| MasterError::zmq("control socket descriptor", e))?;
        poll.registry().register(
            &mut SourceFd(&control_fd),
            TOKEN_CONTROL,
            Interest::READABLE,
        )?;
        let mut broker = Broker {
            control,
            topics: BTreeMap::new(),
            registry: Registry::default(),
            ports: PortPlan::new(&config.bind, config.data_ports),
            max_topics: config.max_topics,
            max_nodes: config.max_nodes,
            max_grants_per_node: config.max_grants_per_node,
            state_file: config.state_file.clone(),
            dirty: false,
            node_timeout: config.node_timeout,
            epoch: zerosmq_core::random::random_u64(),
            control_port,
            poll,
            engine,
            control_hot: true,
            last_expiry_check: Instant::now(),
            security,
            service: crate::control::ControlService::new(),
        };
        broker.restore()?;
        Ok(broker)
    }

    /// Opens a topic's ports; `preferred` ports (from the state file of a previous run) are
    /// tried first so that peers' automatic reconnects find the topic again.
    pub(crate) fn open_topic(
        &mut self,
        topic: &Topic,
        preferred: Option<(u16, u16)>,
    ) -> Result<TopicState, OpenError> {
        let data = self
            .engine
            .open_topic(self.poll.registry(), &mut self.ports, topic, preferred)
            .map_err(|e| OpenError {
                limit: e.kind() == std::io::ErrorKind::AddrInUse || e.raw_os_error() == Some(24),
                detail: e.to_string(),
            })?;
        Ok(TopicState {
            data,
            counters: TopicCounters::default(),
        })
    }

    /// Closes a topic's ports and connections.
    pub(crate) fn close_topic(&mut self, topic: &Topic) -> bool {
        let Some(state) = self.topics.remove(topic) else {
            return false;
        };
        self.engine.close_topic(state.data);
        true
    }

    pub(crate) fn control_port(&self) -> u16 {
        self.control_port
    }

    /// Serves until `stop` becomes readable (a byte written or the other end closed).
    pub(crate) fn run(&mut self, stop: &UnixStream) -> Result<(), MasterError> {
        self.poll.registry().register(
            &mut SourceFd(&stop.as_raw_fd()),
            TOKEN_STOP,
            Interest::READABLE,
        )?;
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout = if self.control_hot || self.engine.has_backlog() {
                Duration::ZERO
            } else {
                self.expire_nodes_if_due(true);
                let (timeout, spinning) = self.engine.timeout(self.idle_timeout(), Instant::now());
                if spinning {
                    // Let a runnable thread on this core (a client, on a small machine) go
                    // first, so that the spin takes only time nobody else wants.
                    std::thread::yield_now();
                }
                timeout
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                // A signal: `poll` left no events.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
            let now = Instant::now();
            self.engine.after_wait(!events.is_empty(), now);
            let mut stopped = false;
            let data = events.iter().filter_map(|event| match event.token() {
                TOKEN_STOP => {
                    stopped = true;
                    None
                }
                TOKEN_CONTROL => {
                    self.control_hot = true;
                    None
                }
                _ => Some(Readiness::of(event)),
            });
            self.engine
                .serve(self.poll.registry(), &mut self.topics, data, now);
            if stopped {
                let _ = (&*stop).read(&mut [0u8; 16]);
                info!("master shutting down");
                return Ok(());
            }
            if self.control_hot {
                self.serve_control(CONTROL_BATCH);
                self.control_hot = readable(&self.control);
            }
            self.expire_nodes_if_due(false);
        }
    }

    /// How long an idle master may sleep: until the next node's heartbeat deadline (`None`: no
    /// limit).
    fn idle_timeout(&self) -> Option<Duration> {
        let at = self.registry.next_expiry(self.node_timeout)?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    fn expire_nodes_if_due(&mut self, idle: bool) {
        if idle || self.last_expiry_check.elapsed() >= EXPIRY_CHECK {
            self.last_expiry_check = Instant::now();
            self.expire_nodes();
            self.save_state();
        }
    }
}

/// True when `socket` has a message to receive (reading `ZMQ_EVENTS` also processes its
/// pending commands).
fn readable(socket: &zmq::Socket) -> bool {
    socket
        .get_events()
        .map(|e| e.contains(zmq::POLLIN))
        .unwrap_or(false)
}

/// Topic listeners and client connections are file descriptors; the default soft limit (often
/// 1,024) would cap the master at a few hundred topics, so raise it to the hard limit.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => debug!(limit = n, "open file limit"),
        Err(e) => warn!(error = %e, "could not raise the open file limit"),
    }
}
