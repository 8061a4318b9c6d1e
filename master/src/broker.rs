//! The master's thread: one poll over the control socket and every topic's sockets.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use zerosmq_core::message::{MAX_READY_PROBE_LEN, READY_PROBE_PREFIX};
use zerosmq_core::Topic;

use crate::registry::{Registry, TopicCounters};
use crate::sockets::{bound_port, MasterContext, PortPlan, SocketTuning, TopicSockets};
use crate::{MasterConfig, MasterError};

/// Messages forwarded from one socket before the others get a turn (a multipart message is
/// never split). Keeps one busy topic from starving the rest and the control service.
const FORWARD_BATCH: usize = 4096;

/// Control requests answered per wake-up before the topics get a turn.
const CONTROL_BATCH: usize = 64;

pub(crate) struct TopicState {
    pub sockets: TopicSockets,
    pub counters: TopicCounters,
}

/// Field order matters: sockets must close before the context terminates.
pub(crate) struct Broker {
    pub(crate) control: zmq::Socket,
    pub(crate) topics: BTreeMap<Topic, TopicState>,
    pub(crate) registry: Registry,
    pub(crate) ports: PortPlan,
    pub(crate) tuning: SocketTuning,
    pub(crate) max_topics: usize,
    /// Silence after which a node that sends heartbeats is dropped.
    pub(crate) node_timeout: Duration,
    /// Identifies this run of the master in heartbeat replies.
    pub(crate) epoch: u64,
    control_port: u16,
    /// Topic indices (in map order) that polled readable: (index, inbound, outbound).
    ready: Vec<(usize, bool, bool)>,
    pub(crate) ctx: MasterContext,
}

impl Broker {
    pub(crate) fn new(config: &MasterConfig) -> Result<Self, MasterError> {
        // Two sockets per topic, the control socket, and headroom for libzmq's own.
        let max_sockets = i32::try_from(config.max_topics.saturating_mul(2).saturating_add(16))
            .map_err(|_| MasterError::Config("max_topics too large".into()))?;
        raise_fd_limit();
        let ctx = MasterContext::new(max_sockets, config.io_threads)?;
        let control = ctx
            .socket(zmq::REP)
            .map_err(|e| MasterError::zmq("create control socket", e))?;
        control
            .set_linger(0)
            .map_err(|e| MasterError::zmq("set linger", e))?;
        let endpoint = format!("tcp://{}:{}", config.bind, config.port);
        control
            .bind(&endpoint)
            .map_err(|e| MasterError::zmq(format!("bind control socket to {endpoint}"), e))?;
        let control_port =
            bound_port(&control).map_err(|e| MasterError::zmq("read bound port", e))?;
        info!(bind = %config.bind, port = control_port, "control service listening");
        Ok(Broker {
            control,
            topics: BTreeMap::new(),
            registry: Registry::default(),
            ports: PortPlan::new(&config.bind, config.data_ports),
            tuning: SocketTuning { hwm: config.hwm },
            max_topics: config.max_topics,
            node_timeout: config.node_timeout,
            epoch: random_epoch(),
            control_port,
            ready: Vec::new(),
            ctx,
        })
    }

    pub(crate) fn control_port(&self) -> u16 {
        self.control_port
    }

    /// Serves until `stop` becomes readable (a byte written or the other end closed).
    pub(crate) fn run(&mut self, stop: &UnixStream) -> Result<(), MasterError> {
        loop {
            let (stop_now, control_ready) = match self.poll(stop) {
                Ok(flags) => flags,
                Err(zmq::Error::EINTR) => continue,
                Err(e) => return Err(MasterError::zmq("poll", e)),
            };
            if stop_now {
                let _ = (&*stop).read(&mut [0u8; 16]);
                info!("master shutting down");
                return Ok(());
            }
            self.serve_topics();
            if control_ready {
                self.serve_control(CONTROL_BATCH);
            }
            self.expire_nodes();
        }
    }

    /// Blocks until something is readable; no CPU is used while idle.
    fn poll(&mut self, stop: &UnixStream) -> Result<(bool, bool), zmq::Error> {
        let mut items = Vec::with_capacity(2 + 2 * self.topics.len());
        items.push(zmq::PollItem::from_fd(stop.as_raw_fd(), zmq::POLLIN));
        items.push(self.control.as_poll_item(zmq::POLLIN));
        for t in self.topics.values() {
            items.push(t.sockets.inbound.as_poll_item(zmq::POLLIN));
            items.push(t.sockets.outbound.as_poll_item(zmq::POLLIN));
        }
        // Sleep until something is readable or the next node's heartbeat deadline.
        let timeout = match self.registry.next_expiry(self.node_timeout) {
            None => -1,
            Some(at) => at.saturating_duration_since(Instant::now()).as_millis() as i64 + 1,
        };
        zmq::poll(&mut items, timeout)?;
        self.ready.clear();
        for (i, pair) in items[2..].chunks_exact(2).enumerate() {
            let (inbound, outbound) = (pair[0].is_readable(), pair[1].is_readable());
            if inbound || outbound {
                self.ready.push((i, inbound, outbound));
            }
        }
        Ok((items[0].is_readable(), items[1].is_readable()))
    }

    fn serve_topics(&mut self) {
        let mut ready = self.ready.iter().peekable();
        for (i, (topic, state)) in self.topics.iter_mut().enumerate() {
            let Some(&&(index, inbound, outbound)) = ready.peek() else {
                break;
            };
            if index != i {
                continue;
            }
            ready.next();
            if outbound {
                answer_probes(topic, &state.sockets.outbound);
            }
            if inbound {
                forward(topic, state);
            }
        }
    }
}

/// Copies up to a batch of messages, every frame unchanged, from the topic's SUB to its XPUB.
fn forward(topic: &Topic, state: &mut TopicState) {
    let TopicState { sockets, counters } = state;
    let mut forwarded = 0usize;
    let mut more = false;
    while more || forwarded < FORWARD_BATCH {
        let mut msg = zmq::Message::new();
        match sockets.inbound.recv(&mut msg, zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => break,
            Err(e) => {
                warn!(%topic, error = %e, "receive from publishers failed");
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
        if let Err(e) = sockets.outbound.send(msg, flags) {
            // XPUB drops at the high-water mark rather than failing; this is unexpected.
            warn!(%topic, error = %e, "send to subscribers failed");
        }
        if !more {
            counters.messages += 1;
            forwarded += 1;
        }
    }
    if forwarded > 0 {
        counters.last_activity = Some(Instant::now());
    }
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

/// A number that differs between runs of the master (std's random hasher keys, no extra crate).
fn random_epoch() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Per-topic sockets and client connections are file descriptors; the default soft limit (often
/// 1,024) would cap the master at a few hundred topics, so raise it to the hard limit.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => debug!(limit = n, "open file limit"),
        Err(e) => warn!(error = %e, "could not raise the open file limit"),
    }
}
