//! Receiving a topic through the master.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use zerosmq_core::control::ControlRequest;
use zerosmq_core::message::{DataFrame, READY_PROBE_PREFIX};
use zerosmq_core::Topic;

use crate::node::{DataLink, NodeInner};

/// Longest single wait in a receive, in ms (see `Subscriber::receive`).
const FOLLOW_SLICE_MS: i64 = 250;
use crate::{Error, Result};

/// One received message. The payload is not copied out of the ZeroMQ frame.
pub struct Message {
    frame: zmq::Message,
    /// Where the payload starts in `frame` (after `TOPIC SP`).
    offset: usize,
    /// Further frames of a multipart message, unchanged.
    parts: Vec<zmq::Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic())
            .field("payload_len", &self.payload().len())
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl Message {
    /// The topic it came on.
    pub fn topic(&self) -> &str {
        let topic = self
            .frame
            .get(..self.offset.saturating_sub(1))
            .unwrap_or_default();
        std::str::from_utf8(topic).unwrap_or_default()
    }

    /// The payload: the bytes after `TOPIC SP` in the first frame.
    pub fn payload(&self) -> &[u8] {
        self.frame.get(self.offset..).unwrap_or_default()
    }

    /// The payload as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(self.payload()).ok()
    }

    /// Frames after the first, for multipart messages.
    pub fn parts(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.parts.iter().map(|m| &m[..])
    }

    /// Decodes a payload published with [`crate::Publisher::publish_value`].
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        Ok(postcard::from_bytes(self.payload())?)
    }
}

/// A registered subscriber of one topic.
pub struct Subscriber {
    node: Arc<NodeInner>,
    topic: Topic,
    socket: zmq::Socket,
    link: DataLink,
    /// Messages that arrived while waiting for the ready probe.
    pending: VecDeque<Message>,
    ready: bool,
    registered: bool,
    /// Set while `drain_into_pending` runs, so the receive it calls does not follow the port.
    draining: bool,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic)
            .field("ready", &self.ready)
            .finish()
    }
}

impl Subscriber {
    pub(crate) fn open(node: Arc<NodeInner>, topic: Topic) -> Result<Self> {
        let socket = node.ctx.socket(zmq::SUB)?;
        socket.set_linger(0)?;
        socket.set_rcvhwm(node.hwm)?;
        // `TOPIC SP`, not just `TOPIC`: a subscriber of `imu` must not get `imu2` messages.
        let mut prefix = Vec::with_capacity(topic.len() + 1);
        prefix.extend_from_slice(topic.as_bytes());
        prefix.push(zerosmq_core::message::SEPARATOR);
        socket.set_subscribe(&prefix)?;
        let request = ControlRequest::Subscribe {
            node: node.name.clone(),
            topic: topic.clone(),
        };
        let link = DataLink::open(&node, request, &socket)?;
        Ok(Subscriber {
            node,
            topic,
            socket,
            link,
            pending: VecDeque::new(),
            ready: false,
            registered: true,
            draining: false,
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.topic.as_str()
    }

    /// Waits until the master's socket for this topic has this subscription, so that every
    /// message published from now on is delivered. Messages that arrive meanwhile are kept.
    ///
    /// How: subscribe to a unique ready probe, which the master answers with a message only this
    /// subscriber matches (see `zerosmq_core::message::READY_PROBE_PREFIX`).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        if self.ready {
            return Ok(());
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // Random across processes, and the counter keeps it unique within this one.
        let nonce = format!(
            "{:x}-{:x}",
            zerosmq_core::random::random_u64(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut probe = READY_PROBE_PREFIX.to_vec();
        probe.extend_from_slice(nonce.as_bytes());
        self.socket.set_subscribe(&probe)?;
        let deadline = Instant::now() + timeout;
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receive(left.as_millis() as i64, Some(&probe)) {
                Ok(Some(msg)) => self.pending.push_back(msg),
                Ok(None) if self.ready => break Ok(()),
                Ok(None) if left.is_zero() => {
                    break Err(Error::NotReady {
                        what: format!("subscriber of '{}'", self.topic),
                        after: timeout,
                    })
                }
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        self.socket.set_unsubscribe(&probe)?;
        result
    }

    /// Receives the next message, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<Message> {
        loop {
            if let Some(m) = self.next(-1)? {
                return Ok(m);
            }
        }
    }

    /// Receives the next message, or `None` after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        // A message already queued needs no clock.
        if let Some(m) = self.next(0)? {
            return Ok(Some(m));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left.as_millis() as i64)? {
                Some(m) => return Ok(Some(m)),
                None if left.is_zero() => return Ok(None),
                None => {}
            }
        }
    }

    /// Receives a message if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Message>> {
        self.next(0)
    }

    /// Blocking iterator over incoming messages.
    pub fn iter(&mut self) -> impl Iterator<Item = Result<Message>> + '_ {
        std::iter::from_fn(move || Some(self.recv()))
    }

    fn next(&mut self, timeout_ms: i64) -> Result<Option<Message>> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        self.receive(timeout_ms, None)
    }

    /// One receive, waiting (poll) only when nothing is queued. Returns `None` on timeout or when
    /// what arrived was not a message of this topic (a ready probe: marks the subscriber ready
    /// when it is `probe`).
    ///
    /// Waits at most [`FOLLOW_SLICE_MS`] at a time, so that a blocked receiver follows a new port
    /// after a master restart; callers loop.
    fn receive(&mut self, timeout_ms: i64, probe: Option<&[u8]>) -> Result<Option<Message>> {
        if self.link.changed() && !self.draining {
            // The master moved this topic (it restarted without its state file). Disconnecting
            // drops what the old connection already delivered, so keep that first.
            self.draining = true;
            let drained = self.drain_into_pending();
            self.draining = false;
            drained?;
            if self.link.follow(&self.node, &self.socket)? {
                self.ready = false;
            }
        }
        // Receive first: under load a message is nearly always queued, and `zmq_poll` costs a
        // poll(2) system call and two socket-option reads per call (measured: it was most of a
        // subscriber's time at 8 B).
        let frame = match self.socket.recv_msg(zmq::DONTWAIT) {
            Ok(m) => m,
            Err(zmq::Error::EAGAIN) if timeout_ms == 0 => return Ok(None),
            Err(zmq::Error::EAGAIN) => {
                let slice = if (0..FOLLOW_SLICE_MS).contains(&timeout_ms) {
                    timeout_ms
                } else {
                    FOLLOW_SLICE_MS
                };
                if self.socket.poll(zmq::POLLIN, slice)? == 0 {
                    return Ok(None);
                }
                match self.socket.recv_msg(zmq::DONTWAIT) {
                    Ok(m) => m,
                    Err(zmq::Error::EAGAIN) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let mut parts = Vec::new();
        let mut more = frame.get_more();
        while more {
            let part = self.socket.recv_msg(0)?;
            more = part.get_more();
            parts.push(part);
        }
        if frame.starts_with(&READY_PROBE_PREFIX[..1]) {
            if probe.is_some_and(|p| p == &frame[..]) {
                self.ready = true;
            }
            return Ok(None);
        }
        match DataFrame::payload_for(&frame, self.topic.as_str()) {
            Ok(_) => Ok(Some(Message {
                offset: self.topic.len() + 1,
                frame,
                parts,
            })),
            // The subscription is `TOPIC SP`, so this does not happen with a well-behaved master.
            Err(_) => Ok(None),
        }
    }

    /// Moves every message already queued on the socket to `pending`.
    fn drain_into_pending(&mut self) -> Result<()> {
        while self.socket.get_events()?.contains(zmq::POLLIN) {
            if let Some(m) = self.receive(0, None)? {
                self.pending.push_back(m);
            }
        }
        Ok(())
    }

    /// Tells the master this node stops subscribing (`REQUEST_STOP_SUB`) and closes the socket.
    pub fn stop(mut self) -> Result<()> {
        self.unregister(self.node.timeout)
    }

    fn unregister(&mut self, timeout: Duration) -> Result<()> {
        if !std::mem::take(&mut self.registered) {
            return Ok(());
        }
        self.node.forget(&ControlRequest::Subscribe {
            node: self.node.name.clone(),
            topic: self.topic.clone(),
        });
        let req = ControlRequest::StopSubscribe {
            node: self.node.name.clone(),
            topic: self.topic.clone(),
        };
        self.node.stop(&req, timeout)
    }
}

impl Drop for Subscriber {
    /// Best effort: a master that is gone must not hold the application up for long.
    fn drop(&mut self) {
        let _ = self.unregister(Duration::from_millis(500).min(self.node.timeout));
    }
}
