//! # zerosmq-master
//!
//! The zerosmq master: a control service (a ZeroMQ REP over its own ZMTP, the original's text protocol and our binary
//! one) that hands out two ports per topic (publishers connect to one, where the master is their
//! SUB; subscribers to the other, where it is their XPUB), and a forwarder that copies every
//! message from the topic's publishers to its subscribers, speaking ZMTP itself on its own
//! connections. It also keeps the node/topic graph and serves it as Graphviz DOT.
//!
//! Run it as a binary (`zerosmq-master --port 5555`) or in-process:
//!
//! ```no_run
//! let master = zerosmq_master::Master::spawn(zerosmq_master::MasterConfig {
//!     port: 0, // any free port
//!     ..Default::default()
//! })?;
//! println!("control service on {}", master.control_endpoint());
//! master.shutdown()?;
//! # Ok::<(), zerosmq_master::MasterError>(())
//! ```
#![deny(unsafe_code)]

pub mod auth;
mod broker;
mod control;
mod engine;
pub mod graph;
pub mod keys;
mod metrics;
mod ports;
mod ratelimit;
pub mod registry;
mod rep;
mod schema;
// The one unsafe call left in the master: glibc's mallopt (see its SAFETY comment); the rest of
// the crate denies unsafe code.
#[allow(unsafe_code)]
mod replies;
pub mod state;

pub use metrics::MetricsSnapshot;

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// How the master binds and behaves.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Address the control and data sockets bind to (`0.0.0.0`: every interface, as the original).
    pub bind: String,
    /// Control port; 0 picks a free one (see [`MasterHandle::control_port`]).
    pub port: u16,
    /// Inclusive port range for per-topic sockets; `None` lets the OS pick free ports.
    pub data_ports: Option<(u16, u16)>,
    /// High-water mark per subscriber connection, in messages. A subscriber that falls this far
    /// behind misses new messages instead of stalling the others; 0 sets no limit (as libzmq's).
    pub hwm: u32,
    /// Most topics at once; past it, publish and subscribe requests get a `limit-reached` error.
    pub max_topics: usize,
    /// A node that sends heartbeats (every std and embedded node) and stays silent this long is
    /// dropped from node lists, topics and the graph; its name is then free for a new instance.
    pub node_timeout: std::time::Duration,
    /// Where the master keeps its topics, ports and node roles across restarts (see
    /// [`state`]); `None` keeps nothing.
    pub state_file: Option<std::path::PathBuf>,
    /// Largest message (one frame) a peer may send on a data socket; a peer that sends more is
    /// disconnected and the others go on.
    pub max_message_size: usize,
    /// Most nodes registered at once.
    pub max_nodes: usize,
    /// Most publish and subscribe grants one node may hold; a request past it gets a
    /// `limit-reached` error (`--max-grants-per-node`).
    pub max_grants_per_node: usize,
    /// PLAIN `user:password` file: every socket then requires authentication (see [`auth`]).
    pub passwords: Option<std::path::PathBuf>,
    /// Access list: which users (or nodes) may publish and subscribe which topics (see [`auth`]).
    pub acl: Option<std::path::PathBuf>,
    /// ZMTP PING interval on every connection; a connection silent for three intervals after a
    /// PING is closed (half-open TCP). Pings cost idle CPU on thousands of connections: the
    /// default 10 s keeps a master with 1,000 topics under 1 % of a core, and detects a dead
    /// path in about 40 s.
    pub zmtp_heartbeat: std::time::Duration,
    /// CURVE key file (public and secret key, Z85, see [`keys`]): every topic port then
    /// encrypts, and clients must know the public key. The control service stays unencrypted
    /// (its libzmq has no CURVE).
    pub curve_keys: Option<std::path::PathBuf>,
    /// Directory of admitted CURVE client keys (`NAME.pub`, one Z85 public key each); `NAME` is
    /// the client's name in the ACL. `None`: any client that knows the master's key.
    pub curve_clients: Option<std::path::PathBuf>,
    /// Nodes of the master's own process (the Foxglove endpoint, the web page), by name: with
    /// PLAIN or CURVE each gets credentials made at start that admit it under that name (see
    /// [`MasterHandle::internal_credentials`]), so a secured master serves them and the ACL
    /// applies to them by name.
    pub internal_nodes: Vec<String>,
    /// When events have been arriving less than this apart, the master polls
    /// for up to this long before it sleeps, which saves waking a sleeping thread (most of a
    /// round trip on a VM). Sparse traffic and an idle master never spin; zero turns spinning
    /// off.
    pub spin: std::time::Duration,
    /// Most data connections at once over all topics (as mosquitto's
    /// `max_connections`); also kept below what the descriptor limit allows. A connection past
    /// it is accepted and closed at once, with a rate-limited warning.
    pub max_connections: usize,
    /// Most data connections on one topic (publishers and subscribers).
    pub max_topic_connections: usize,
    /// Most subscriptions one subscriber connection may hold; a peer that sends
    /// more is dropped.
    pub max_subscriptions: usize,
    /// A ZMTP 3.0 publisher connection silent this long (3.0 has no heartbeat to
    /// tell it alive), or a subscriber connection holding no subscription this long, is closed.
    pub idle_timeout: std::time::Duration,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            bind: "0.0.0.0".into(),
            port: zerosmq_core::limits::DEFAULT_CONTROL_PORT,
            data_ports: None,
            hwm: 10_000,
            max_topics: 4_000,
            node_timeout: std::time::Duration::from_secs(5),
            state_file: None,
            max_message_size: 64 << 20,
            max_nodes: 10_000,
            max_grants_per_node: 1_000,
            passwords: None,
            acl: None,
            curve_keys: None,
            curve_clients: None,
            internal_nodes: Vec::new(),
            zmtp_heartbeat: std::time::Duration::from_secs(10),
            spin: std::time::Duration::from_micros(50),
            max_connections: 10_000,
            max_topic_connections: 1_000,
            max_subscriptions: 1_000,
            idle_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Why the master could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the master thread panicked")]
    Panicked,
}

/// A master running in its own thread.
pub struct Master;

impl Master {
    /// Binds the control socket, starts serving in a new thread and returns once the control
    /// port is bound, so a client can connect right away.
    pub fn spawn(config: MasterConfig) -> Result<MasterHandle, MasterError> {
        if let Some((low, high)) = config.data_ports {
            if low > high || low == 0 {
                return Err(MasterError::Config(format!(
                    "data port range {low}-{high} is empty"
                )));
            }
        }
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let bind = config.bind.clone();
        let thread = std::thread::Builder::new()
            .name("zerosmq-master".into())
            .spawn(move || {
                let mut broker = match broker::Broker::new(&config) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                let _ = ready_tx.send(Ok((
                    broker.control_port(),
                    broker.metrics.clone(),
                    broker.security.internal.clone(),
                )));
                broker.run(&wake_rx)
            })?;
        match ready_rx.recv() {
            Ok(Ok((control_port, metrics, internal))) => Ok(MasterHandle {
                control_port,
                bind,
                metrics: MasterMetrics(metrics),
                internal,
                stop: wake_tx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(thread.join().map_or(MasterError::Panicked, |r| {
                r.err().unwrap_or(MasterError::Panicked)
            })),
        }
    }
}

/// Controls a running master; dropping it shuts the master down.
pub struct MasterHandle {
    control_port: u16,
    bind: String,
    stop: UnixStream,
    thread: Option<JoinHandle<Result<(), MasterError>>>,
    metrics: MasterMetrics,
    internal: Vec<(String, auth::InternalCredentials)>,
}

/// Reads a master's counters from any thread, also after its [`MasterHandle`] is gone.
#[derive(Debug, Clone)]
pub struct MasterMetrics(std::sync::Arc<metrics::Metrics>);

impl MasterMetrics {
    /// The counters now (the topics' own are in `TOPIC_INFO`).
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.0.snapshot()
    }
}

impl MasterHandle {
    /// The credentials the master made for its own node `name` (one of
    /// [`MasterConfig::internal_nodes`]); `None` on a master without PLAIN or CURVE.
    pub fn internal_credentials(&self, name: &str) -> Option<&auth::InternalCredentials> {
        self.internal
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    /// The master's counters outside the topics (connections, control requests, uptime).
    pub fn metrics(&self) -> MasterMetrics {
        self.metrics.clone()
    }

    /// The control port the master bound.
    pub fn control_port(&self) -> u16 {
        self.control_port
    }

    /// An endpoint a client on this host connects to (`tcp://127.0.0.1:PORT` when bound to all
    /// interfaces).
    pub fn control_endpoint(&self) -> String {
        let host = match self.bind.as_str() {
            "0.0.0.0" | "*" => "127.0.0.1",
            other => other,
        };
        format!("tcp://{host}:{}", self.control_port)
    }

    /// Something another thread (a signal handler thread) can use to stop the master.
    pub fn stopper(&self) -> std::io::Result<MasterStopper> {
        Ok(MasterStopper(self.stop.try_clone()?))
    }

    /// Stops the master and waits for its thread; sockets are closed without lingering.
    pub fn shutdown(mut self) -> Result<(), MasterError> {
        self.stop_and_join()
    }

    /// Waits until the master stops (by a [`MasterStopper`] or an error).
    pub fn wait(mut self) -> Result<(), MasterError> {
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| MasterError::Panicked)?,
            None => Ok(()),
        }
    }

    fn stop_and_join(&mut self) -> Result<(), MasterError> {
        let _ = (&self.stop).write_all(&[1]);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| MasterError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for MasterHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Stops a master from another thread.
pub struct MasterStopper(UnixStream);

impl MasterStopper {
    pub fn stop(&self) {
        let _ = (&self.0).write_all(&[1]);
    }
}
