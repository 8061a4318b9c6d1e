//! Publishing on a topic through the master.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use zerosmq_core::control::ControlRequest;
use zerosmq_core::Topic;

use crate::node::{DataLink, NodeInner};
use crate::transport::publisher_link::{PublisherLink, Target};
use crate::{Error, Result};

/// How long a dropped publisher keeps sending what is queued (libzmq's linger of the old path).
const LINGER: Duration = Duration::from_secs(1);

/// A registered publisher of one topic.
///
/// On the wire a ZMTP PUB socket (NULL, PLAIN or CURVE, as the node was built): the master's SUB
/// subscribes when it connects, and that subscription is what [`Publisher::wait_ready`] waits
/// for. Publishing never blocks: a message is dropped, as libzmq's PUB drops it, when the master
/// has not subscribed (yet, or again after a reconnect) or `hwm` messages are already queued.
pub struct Publisher {
    node: Arc<NodeInner>,
    topic: Topic,
    link: PublisherLink,
    /// `TOPIC SP`, then scratch space for `publish_value`'s encoding.
    frame: Vec<u8>,
    registered: bool,
    /// The grant's request (typed or not), to forget it when stopping.
    request: ControlRequest,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Publisher {
    pub(crate) fn open(
        node: Arc<NodeInner>,
        topic: Topic,
        schema: Option<zerosmq_core::control::SchemaBytes>,
    ) -> Result<Self> {
        let request = match schema {
            None => ControlRequest::Publish {
                node: node.name.clone(),
                topic: topic.clone(),
            },
            Some(schema) => ControlRequest::PublishTyped {
                node: node.name.clone(),
                topic: topic.clone(),
                schema,
            },
        };
        let mut frame = Vec::with_capacity(topic.len() + 1 + 256);
        frame.extend_from_slice(topic.as_bytes());
        frame.push(zerosmq_core::message::SEPARATOR);
        let io = node.io()?;
        let grant = DataLink::open(&node, request.clone(), Some(io.clone()))?;
        let target = Target {
            host: node.host.clone(),
            port: grant.cell(),
            mechanism: node.mechanism().clone(),
            timeout: node.timeout,
            topic_head: frame.clone(),
        };
        let link = PublisherLink::start(target, io, LINGER);
        Ok(Publisher {
            node,
            topic,
            link,
            frame,
            registered: true,
            request,
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.topic.as_str()
    }

    fn head_len(&self) -> usize {
        self.topic.len() + 1
    }

    /// Waits until the master's socket for this topic has subscribed to this publisher, so the
    /// next message is not dropped by ZeroMQ's slow-joiner effect. Returns at once when ready.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let ready = self
            .link
            .wait_ready(timeout)
            .map_err(|()| self.node.auth_failed())?;
        if !ready {
            return Err(Error::NotReady {
                what: format!("publisher of '{}'", self.topic),
                after: timeout,
            });
        }
        Ok(())
    }

    /// How many messages this publisher has dropped: published while no master was connected
    /// or subscribed (before [`wait_ready`](Self::wait_ready), or while the master restarts),
    /// beyond the node's high-water mark of queued messages, or still queued when the
    /// connection was lost. Publishing never blocks, so this is how a program counts its loss.
    pub fn dropped(&self) -> u64 {
        self.link.dropped()
    }

    /// True once the master's socket has subscribed (see [`Publisher::wait_ready`]).
    pub fn is_ready(&mut self) -> Result<bool> {
        Ok(self.link.is_ready())
    }

    /// Publishes `payload` (any bytes) as one frame `TOPIC SP PAYLOAD`. Never blocks: when no
    /// master is connected yet, or its queue is full, the message is dropped.
    pub fn publish(&mut self, payload: &[u8]) -> Result<()> {
        self.send(payload, &[])
    }

    /// Publishes a message of several frames: `TOPIC SP first`, then `rest` unchanged. The
    /// master forwards all frames as one message.
    pub fn publish_parts(&mut self, first: &[u8], rest: &[&[u8]]) -> Result<()> {
        self.send(first, rest)
    }

    /// Publishes any serde value, encoded with postcard.
    pub fn publish_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let head = self.head_len();
        self.frame.truncate(head);
        let frame = std::mem::take(&mut self.frame);
        self.frame = postcard::to_extend(value, frame)?;
        let (head_bytes, body) = self.frame.split_at(head);
        self.link.send(head_bytes, body, &[], self.node.hwm);
        Ok(())
    }

    fn send(&mut self, body: &[u8], rest: &[&[u8]]) -> Result<()> {
        let head = &self.frame[..self.topic.len() + 1];
        self.link.send(head, body, rest, self.node.hwm);
        Ok(())
    }

    /// Waits until every message published so far was handed to the operating system (or
    /// dropped with a lost connection); false after `timeout`. Publishing batches messages
    /// that follow each other closely in the node's I/O thread; this is the way to know they left,
    /// e.g. before a measurement stops.
    pub fn flush(&mut self, timeout: Duration) -> bool {
        self.link.flush(timeout)
    }

    /// Tells the master this node stops publishing (`REQUEST_STOP_PUB`) and closes the socket.
    pub fn stop(mut self) -> Result<()> {
        self.flush(LINGER);
        self.unregister(self.node.timeout)
    }

    fn unregister(&mut self, timeout: Duration) -> Result<()> {
        if !std::mem::take(&mut self.registered) {
            return Ok(());
        }
        self.node.forget(&self.request);
        let req = ControlRequest::StopPublish {
            node: self.node.name.clone(),
            topic: self.topic.clone(),
        };
        self.node.stop(&req, timeout)
    }
}

impl Drop for Publisher {
    /// Best effort: what was published is sent first (for up to a second), then the master is
    /// told; a master that is gone must not hold the application up for long.
    fn drop(&mut self) {
        if self.registered {
            self.flush(LINGER);
        }
        let _ = self.unregister(Duration::from_millis(500).min(self.node.timeout));
    }
}
