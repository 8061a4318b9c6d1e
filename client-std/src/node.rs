//! A node: a name and a connection to the master's control service.

use std::sync::atomic::AtomicU16;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zerosmq_core::control::{ControlReply, ControlRequest, Encoding};
use zerosmq_core::limits::TYPED_REQUEST_BUF_LEN;
use zerosmq_core::{decode_reply, NodeName, Topic};

use bytes::Bytes;

use crate::transport::control::{ControlConn, ControlError};
use crate::transport::io_thread::IoHandle;
use crate::transport::mechanism::Mechanism;
use crate::transport::subscriber_link::SubscriberLink;
use crate::{Error, OwnedNamedType, Publisher, Result, Subscriber};

/// Environment variable with the master's address (like `ROS_MASTER_URI`).
pub const MASTER_ENV: &str = "ZEROSMQ_MASTER";

/// Environment variable with the master's CURVE public key (Z85, 40 characters): when set and
/// the builder was given no mechanism, the node uses CURVE (feature `curve`).
pub const CURVE_SERVER_KEY_ENV: &str = "ZEROSMQ_CURVE_SERVER_KEY";

/// Environment variable with the path of this node's CURVE key file (public key on the first
/// line, secret key on the second, Z85, as `zerosmq-master --curve-keygen` writes it); without
/// it a CURVE node makes an ephemeral key pair.
pub const CURVE_KEYS_ENV: &str = "ZEROSMQ_CURVE_KEYS";

/// Master address when neither an argument nor [`MASTER_ENV`] gives one.
pub const DEFAULT_MASTER: &str = "tcp://127.0.0.1:5555";

/// How often a node tells the master it is alive, by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a node waits for its name to be released by a crashed predecessor, by default.
pub const DEFAULT_CLAIM_WAIT: Duration = Duration::from_secs(6);

/// How long a control request may wait for the master by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Builds a [`Node`].
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    name: String,
    master: Option<String>,
    timeout: Duration,
    hwm: usize,
    heartbeat: Option<Duration>,
    claim_wait: Duration,
    plain: Option<(String, String)>,
    #[cfg(feature = "curve")]
    curve: Option<(String, Option<crate::curve::CurveKeyPair>)>,
}

impl NodeBuilder {
    /// Master address (`tcp://HOST:PORT`, `HOST:PORT` or `HOST`); overrides [`MASTER_ENV`].
    pub fn master(mut self, address: impl Into<String>) -> Self {
        self.master = Some(address.into());
        self
    }

    /// How long control requests wait for the master (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// High-water mark of data connections, in messages (default 10,000; 0 counts as 1): a
    /// publisher drops what is published beyond this many queued messages while the master does
    /// not read, a subscriber parks at most this many while its application does not receive.
    pub fn hwm(mut self, hwm: usize) -> Self {
        self.hwm = hwm.max(1);
        self
    }

    /// How often the node tells the master it is alive, once it publishes or subscribes (default
    /// [`DEFAULT_HEARTBEAT`]; `None` turns heartbeats off, and with them crash detection and
    /// re-registration after a master restart).
    pub fn heartbeat(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat = interval;
        self
    }

    /// How long the first publish or subscribe waits for the node name when the master says
    /// another live node holds it (default [`DEFAULT_CLAIM_WAIT`], longer than the master's
    /// default node timeout): a node restarted after a crash gets its name back once the master
    /// has timed out the crashed instance; a real duplicate gets `name-in-use` after the wait.
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }

    /// Authenticate with PLAIN (user name and password) on every socket, for a master started
    /// with `--passwords`.
    pub fn plain(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.plain = Some((user.into(), password.into()));
        self
    }

    /// Encrypts and authenticates every connection (control and data) with CURVE, for a master
    /// started with `--curve-keys`. `server_public_key` is the master's public key (Z85, 40
    /// characters, the first line of its key file); `client_keys` is this node's key pair (see
    /// [`curve::load_keys`](crate::curve::load_keys)), which a master with `--curve-clients`
    /// must list. `None` makes an ephemeral pair, which only a master without
    /// `--curve-clients` accepts. Overrides [`CURVE_SERVER_KEY_ENV`] and [`CURVE_KEYS_ENV`].
    #[cfg(feature = "curve")]
    pub fn curve(
        mut self,
        server_public_key: impl Into<String>,
        client_keys: Option<crate::curve::CurveKeyPair>,
    ) -> Self {
        self.curve = Some((server_public_key.into(), client_keys));
        self
    }

    /// The mechanism of every connection: what the builder was given, else CURVE from the
    /// environment, else NULL.
    fn mechanism(&self) -> Result<Mechanism> {
        #[cfg(feature = "curve")]
        if let Some((server, keys)) = &self.curve {
            return crate::curve::mechanism(server, keys.clone());
        }
        if self.plain.is_some() {
            return Ok(Mechanism::from_plain(self.plain.as_ref()));
        }
        let env = |name| std::env::var(name).ok().filter(|s| !s.is_empty());
        match (env(CURVE_SERVER_KEY_ENV), env(CURVE_KEYS_ENV)) {
            (None, None) => Ok(Mechanism::Null),
            (None, Some(path)) => Err(Error::KeyFile {
                path: path.into(),
                reason: format!("{CURVE_KEYS_ENV} is set without {CURVE_SERVER_KEY_ENV}"),
            }),
            #[cfg(feature = "curve")]
            (Some(server), keys) => {
                let keys = keys.map(crate::curve::load_keys).transpose()?;
                crate::curve::mechanism(&server, keys)
            }
            #[cfg(not(feature = "curve"))]
            (Some(_), _) => Err(Error::Unsupported(
                "CURVE: ZEROSMQ_CURVE_SERVER_KEY is set, but this build of the zerosmq library \
                 has no `curve` feature",
            )),
        }
    }

    /// Creates the node. No request is sent yet: the master is first asked when the node
    /// publishes, subscribes or lists.
    pub fn connect(self) -> Result<Node> {
        let name = NodeName::new(&self.name)?;
        let mechanism = self.mechanism()?;
        let master = self
            .master
            .or_else(|| std::env::var(MASTER_ENV).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| DEFAULT_MASTER.to_owned());
        let (host, port) = parse_master(&master)?;
        let control = ControlConn::new(host.clone(), port, mechanism.clone());
        Ok(Node {
            inner: Arc::new(NodeInner {
                name,
                control_endpoint: format!("tcp://{host}:{port}"),
                control_port: port,
                host,
                control: Mutex::new(control),
                mechanism,
                timeout: self.timeout,
                hwm: self.hwm,
                heartbeat: self.heartbeat,
                claim_wait: self.claim_wait,
                session: zerosmq_core::random::random_u64(),
                liveness: Mutex::new(LivenessState::default()),
                io: Mutex::new(None),
            }),
        })
    }
}

/// Splits `tcp://host:port`, `host:port` or `host` (port 5555).
fn parse_master(address: &str) -> Result<(String, u16)> {
    let bad = || Error::InvalidMaster(address.to_owned());
    let rest = address.strip_prefix("tcp://").unwrap_or(address);
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    // `[::1]:5555` keeps its brackets in the host part, which is what libzmq endpoints want.
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
        }
        Some(_) => Err(bad()),
        None => Ok((rest.to_owned(), zerosmq_core::limits::DEFAULT_CONTROL_PORT)),
    }
}

pub(crate) struct NodeInner {
    pub(crate) name: NodeName,
    pub(crate) host: String,
    control_endpoint: String,
    control_port: u16,
    /// The REQ connection of the callers' requests (the I/O thread has its own).
    control: Mutex<ControlConn>,
    /// How native connections authenticate.
    mechanism: Mechanism,
    pub(crate) timeout: Duration,
    /// At least 1.
    pub(crate) hwm: usize,
    heartbeat: Option<Duration>,
    claim_wait: Duration,
    /// Random per node instance: lets the master tell a restarted node from a duplicate.
    session: u64,
    liveness: Mutex<LivenessState>,
    /// The node's I/O thread (see `transport::io_thread`), started with the first publisher
    /// or subscriber.
    io: Mutex<Option<Arc<IoHandle>>>,
}

impl Drop for NodeInner {
    /// The I/O thread ends with the node (every publisher and subscriber holds the node, so
    /// none is left).
    fn drop(&mut self) {
        if let Some(io) = self.io.get_mut().ok().and_then(|io| io.take()) {
            io.stop();
        }
    }
}

/// What the heartbeat knows and re-registers after a master restart.
#[derive(Default)]
struct LivenessState {
    /// Heartbeats run in the I/O thread (started by the first publish or subscribe).
    started: bool,
    /// Every grant this node holds, to ask again after a master restart.
    grants: Vec<Grant>,
}

/// One publish or subscribe grant; the port cell tells the socket owner to reconnect, and the
/// I/O thread (which owns native publishers' connections) is poked to look.
pub(crate) struct Grant {
    pub(crate) request: ControlRequest,
    pub(crate) port: Arc<AtomicU16>,
    pub(crate) waker: Option<Arc<IoHandle>>,
}

/// A data connection's grant: the port cell, which follows the grant when the master hands
/// out a new port (after a restart without its state file); the link follows it by itself.
pub(crate) struct DataLink {
    cell: Arc<AtomicU16>,
}

impl DataLink {
    /// Registers `request` with the master; `waker` is woken when the granted port changes.
    pub(crate) fn open(
        node: &Arc<NodeInner>,
        request: ControlRequest,
        waker: Option<Arc<IoHandle>>,
    ) -> Result<Self> {
        let cell = node.register(request, waker)?;
        Ok(DataLink { cell })
    }

    /// The shared port cell.
    pub(crate) fn cell(&self) -> Arc<AtomicU16> {
        self.cell.clone()
    }
}

impl NodeInner {
    /// Registers a publish or subscribe grant: claims the node name with a first heartbeat (so a
    /// duplicate name fails here, with the master's reason), asks for the port, and remembers the
    /// grant for re-registration. Returns the shared port cell.
    pub(crate) fn register(
        self: &Arc<Self>,
        request: ControlRequest,
        waker: Option<Arc<IoHandle>>,
    ) -> Result<Arc<AtomicU16>> {
        self.start_heartbeat()?;
        let port = Arc::new(AtomicU16::new(self.grant(&request)?));
        let mut live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        live.grants.push(Grant {
            request,
            port: port.clone(),
            waker,
        });
        Ok(port)
    }

    /// Forgets a grant (after its stop request).
    pub(crate) fn forget(&self, request: &ControlRequest) {
        let mut live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        live.grants.retain(|g| &g.request != request);
    }

    pub(crate) fn heartbeat_request(&self) -> ControlRequest {
        ControlRequest::Heartbeat {
            node: self.name.clone(),
            session: self.session,
        }
    }

    /// Claims the node name with a first heartbeat (asked again while another live node holds
    /// it, see [`NodeBuilder::claim_wait`]) and starts heartbeats; both run in the I/O thread.
    fn start_heartbeat(self: &Arc<Self>) -> Result<()> {
        let Some(interval) = self.heartbeat else {
            return Ok(());
        };
        let mut live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        if live.started {
            return Ok(());
        }
        let answer = self.io()?.claim(interval, self.claim_wait).recv();
        answer.map_err(|_| Error::Io(std::io::Error::other("the node's I/O thread ended")))??;
        live.started = true;
        Ok(())
    }

    /// Every grant, to ask for again after a master restart.
    pub(crate) fn grants(&self) -> Vec<(ControlRequest, Arc<AtomicU16>, Option<Arc<IoHandle>>)> {
        let live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        live.grants
            .iter()
            .map(|g| (g.request.clone(), g.port.clone(), g.waker.clone()))
            .collect()
    }
}

impl NodeInner {
    /// Sends one request, waits for its reply, and hands the decoded reply to `read`.
    pub(crate) fn request<T>(
        &self,
        req: &ControlRequest,
        timeout: Duration,
        read: impl FnOnce(ControlReply<'_>) -> Result<T>,
    ) -> Result<T> {
        let reply = self.raw_request(&self.encode(req)?, timeout)?;
        self.read_reply(req, &reply, read)
    }

    /// `req` as sent to the master.
    pub(crate) fn encode(&self, req: &ControlRequest) -> Result<Vec<u8>> {
        let mut buf = [0u8; TYPED_REQUEST_BUF_LEN];
        Ok(req.encode(Encoding::Binary, &mut buf)?.to_vec())
    }

    /// Decodes the reply to `req`: the master's refusal as [`Error::Refused`], else `read`.
    pub(crate) fn read_reply<T>(
        &self,
        req: &ControlRequest,
        reply: &[u8],
        read: impl FnOnce(ControlReply<'_>) -> Result<T>,
    ) -> Result<T> {
        match decode_reply(req.reply_kind(), reply)? {
            ControlReply::Error(e) => Err(Error::Refused {
                code: e.code,
                detail: e.detail.to_owned(),
            }),
            other => read(other),
        }
    }

    /// The error of a control request that got no reply within `after`.
    pub(crate) fn control_error(&self, e: ControlError, after: Duration) -> Error {
        let master = self.control_endpoint.clone();
        match e {
            ControlError::Timeout => Error::Timeout { master, after },
            ControlError::AuthFailed => self.auth_failed(),
            ControlError::ServerKey => Error::WrongServerKey { master },
        }
    }

    /// Sends an encoded request on the callers' control connection and waits for the reply.
    pub(crate) fn raw_request(&self, request: &[u8], timeout: Duration) -> Result<Bytes> {
        let mut conn = self.control.lock().unwrap_or_else(|e| e.into_inner());
        conn.request(request, timeout)
            .map_err(|e| self.control_error(e, timeout))
    }

    /// The node's I/O thread (see `transport::io_thread`), started on first use.
    pub(crate) fn io(self: &Arc<Self>) -> Result<Arc<IoHandle>> {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(io) = io.as_ref() {
            return Ok(io.clone());
        }
        // The thread's own control connection, resolved here: resolving may block.
        let mut control =
            ControlConn::new(self.host.clone(), self.control_port, self.mechanism.clone());
        control.resolve();
        let started = IoHandle::start(Arc::downgrade(self), self.name.as_str(), Some(control))?;
        *io = Some(started.clone());
        Ok(started)
    }

    /// Hands a native subscriber link to the I/O thread, which answers its master's PINGs
    /// while the application does not receive.
    pub(crate) fn keep(self: &Arc<Self>, link: &Arc<Mutex<SubscriberLink>>) -> Result<()> {
        self.io()?.keep(link, Arc::downgrade(link), self.hwm);
        Ok(())
    }

    /// The error of a connection whose credentials (PLAIN) or key (CURVE) the master refused.
    pub(crate) fn auth_failed(&self) -> Error {
        let master = self.control_endpoint.clone();
        if self.mechanism.is_curve() {
            Error::CurveRefused { master }
        } else {
            Error::AuthFailed { master }
        }
    }

    /// How native connections authenticate.
    pub(crate) fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// Asks for a port: `REQUEST_PUB` / `REQUEST_SUB`.
    pub(crate) fn grant(&self, req: &ControlRequest) -> Result<u16> {
        self.request(req, self.timeout, |reply| match reply {
            ControlReply::Granted { port } => Ok(port),
            _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
        })
    }

    /// `REQUEST_STOP_PUB` / `REQUEST_STOP_SUB`.
    pub(crate) fn stop(&self, req: &ControlRequest, timeout: Duration) -> Result<()> {
        self.request(req, timeout, |reply| match reply {
            ControlReply::Done => Ok(()),
            _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
        })
    }
}

/// Who uses a topic and how much it carried (owned form of [`zerosmq_core::TopicInfo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic: String,
    pub publish_port: u16,
    pub subscribe_port: u16,
    pub publishers: Vec<String>,
    pub subscribers: Vec<String>,
    pub messages: u64,
    pub bytes: u64,
    /// Times a subscriber fell a high-water mark behind and started missing messages.
    pub overflows: u64,
    /// Connections the master refused on the topic's ports: a connection limit was reached.
    pub refused: u64,
    pub idle: Option<Duration>,
    /// The schema of a typed topic (declared by its first typed publisher).
    pub schema: Option<OwnedNamedType>,
}

/// What a node publishes and subscribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub node: String,
    pub publishes: Vec<String>,
    pub subscribes: Vec<String>,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A node: publishes and subscribes through a master. Cheap to clone; share it across threads.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .field("master", &self.inner.control_endpoint)
            .finish()
    }
}

impl Node {
    /// A node named `name`, talking to the master given by [`MASTER_ENV`] or [`DEFAULT_MASTER`].
    pub fn connect(name: &str) -> Result<Node> {
        Node::builder(name).connect()
    }

    /// Options: master address, timeouts.
    pub fn builder(name: &str) -> NodeBuilder {
        NodeBuilder {
            name: name.to_owned(),
            master: None,
            timeout: DEFAULT_TIMEOUT,
            hwm: 10_000,
            heartbeat: Some(DEFAULT_HEARTBEAT),
            claim_wait: DEFAULT_CLAIM_WAIT,
            plain: None,
            #[cfg(feature = "curve")]
            curve: None,
        }
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        self.inner.name.as_str()
    }

    /// The master's control endpoint.
    pub fn master(&self) -> &str {
        &self.inner.control_endpoint
    }

    /// Registers as a publisher of `topic` and connects to the master's socket for it.
    /// Call [`Publisher::wait_ready`] before the first message that must not be lost.
    pub fn advertise(&self, topic: &str) -> Result<Publisher> {
        Publisher::open(self.inner.clone(), Topic::new(topic)?, None)
    }

    /// [`advertise`](Self::advertise) declaring the topic's schema, derived from `T`
    /// (`#[derive(Serialize, Schema)]`): the master keeps it for the topic, shows it in
    /// `topic info`, hands it to subscribers ([`Subscriber::schema`]) and refuses a publisher
    /// declaring another ([`ErrorCode::SchemaMismatch`](crate::ErrorCode::SchemaMismatch)).
    /// Publish with [`Publisher::publish_value`] (postcard of `T`).
    pub fn advertise_typed<T: serde::Serialize + postcard_schema::Schema + ?Sized>(
        &self,
        topic: &str,
    ) -> Result<Publisher> {
        let topic = Topic::new(topic)?;
        Publisher::open(self.inner.clone(), topic, Some(schema_bytes(T::SCHEMA)?))
    }

    /// [`advertise_typed`](Self::advertise_typed) with a schema known only at run time: `schema`
    /// is the encoded form the master keeps (postcard of an [`OwnedNamedType`], as another
    /// master's `topic_schema` returns it re-encoded). For relays such as the bridge, which
    /// carry typed topics without knowing their types; the master checks the bytes as it checks
    /// a typed publisher's (`invalid-schema`, `schema-mismatch`).
    pub fn advertise_with_schema(&self, topic: &str, schema: &[u8]) -> Result<Publisher> {
        let topic = Topic::new(topic)?;
        let schema = zerosmq_core::control::SchemaBytes::from_slice(schema).map_err(|_| {
            Error::SchemaTooLarge {
                len: schema.len(),
                max: zerosmq_core::limits::MAX_SCHEMA_LEN,
            }
        })?;
        Publisher::open(self.inner.clone(), topic, Some(schema))
    }

    /// The schema of `topic`; `None` when it is untyped.
    pub fn topic_schema(&self, topic: &str) -> Result<Option<OwnedNamedType>> {
        let req = ControlRequest::TopicSchema {
            topic: Topic::new(topic)?,
        };
        self.inner.request(&req, self.inner.timeout, |r| match r {
            ControlReply::Schema(bytes) => parse_schema(bytes),
            _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
        })
    }

    /// Registers as a subscriber of `topic` and connects to the master's socket for it.
    /// Call [`Subscriber::wait_ready`] to know that every message published from then on arrives.
    pub fn subscribe(&self, topic: &str) -> Result<Subscriber> {
        Subscriber::open(self.inner.clone(), Topic::new(topic)?)
    }

    /// Topics that have a publisher.
    pub fn topics(&self) -> Result<Vec<String>> {
        self.inner.request(
            &ControlRequest::ListTopics {
                node: Some(self.inner.name.clone()),
            },
            self.inner.timeout,
            |r| match r {
                ControlReply::Topics(s) => Ok(split_list(s)),
                _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
            },
        )
    }

    /// Nodes that publish or subscribe something.
    pub fn nodes(&self) -> Result<Vec<String>> {
        self.inner.request(
            &ControlRequest::ListNodes,
            self.inner.timeout,
            |r| match r {
                ControlReply::Nodes(s) => Ok(split_list(s)),
                _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
            },
        )
    }

    /// The topic graph as Graphviz DOT source.
    pub fn graph(&self) -> Result<String> {
        self.inner
            .request(&ControlRequest::Graph, self.inner.timeout, |r| match r {
                ControlReply::Graph(s) => Ok(s.to_owned()),
                _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
            })
    }

    /// Publishers, subscribers, ports and counters of `topic`.
    pub fn topic_info(&self, topic: &str) -> Result<TopicInfo> {
        let req = ControlRequest::TopicInfo {
            topic: Topic::new(topic)?,
        };
        self.inner.request(&req, self.inner.timeout, |r| match r {
            ControlReply::TopicInfo(t) => Ok(TopicInfo {
                topic: t.topic.to_owned(),
                publish_port: t.publish_port,
                subscribe_port: t.subscribe_port,
                publishers: split_list(t.publishers),
                subscribers: split_list(t.subscribers),
                messages: t.messages,
                bytes: t.bytes,
                overflows: t.overflows,
                refused: t.refused,
                idle: t.idle_ms.map(Duration::from_millis),
                schema: parse_schema(t.schema)?,
            }),
            _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
        })
    }

    /// What `node` publishes and subscribes.
    pub fn node_info(&self, node: &str) -> Result<NodeInfo> {
        let req = ControlRequest::NodeInfo {
            node: NodeName::new(node)?,
        };
        self.inner.request(&req, self.inner.timeout, |r| match r {
            ControlReply::NodeInfo(n) => Ok(NodeInfo {
                node: n.node.to_owned(),
                publishes: split_list(n.publishes),
                subscribes: split_list(n.subscribes),
            }),
            _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
        })
    }
}

/// `schema` as a typed publish request carries it: postcard of the owned form's layout.
fn schema_bytes(
    schema: &postcard_schema::schema::NamedType,
) -> Result<zerosmq_core::control::SchemaBytes> {
    let bytes = postcard::to_stdvec(schema)?;
    zerosmq_core::control::SchemaBytes::from_slice(&bytes).map_err(|_| Error::SchemaTooLarge {
        len: bytes.len(),
        max: zerosmq_core::limits::MAX_SCHEMA_LEN,
    })
}

/// A schema from the master (empty: untyped).
pub(crate) fn parse_schema(bytes: &[u8]) -> Result<Option<OwnedNamedType>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    Ok(Some(postcard::from_bytes(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses() {
        assert_eq!(
            parse_master("tcp://10.0.0.2:6000").unwrap(),
            ("10.0.0.2".into(), 6000)
        );
        assert_eq!(
            parse_master("robot.local:7").unwrap(),
            ("robot.local".into(), 7)
        );
        assert_eq!(parse_master("robot").unwrap(), ("robot".into(), 5555));
        assert_eq!(
            parse_master("tcp://[::1]:5555").unwrap(),
            ("[::1]".into(), 5555)
        );
        for bad in ["", "tcp://", "tcp://h:x", "ipc:///tmp/x", ":5555"] {
            assert!(parse_master(bad).is_err(), "{bad}");
        }
    }
}
