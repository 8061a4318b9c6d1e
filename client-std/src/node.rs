//! A node: a name and a connection to the master's control service.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use zerosmq_core::control::{ControlReply, ControlRequest, Encoding};
use zerosmq_core::limits::CONTROL_REQUEST_BUF_LEN;
use zerosmq_core::{decode_reply, NodeName, Topic};

use crate::{Error, Publisher, Result, Subscriber};

/// Environment variable with the master's address (like `ROS_MASTER_URI`).
pub const MASTER_ENV: &str = "ZEROSMQ_MASTER";

/// Master address when neither an argument nor [`MASTER_ENV`] gives one.
pub const DEFAULT_MASTER: &str = "tcp://127.0.0.1:5555";

/// How long a control request may wait for the master by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Builds a [`Node`].
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    name: String,
    master: Option<String>,
    timeout: Duration,
    hwm: i32,
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

    /// High-water mark of data sockets, in messages (default 10,000).
    pub fn hwm(mut self, hwm: i32) -> Self {
        self.hwm = hwm;
        self
    }

    /// Creates the node. No request is sent yet: the master is first asked when the node
    /// publishes, subscribes or lists.
    pub fn connect(self) -> Result<Node> {
        let name = NodeName::new(&self.name)?;
        let master = self
            .master
            .or_else(|| std::env::var(MASTER_ENV).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| DEFAULT_MASTER.to_owned());
        let (host, port) = parse_master(&master)?;
        let ctx = zmq::Context::new();
        Ok(Node {
            inner: Arc::new(NodeInner {
                name,
                control_endpoint: format!("tcp://{host}:{port}"),
                host,
                ctx,
                control: Mutex::new(None),
                timeout: self.timeout,
                hwm: self.hwm,
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
    pub(crate) ctx: zmq::Context,
    /// The REQ socket, made on first use and remade after a timeout (a REQ socket that missed
    /// its reply cannot send again).
    control: Mutex<Option<zmq::Socket>>,
    pub(crate) timeout: Duration,
    pub(crate) hwm: i32,
}

impl NodeInner {
    /// Sends one request, waits for its reply, and hands the decoded reply to `read`.
    pub(crate) fn request<T>(
        &self,
        req: &ControlRequest,
        timeout: Duration,
        read: impl FnOnce(ControlReply<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut buf = [0u8; CONTROL_REQUEST_BUF_LEN];
        let bytes = req.encode(Encoding::Binary, &mut buf)?;
        let mut guard = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let socket = match guard.take() {
            Some(s) => s,
            None => {
                let s = self.ctx.socket(zmq::REQ)?;
                s.set_linger(0)?;
                s.connect(&self.control_endpoint)?;
                s
            }
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        socket.set_sndtimeo(ms)?;
        socket.set_rcvtimeo(ms)?;
        // On any failure the socket is dropped, not put back: a REQ socket that missed its
        // reply cannot send again.
        let reply = match socket.send(bytes, 0).and_then(|()| socket.recv_msg(0)) {
            Ok(m) => m,
            Err(zmq::Error::EAGAIN) => {
                return Err(Error::Timeout {
                    master: self.control_endpoint.clone(),
                    after: timeout,
                });
            }
            Err(e) => return Err(e.into()),
        };
        *guard = Some(socket);
        match decode_reply(req.reply_kind(), &reply)? {
            ControlReply::Error(e) => Err(Error::Refused {
                code: e.code,
                detail: e.detail.to_owned(),
            }),
            other => read(other),
        }
    }

    pub(crate) fn data_endpoint(&self, port: u16) -> String {
        format!("tcp://{}:{port}", self.host)
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
    pub idle: Option<Duration>,
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
        Publisher::open(self.inner.clone(), Topic::new(topic)?)
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
                idle: t.idle_ms.map(Duration::from_millis),
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
