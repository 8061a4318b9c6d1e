//! Publishing on a topic through the master.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use zerosmq_core::control::ControlRequest;
use zerosmq_core::Topic;

use crate::node::{DataLink, NodeInner};
use crate::{Error, Result};

/// How long a publisher's socket keeps unsent messages when it is dropped.
const LINGER_MS: i32 = 1_000;

/// A registered publisher of one topic.
///
/// The socket is an XPUB (a PUB that also reports subscriptions): the master's SUB socket
/// subscribes when it connects, and that subscription is what [`Publisher::wait_ready`] waits for.
/// On the wire it is indistinguishable from the original's PUB.
pub struct Publisher {
    node: Arc<NodeInner>,
    topic: Topic,
    socket: zmq::Socket,
    link: DataLink,
    /// Reused frame buffer: `TOPIC SP PAYLOAD`.
    frame: Vec<u8>,
    ready: bool,
    registered: bool,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("ready", &self.ready)
            .finish()
    }
}

impl Publisher {
    pub(crate) fn open(node: Arc<NodeInner>, topic: Topic) -> Result<Self> {
        let socket = node.ctx.socket(zmq::XPUB)?;
        socket.set_linger(LINGER_MS)?;
        socket.set_sndhwm(node.hwm)?;
        let request = ControlRequest::Publish {
            node: node.name.clone(),
            topic: topic.clone(),
        };
        let link = DataLink::open(&node, request, &socket)?;
        let mut frame = Vec::with_capacity(topic.len() + 1 + 256);
        frame.extend_from_slice(topic.as_bytes());
        frame.push(zerosmq_core::message::SEPARATOR);
        Ok(Publisher {
            node,
            topic,
            socket,
            link,
            frame,
            ready: false,
            registered: true,
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.topic.as_str()
    }

    /// Waits until the master's socket for this topic has subscribed to this publisher, so the
    /// next message is not dropped by ZeroMQ's slow-joiner effect. Returns at once when ready.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        self.follow_grant()?;
        let deadline = Instant::now() + timeout;
        while !self.ready {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.socket.poll(zmq::POLLIN, left.as_millis() as i64)? == 0 {
                return Err(Error::NotReady {
                    what: format!("publisher of '{}'", self.topic),
                    after: timeout,
                });
            }
            self.drain_subscriptions()?;
        }
        Ok(())
    }

    /// True once the master's socket has subscribed (see [`Publisher::wait_ready`]).
    pub fn is_ready(&mut self) -> Result<bool> {
        self.follow_grant()?;
        self.drain_subscriptions()?;
        Ok(self.ready)
    }

    fn drain_subscriptions(&mut self) -> Result<()> {
        loop {
            match self.socket.recv_msg(zmq::DONTWAIT) {
                Ok(m) if m.first() == Some(&1) => self.ready = true,
                Ok(_) => {}
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Publishes `payload` (any bytes) as one frame `TOPIC SP PAYLOAD`. Never blocks: when no
    /// master is connected yet, or its queue is full, ZeroMQ drops the message.
    pub fn publish(&mut self, payload: &[u8]) -> Result<()> {
        self.follow_grant()?;
        // Built in the ZeroMQ message itself: one copy of the payload, not two (a Vec, then
        // libzmq's copy of it).
        let head = self.topic.len() + 1;
        let mut msg = zmq::Message::with_size(head + payload.len());
        msg[..head].copy_from_slice(&self.frame[..head]);
        msg[head..].copy_from_slice(payload);
        self.socket.send(msg, zmq::DONTWAIT).or_else(drop_when_full)
    }

    /// Publishes a message of several frames: `TOPIC SP first`, then `rest` unchanged. The
    /// master forwards all frames as one message.
    pub fn publish_parts(&mut self, first: &[u8], rest: &[&[u8]]) -> Result<()> {
        self.follow_grant()?;
        let head = self.topic.len() + 1;
        self.frame.truncate(head);
        self.frame.extend_from_slice(first);
        let more = if rest.is_empty() { 0 } else { zmq::SNDMORE };
        self.socket
            .send(&self.frame[..], more | zmq::DONTWAIT)
            .or_else(drop_when_full)?;
        for (i, part) in rest.iter().enumerate() {
            let more = if i + 1 < rest.len() { zmq::SNDMORE } else { 0 };
            self.socket.send(*part, more | zmq::DONTWAIT)?;
        }
        Ok(())
    }

    /// Publishes any serde value, encoded with postcard.
    pub fn publish_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.follow_grant()?;
        let head = self.topic.len() + 1;
        self.frame.truncate(head);
        let frame = std::mem::take(&mut self.frame);
        self.frame = postcard::to_extend(value, frame)?;
        self.socket
            .send(&self.frame[..], zmq::DONTWAIT)
            .or_else(drop_when_full)
    }

    /// Tells the master this node stops publishing (`REQUEST_STOP_PUB`) and closes the socket.
    pub fn stop(mut self) -> Result<()> {
        self.unregister(self.node.timeout)
    }

    fn unregister(&mut self, timeout: Duration) -> Result<()> {
        if !std::mem::take(&mut self.registered) {
            return Ok(());
        }
        self.node.forget(&ControlRequest::Publish {
            node: self.node.name.clone(),
            topic: self.topic.clone(),
        });
        let req = ControlRequest::StopPublish {
            node: self.node.name.clone(),
            topic: self.topic.clone(),
        };
        self.node.stop(&req, timeout)
    }

    /// Reconnects when the master granted a new port (it restarted); the new path is not ready
    /// until the master subscribes again.
    fn follow_grant(&mut self) -> Result<()> {
        if self.link.follow(&self.node, &self.socket)? {
            self.ready = false;
        }
        Ok(())
    }
}

/// PUB-type sockets drop at the high-water mark; with DONTWAIT a full queue reads as EAGAIN.
fn drop_when_full(e: zmq::Error) -> Result<()> {
    match e {
        zmq::Error::EAGAIN => Ok(()),
        e => Err(e.into()),
    }
}

impl Drop for Publisher {
    /// Best effort: a master that is gone must not hold the application up for long.
    fn drop(&mut self) {
        let _ = self.unregister(Duration::from_millis(500).min(self.node.timeout));
    }
}
