//! The master's thread: one run loop over the control port (`rep.rs`) and the data plane
//! (`engine/`), woken by one `mio` poll (epoll, edge-triggered).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tracing::{debug, info, warn};
use zerosmq_core::Topic;

use crate::engine::{Auth, Engine, Readiness, TopicPlane};
use crate::metrics::Metrics;
use crate::ports::PortPlan;
use crate::registry::{Registry, TopicCounters};
use crate::rep::ControlPort;
use crate::{MasterConfig, MasterError};

/// Control requests answered per wake-up before the topics get a turn.
const CONTROL_BATCH: usize = 64;

/// How often, at most, silent nodes are looked for while the forwarder is busy.
const EXPIRY_CHECK: Duration = Duration::from_millis(100);

/// Tokens of the broker's own descriptors; the engine's tokens never take these.
pub(crate) const TOKEN_STOP: Token = Token(usize::MAX);
pub(crate) const TOKEN_CONTROL: Token = Token(usize::MAX - 1);
// Control connections take the tokens below these (`rep::index`).

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
    pub(crate) control: ControlPort,
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
    pub(crate) poll: Poll,
    engine: Engine,
    last_expiry_check: Instant,
    pub(crate) security: crate::auth::Security,
    pub(crate) service: crate::control::ControlService,
    /// Counters outside the topics, read from other threads (`--web`).
    pub(crate) metrics: Arc<Metrics>,
}

impl Broker {
    pub(crate) fn new(config: &MasterConfig) -> Result<Self, MasterError> {
        raise_fd_limit();
        let security = crate::auth::Security::start(config)?;
        let metrics = Arc::new(Metrics::new(security.mechanism()));
        let engine = Engine::new(config, &security, metrics.open.clone())?;
        let poll = Poll::new()?;
        // Admitted as the data ports admit (passwords, CURVE keys); the ACL applies per request.
        let control = ControlPort::bind(
            &config.bind,
            config.port,
            Auth::new(&security),
            config.zmtp_heartbeat,
            poll.registry(),
        )
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("bind the control port {}:{}: {e}", config.bind, config.port),
            )
        })?;
        let control_port = control.port();
        info!(bind = %config.bind, port = control_port, "control service listening");
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
            poll,
            engine,
            last_expiry_check: Instant::now(),
            security,
            service: crate::control::ControlService::new(),
            metrics,
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
        self.control.port()
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
            let timeout = if self.control.is_hot() || self.engine.has_backlog() {
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
            let control = &mut self.control;
            let data = events.iter().filter_map(|event| match event.token() {
                TOKEN_STOP => {
                    stopped = true;
                    None
                }
                TOKEN_CONTROL => {
                    control.on_listener();
                    None
                }
                token => match crate::rep::index(token) {
                    Some(i) => {
                        let r = Readiness::of(event);
                        control.on_event(i, r.read, r.write);
                        None
                    }
                    None => Some(Readiness::of(event)),
                },
            });
            self.engine
                .serve(self.poll.registry(), &mut self.topics, data, now);
            if stopped {
                let _ = (&*stop).read(&mut [0u8; 16]);
                info!("master shutting down");
                return Ok(());
            }
            self.serve_control(CONTROL_BATCH, now);
            self.control.sweep(now);
            self.expire_nodes_if_due(false);
        }
    }

    /// How long an idle master may sleep: until the next node's heartbeat deadline or the
    /// control port's next sweep.
    fn idle_timeout(&self) -> Option<Duration> {
        let sweep = self.control.next_sweep();
        let at = match self.registry.next_expiry(self.node_timeout) {
            Some(at) => at.min(sweep),
            None => sweep,
        };
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

/// Topic listeners and client connections are file descriptors; the default soft limit (often
/// 1,024) would cap the master at a few hundred topics, so raise it to the hard limit.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => debug!(limit = n, "open file limit"),
        Err(e) => warn!(error = %e, "could not raise the open file limit"),
    }
}
