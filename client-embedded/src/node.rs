//! The roles' protocol logic, shared by the blocking and async drivers: no I/O here.

use core::cell::Cell;
use core::net::SocketAddr;

use zerosmq_core::control::{decode_reply, ControlReply, ControlRequest, Encoding, ReplyKind};
use zerosmq_core::message::READY_PROBE_PREFIX;
use zerosmq_core::zmtp::{
    Connection, Event, FrameEncodeError, FrameHeader, PlainCredentials, SocketType,
};
use zerosmq_core::{NameError, NodeName, Topic};

#[cfg(feature = "clock")]
use crate::clock::HeartbeatTimer;
use crate::Error;

/// The encoding a new node uses: the original's text with feature `text`, else binary.
pub(crate) const DEFAULT_ENCODING: Encoding = if cfg!(feature = "text") {
    Encoding::Text
} else {
    Encoding::Binary
};

/// Bytes of a ready probe: the prefix and 16 hex digits.
pub const PROBE_LEN: usize = READY_PROBE_PREFIX.len() + 16;

/// Offset where a request body is encoded, leaving room for delimiter and the longest header.
const REQUEST_BODY_AT: usize = 2 + 9;

/// Encodes a REQ request into `tx`: the empty delimiter frame (MORE), then the body frame.
/// Returns the range of `tx` to send.
pub(crate) fn encode_request(
    req: &ControlRequest,
    encoding: Encoding,
    tx: &mut [u8],
) -> Result<(usize, usize), FrameEncodeError> {
    let body_space = tx
        .get_mut(REQUEST_BODY_AT..)
        .ok_or(FrameEncodeError::BufferTooSmall)?;
    let body_len = req
        .encode(encoding, body_space)
        .map_err(|_| FrameEncodeError::BufferTooSmall)?
        .len();
    let (header, header_len) = Connection::message_header(body_len, false);
    let start = REQUEST_BODY_AT - header_len - 2;
    tx[start..start + 2].copy_from_slice(&[0x01, 0x00]);
    tx[start + 2..REQUEST_BODY_AT].copy_from_slice(&header[..header_len]);
    Ok((start, REQUEST_BODY_AT + body_len))
}

/// [`encode_request`] for a CURVE connection: the delimiter and the body, each in a MESSAGE
/// box. The body is encoded first, moved to the end of `tx`, and boxed from there into the
/// front, so `tx` must hold it twice and the boxes' 77 bytes.
#[cfg(feature = "curve")]
pub(crate) fn encode_request_boxed(
    conn: &mut Connection<'_>,
    req: &ControlRequest,
    encoding: Encoding,
    tx: &mut [u8],
) -> Result<(usize, usize), FrameEncodeError> {
    // The delimiter's box (2 + 33), then the body's longest header and its box (9 + 33).
    const AT: usize = 35 + 9 + 33;
    let body_space = tx.get_mut(AT..).ok_or(FrameEncodeError::BufferTooSmall)?;
    let body_len = req
        .encode(encoding, body_space)
        .map_err(|_| FrameEncodeError::BufferTooSmall)?
        .len();
    let tail = tx.len() - body_len;
    tx.copy_within(AT..AT + body_len, tail);
    let (head, body) = tx.split_at_mut(tail);
    let d = conn.write_message(&[], true, head)?;
    let rest = head.get_mut(d..).ok_or(FrameEncodeError::BufferTooSmall)?;
    let n = conn.write_message(&[body], false, rest)?;
    Ok((0, d + n))
}

/// Follows a REP reply: the empty delimiter, then one body frame.
#[derive(Debug, Default)]
pub(crate) struct ReplyReader {
    seen_delimiter: bool,
}

impl ReplyReader {
    pub(crate) const fn new() -> Self {
        ReplyReader {
            seen_delimiter: false,
        }
    }

    /// The body length once the reply's last frame arrived.
    pub(crate) fn on_event<E>(&mut self, ev: Event) -> Result<Option<usize>, Error<E>> {
        match (self.seen_delimiter, ev) {
            (false, Event::Message { len: 0, more: true }) => {
                self.seen_delimiter = true;
                Ok(None)
            }
            (true, Event::Message { len, more: false }) => Ok(Some(len)),
            (_, Event::Message { .. }) => Err(Error::BadReply),
            _ => Ok(None),
        }
    }
}

/// Decodes a reply body of `kind`; an error reply becomes [`Error::Refused`].
pub(crate) fn decode<E>(kind: ReplyKind, body: &[u8]) -> Result<ControlReply<'_>, Error<E>> {
    match decode_reply(kind, body) {
        Ok(ControlReply::Error(e)) => Err(Error::Refused(e.code)),
        Ok(reply) => Ok(reply),
        Err(_) => Err(Error::BadReply),
    }
}

/// The port of a `Granted` reply body.
pub(crate) fn granted<E>(body: &[u8]) -> Result<u16, Error<E>> {
    match decode_reply(ReplyKind::Granted, body) {
        Ok(ControlReply::Granted { port }) => Ok(port),
        Ok(ControlReply::Error(e)) => Err(Error::Refused(e.code)),
        _ => Err(Error::BadReply),
    }
}

/// Whether a subscription prefix matches every data frame of `topic` (`TOPIC SP ...`).
pub(crate) fn subscription_matches(prefix: &[u8], topic: &[u8]) -> bool {
    match prefix.len().cmp(&topic.len()) {
        core::cmp::Ordering::Greater => {
            prefix.len() == topic.len() + 1
                && prefix.starts_with(topic)
                && prefix[topic.len()] == b' '
        }
        _ => topic.starts_with(prefix),
    }
}

/// Counts the peer's subscriptions that cover our topic (a PUB only sends to subscribers).
#[derive(Debug, Default)]
pub(crate) struct SubscriptionCount(u8);

impl SubscriptionCount {
    pub(crate) const fn new() -> Self {
        SubscriptionCount(0)
    }

    pub(crate) fn on_event(&mut self, ev: Event, rx: &[u8], topic: &[u8]) {
        let (start, len, up) = match ev {
            Event::Subscribe { start, len } => (start, len, true),
            Event::Cancel { start, len } => (start, len, false),
            _ => return,
        };
        let Some(prefix) = rx.get(start..start + len) else {
            return;
        };
        if subscription_matches(prefix, topic) {
            self.0 = if up {
                self.0.saturating_add(1)
            } else {
                self.0.saturating_sub(1)
            };
        }
    }

    pub(crate) fn any(&self) -> bool {
        self.0 > 0
    }
}

/// A ready probe: the prefix and a nonce made of the node's seed and a counter, in hex. Fixed
/// length, so no probe is a prefix of another node's.
pub(crate) fn make_probe(seed: u64, counter: u32) -> [u8; PROBE_LEN] {
    let mut p = [0u8; PROBE_LEN];
    p[..READY_PROBE_PREFIX.len()].copy_from_slice(READY_PROBE_PREFIX);
    let nonce = seed ^ (u64::from(counter).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for (i, d) in p[READY_PROBE_PREFIX.len()..].iter_mut().enumerate() {
        let nibble = (nonce >> (60 - 4 * i)) & 0xF;
        *d = b"0123456789abcdef"[nibble as usize];
    }
    p
}

/// FNV-1a, to turn a node name into a default probe seed.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Encodes the subscriber's opening: subscribe to the topic, then to the probe.
pub(crate) fn encode_subscriptions(
    conn: &mut Connection<'_>,
    topic: &[u8],
    probe: &[u8],
    tx: &mut [u8],
) -> Result<usize, FrameEncodeError> {
    let n = conn.write_subscribe(topic, tx)?;
    let m = conn.write_subscribe(
        probe,
        tx.get_mut(n..).ok_or(FrameEncodeError::BufferTooSmall)?,
    )?;
    Ok(n + m)
}

/// What a subscriber does with a message frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubAction {
    /// Our probe came back: the path through the master is live.
    ProbeEcho,
    /// A data frame on our topic; the payload starts at this offset of the buffer.
    Deliver { payload_at: usize },
    /// Not for us (another topic, part of a multipart message, malformed).
    Ignore,
}

/// Classifies one message frame, tracking multipart messages (which are never data frames).
pub(crate) fn classify(
    in_multipart: &mut bool,
    ev: Event,
    rx: &[u8],
    topic: &[u8],
    probe: &[u8],
) -> SubAction {
    let Event::Message { len, more } = ev else {
        return SubAction::Ignore;
    };
    let first = !*in_multipart;
    *in_multipart = more;
    if !first || more {
        return SubAction::Ignore;
    }
    let Some(frame) = rx.get(..len) else {
        return SubAction::Ignore;
    };
    if frame == probe {
        return SubAction::ProbeEcho;
    }
    match frame.strip_prefix(topic) {
        Some([b' ', ..]) => SubAction::Deliver {
            payload_at: topic.len() + 1,
        },
        _ => SubAction::Ignore,
    }
}

/// Header of a data frame `TOPIC SP PAYLOAD`, for writing topic and payload without a copy.
pub(crate) fn data_header(topic: &[u8], payload: &[u8]) -> ([u8; 9], usize) {
    FrameHeader::message(topic.len() + 1 + payload.len(), false).to_bytes()
}

/// What both drivers' `Node` hold: the stack's connector, who the node is and how it talks.
#[derive(Debug)]
pub(crate) struct NodeConfig<C> {
    /// The stack's way of opening connections.
    pub(crate) connector: C,
    pub(crate) master: SocketAddr,
    pub(crate) name: NodeName,
    pub(crate) encoding: Encoding,
    pub(crate) plain: Option<PlainCredentials<'static>>,
    /// With CURVE: every connection is a CURVE client's (in place of NULL or PLAIN).
    #[cfg(feature = "curve")]
    pub(crate) curve: Option<crate::curve::CurveConfig>,
    /// The heartbeat session and the base of probe nonces.
    pub(crate) seed: u64,
    probes: Cell<u32>,
    /// With a clock: the node sends its own heartbeats.
    #[cfg(feature = "clock")]
    pub(crate) heartbeat: Option<HeartbeatTimer>,
}

impl<C> NodeConfig<C> {
    pub(crate) fn new(connector: C, master: SocketAddr, name: &str) -> Result<Self, NameError> {
        let name = NodeName::new(name)?;
        let seed = fnv1a(&[name.as_bytes()]);
        Ok(NodeConfig {
            connector,
            master,
            name,
            encoding: DEFAULT_ENCODING,
            plain: None,
            #[cfg(feature = "curve")]
            curve: None,
            seed,
            probes: Cell::new(0),
            #[cfg(feature = "clock")]
            heartbeat: None,
        })
    }

    /// A fresh connection of `socket_type` with the node's mechanism: CURVE, PLAIN or NULL.
    pub(crate) fn connection(&self, socket_type: SocketType) -> Connection<'static> {
        #[cfg(feature = "curve")]
        if let Some(curve) = &self.curve {
            return curve.connection(socket_type);
        }
        Connection::with_mechanism(socket_type, self.plain)
    }

    /// Whether the node's connections are CURVE's.
    pub(crate) fn is_curve(&self) -> bool {
        #[cfg(feature = "curve")]
        return self.curve.is_some();
        #[cfg(not(feature = "curve"))]
        false
    }

    /// Whether the node's own heartbeat is due now (never without a clock).
    #[cfg(feature = "clock")]
    pub(crate) fn heartbeat_due(&self) -> bool {
        self.heartbeat
            .as_ref()
            .is_some_and(HeartbeatTimer::take_due)
    }

    pub(crate) fn heartbeat_request(&self) -> ControlRequest {
        ControlRequest::Heartbeat {
            node: self.name.clone(),
            session: self.seed,
        }
    }

    /// The grant request of a publisher (`publish`) or a subscriber of `topic`.
    pub(crate) fn grant_request(&self, publish: bool, topic: &Topic) -> ControlRequest {
        let (node, topic) = (self.name.clone(), topic.clone());
        if publish {
            ControlRequest::Publish { node, topic }
        } else {
            ControlRequest::Subscribe { node, topic }
        }
    }

    /// The grant request of a typed publisher of `topic`: its type's schema, postcard-encoded
    /// in place (no second buffer on the stack).
    #[cfg(feature = "typed")]
    pub(crate) fn typed_grant_request<E>(
        &self,
        topic: &Topic,
        schema: &postcard_schema::schema::NamedType,
    ) -> Result<ControlRequest, Error<E>> {
        let mut bytes = zerosmq_core::control::SchemaBytes::new();
        let _ = bytes.resize(bytes.capacity(), 0);
        let n = postcard::to_slice(schema, &mut bytes)
            .map_err(|_| Error::SchemaTooLarge)?
            .len();
        bytes.truncate(n);
        Ok(ControlRequest::PublishTyped {
            node: self.name.clone(),
            topic: topic.clone(),
            schema: bytes,
        })
    }

    /// A fresh ready probe for a subscriber of `topic`.
    pub(crate) fn next_probe(&self, topic: &Topic) -> [u8; PROBE_LEN] {
        let n = self.probes.get().wrapping_add(1);
        self.probes.set(n);
        make_probe(self.seed ^ fnv1a(&[topic.as_bytes()]), n)
    }
}

/// The epoch of an `Alive` reply.
pub(crate) fn alive<E>(reply: ControlReply<'_>) -> Result<u64, Error<E>> {
    match reply {
        ControlReply::Alive { epoch } => Ok(epoch),
        _ => Err(Error::BadReply),
    }
}

/// The DOT text of a `Graph` reply.
pub(crate) fn graph<E>(reply: ControlReply<'_>) -> Result<&str, Error<E>> {
    match reply {
        ControlReply::Graph(dot) => Ok(dot),
        _ => Err(Error::BadReply),
    }
}

/// A subscriber connection's state above ZMTP: probe echoed, inside a multipart message.
#[derive(Debug, Default)]
pub(crate) struct SubState {
    pub(crate) ready: bool,
    in_multipart: bool,
}

/// What a subscriber's driver does after an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubStep {
    /// Hand `buf[start..end]` to the caller.
    Deliver(usize, usize),
    /// Write `buf[..n]` (the probe's cancellation), then read on.
    Write(usize),
    /// Read on.
    Nothing,
}

impl SubState {
    pub(crate) const fn new() -> Self {
        SubState {
            ready: false,
            in_multipart: false,
        }
    }

    #[inline]
    pub(crate) fn on_event<E>(
        &mut self,
        conn: &mut Connection<'_>,
        ev: Event,
        buf: &mut [u8],
        topic: &[u8],
        probe: &[u8],
    ) -> Result<SubStep, Error<E>> {
        Ok(
            match classify(&mut self.in_multipart, ev, buf, topic, probe) {
                SubAction::ProbeEcho => {
                    self.ready = true;
                    let n = conn
                        .write_cancel(probe, buf)
                        .map_err(|_| Error::BufferTooSmall)?;
                    SubStep::Write(n)
                }
                SubAction::Deliver { payload_at } => match ev {
                    Event::Message { len, .. } => SubStep::Deliver(payload_at, len),
                    _ => SubStep::Nothing,
                },
                SubAction::Ignore => SubStep::Nothing,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerosmq_core::{NodeName, Topic};

    #[cfg(feature = "text")]
    #[test]
    fn request_frames_exact_bytes() {
        let req = ControlRequest::Publish {
            node: NodeName::new("n").unwrap(),
            topic: Topic::new("imu").unwrap(),
        };
        let mut tx = [0u8; 64];
        let (s, e) = encode_request(&req, Encoding::Text, &mut tx).unwrap();
        // Exactly what libzmq's REQ sends after its READY (recorded).
        assert_eq!(
            &tx[s..e],
            &include_bytes!("../../core/src/zmtp/testdata/libzmq-req.bin")[104..]
        );
        assert_eq!(
            encode_request(&req, Encoding::Text, &mut tx[..20]),
            Err(FrameEncodeError::BufferTooSmall)
        );
    }

    #[test]
    fn reply_reader_needs_delimiter_then_body() {
        let mut r = ReplyReader::default();
        assert_eq!(
            r.on_event::<()>(Event::Message { len: 0, more: true }),
            Ok(None)
        );
        assert_eq!(
            r.on_event::<()>(Event::Message {
                len: 5,
                more: false
            }),
            Ok(Some(5))
        );
        let mut r = ReplyReader::default();
        assert_eq!(
            r.on_event::<()>(Event::Message {
                len: 5,
                more: false
            }),
            Err(Error::BadReply)
        );
    }

    #[test]
    fn matching_and_probes() {
        assert!(subscription_matches(b"imu", b"imu"));
        assert!(subscription_matches(b"", b"imu"));
        assert!(subscription_matches(b"im", b"imu"));
        assert!(subscription_matches(b"imu ", b"imu"));
        assert!(!subscription_matches(b"imu2", b"imu"));
        assert!(!subscription_matches(b"imu x", b"imu"));
        let p = make_probe(0x0123_4567_89ab_cdef, 0);
        assert_eq!(&p[..], b"\x00zerosmq-ready 0123456789abcdef");
        assert_ne!(make_probe(1, 1), make_probe(1, 2));
        let mut mp = false;
        let probe = make_probe(5, 5);
        let mut rx = [0u8; 64];
        rx[..PROBE_LEN].copy_from_slice(&probe);
        let ev = Event::Message {
            len: PROBE_LEN,
            more: false,
        };
        assert_eq!(
            classify(&mut mp, ev, &rx, b"imu", &probe),
            SubAction::ProbeEcho
        );
        rx[..5].copy_from_slice(b"imu x");
        let ev = Event::Message {
            len: 5,
            more: false,
        };
        assert_eq!(
            classify(&mut mp, ev, &rx, b"imu", &probe),
            SubAction::Deliver { payload_at: 4 }
        );
        assert_eq!(classify(&mut mp, ev, &rx, b"im", &probe), SubAction::Ignore);
        let more = Event::Message { len: 5, more: true };
        assert_eq!(
            classify(&mut mp, more, &rx, b"imu", &probe),
            SubAction::Ignore
        );
        assert_eq!(
            classify(&mut mp, ev, &rx, b"imu", &probe),
            SubAction::Ignore
        );
        assert_eq!(
            classify(&mut mp, ev, &rx, b"imu", &probe),
            SubAction::Deliver { payload_at: 4 }
        );
    }
}
