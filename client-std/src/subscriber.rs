//! Receiving a topic through the master.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use zerosmq_core::control::ControlRequest;
use zerosmq_core::message::{DataFrame, READY_PROBE_PREFIX};
use zerosmq_core::Topic;

use crate::node::{DataLink, NodeInner};
use crate::transport::subscriber_link::{Frames, LinkError, SubscriberLink, Target};
use crate::{Error, Result};

/// Longest single wait in a receive (see `Subscriber::receive`).
const FOLLOW_SLICE: Duration = Duration::from_millis(250);

/// Longest handshake wait inside a receive: a receive with a short timeout must not hang on a
/// master that accepts TCP but does not answer.
const DATA_HANDSHAKE_MAX: Duration = Duration::from_secs(2);

/// One received message. The payload is not copied: it shares the buffer it was read into.
pub struct Message {
    frame: Bytes,
    /// Where the payload starts in `frame` (after `TOPIC SP`).
    offset: usize,
    /// Further frames of a multipart message, unchanged.
    parts: Vec<Bytes>,
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
    path: Path,
    /// Messages that arrived while waiting for the ready probe.
    pending: VecDeque<Message>,
    ready: bool,
    registered: bool,
    /// Set while `drain_into_pending` runs, so the receive it calls does not follow the port.
    draining: bool,
}

/// How messages arrive: our own ZMTP connection, shared with the node's I/O thread (see
/// `subscriber_link`), which only takes it when the application has not received for a while.
struct Path(Arc<Mutex<SubscriberLink>>);

impl Path {
    fn subscribe(&mut self, prefix: &[u8]) -> Result<()> {
        lock(&self.0).subscribe(prefix);
        Ok(())
    }

    fn unsubscribe(&mut self, prefix: &[u8]) -> Result<()> {
        lock(&self.0).unsubscribe(prefix);
        Ok(())
    }

    fn moved(&self) -> bool {
        lock(&self.0).moved()
    }

    fn follow(&mut self, node: &NodeInner) -> Result<()> {
        lock(&self.0).follow().map_err(|e| link_error(node, e))
    }

    fn recv(&mut self, node: &NodeInner, timeout: Duration) -> Result<Option<Frames>> {
        lock(&self.0).recv(timeout).map_err(|e| link_error(node, e))
    }
}

fn lock(link: &Mutex<SubscriberLink>) -> MutexGuard<'_, SubscriberLink> {
    link.lock().unwrap_or_else(|e| e.into_inner())
}

fn link_error(node: &NodeInner, e: LinkError) -> Error {
    match e {
        LinkError::AuthFailed => node.auth_failed(),
    }
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
        // `TOPIC SP`, not just `TOPIC`: a subscriber of `imu` must not get `imu2` messages.
        let mut prefix = Vec::with_capacity(topic.len() + 1);
        prefix.extend_from_slice(topic.as_bytes());
        prefix.push(zerosmq_core::message::SEPARATOR);
        let request = ControlRequest::Subscribe {
            node: node.name.clone(),
            topic: topic.clone(),
        };
        let grant = DataLink::open(&node, request, None)?;
        let target = Target {
            host: node.host.clone(),
            port: grant.cell(),
            mechanism: node.mechanism().clone(),
            timeout: node.timeout.min(DATA_HANDSHAKE_MAX),
        };
        let mut link = SubscriberLink::open(target).map_err(|e| link_error(&node, e))?;
        link.subscribe(&prefix);
        let link = Arc::new(Mutex::new(link));
        node.keep(&link)?;
        let path = Path(link);
        Ok(Subscriber {
            node,
            topic,
            path,
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

    /// The topic's schema, asked of the master now (a typed publisher may come after the
    /// subscriber); `None` while the topic is untyped. Payloads of a typed topic are postcard of
    /// that type ([`Message::decode`]).
    pub fn schema(&self) -> Result<Option<crate::OwnedNamedType>> {
        let req = zerosmq_core::control::ControlRequest::TopicSchema {
            topic: self.topic.clone(),
        };
        self.node.request(&req, self.node.timeout, |r| match r {
            zerosmq_core::ControlReply::Schema(bytes) => crate::node::parse_schema(bytes),
            _ => Err(crate::Error::Protocol(
                zerosmq_core::DecodeError::UnexpectedReply,
            )),
        })
    }

    /// Waits until the master's socket for this topic has this subscription, so that every
    /// message published from now on is delivered. Messages that arrive meanwhile are kept.
    ///
    /// How: subscribe to a unique ready probe, which the master answers with a message only this
    /// subscriber matches (see `zerosmq_core::message::READY_PROBE_PREFIX`).
    ///
    /// After the master moved the topic (it restarted without its state file) the new path is
    /// waited for.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        if self.ready && !self.path.moved() {
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
        self.path.subscribe(&probe)?;
        let deadline = Instant::now() + timeout;
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receive(left, Some(&probe)) {
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
        self.path.unsubscribe(&probe)?;
        result
    }

    /// Receives the next message, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<Message> {
        loop {
            if let Some(m) = self.next(FOLLOW_SLICE)? {
                return Ok(m);
            }
        }
    }

    /// Receives the next message, or `None` after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        // A message already queued needs no clock.
        if let Some(m) = self.next(Duration::ZERO)? {
            return Ok(Some(m));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left)? {
                Some(m) => return Ok(Some(m)),
                None if left.is_zero() => return Ok(None),
                None => {}
            }
        }
    }

    /// Receives a message if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Message>> {
        self.next(Duration::ZERO)
    }

    /// Blocking iterator over incoming messages.
    pub fn iter(&mut self) -> impl Iterator<Item = Result<Message>> + '_ {
        std::iter::from_fn(move || Some(self.recv()))
    }

    fn next(&mut self, timeout: Duration) -> Result<Option<Message>> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        self.receive(timeout, None)
    }

    /// One receive, waiting only when nothing is queued. Returns `None` on timeout or when what
    /// arrived was not a message of this topic (a ready probe: marks the subscriber ready when
    /// it is `probe`).
    ///
    /// Waits at most [`FOLLOW_SLICE`] at a time, so that a blocked receiver follows a new port
    /// after a master restart; callers loop.
    fn receive(&mut self, timeout: Duration, probe: Option<&[u8]>) -> Result<Option<Message>> {
        if !self.draining && self.path.moved() {
            // The master moved this topic (it restarted without its state file). Disconnecting
            // drops what the old connection already delivered, so keep that first.
            self.draining = true;
            let drained = self.drain_into_pending();
            self.draining = false;
            drained?;
            self.path.follow(&self.node)?;
            self.ready = false;
        }
        let Some((frame, parts)) = self.path.recv(&self.node, timeout.min(FOLLOW_SLICE))? else {
            return Ok(None);
        };
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

    /// Moves every message already received to `pending`.
    fn drain_into_pending(&mut self) -> Result<()> {
        // A probe or a foreign frame reads as `None` too; a short run of them ends the drain
        // early, which only costs what libzmq's disconnect cost before.
        while let Some(m) = self.receive(Duration::ZERO, None)? {
            self.pending.push_back(m);
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
