//! The original's text protocol: `COMMAND NODE TOPIC` requests, `REQUEST GRANT <port>` replies.
//!
//! Requests are exactly three words separated by single spaces; unused words are the literal
//! `null`. Our extensions (`LIST_NODES`, `TOPIC_INFO`, `NODE_INFO`) follow the same shape, and
//! error replies are `ERROR <code>: <detail>`.

use core::fmt::Write as _;

use super::{
    ControlEncodeError, ControlReply, ControlRequest, DecodeError, ErrorCode, ErrorReply, NodeInfo,
    ReplyKind, SliceWriter, TopicInfo, Word,
};
use crate::name::{NodeName, Topic};

const NULL: &str = "null";
const GRANT: &str = "REQUEST GRANT";
const ERROR_PREFIX: &str = "ERROR ";
const ALIVE: &str = "ALIVE";

/// Parses a text request. Never panics.
pub fn decode_request(bytes: &[u8]) -> Result<ControlRequest, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let text = core::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let mut words = text.split(' ');
    let (Some(command), Some(node), Some(topic), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(DecodeError::WordCount {
            found: text.split(' ').count(),
        });
    };
    let node_name = || {
        NodeName::new(node).map_err(|error| DecodeError::InvalidName {
            word: Word::Node,
            error,
        })
    };
    let topic_name = || {
        Topic::new(topic).map_err(|error| DecodeError::InvalidName {
            word: Word::Topic,
            error,
        })
    };
    Ok(match command {
        "REQUEST_PUB" => ControlRequest::Publish {
            node: node_name()?,
            topic: topic_name()?,
        },
        "REQUEST_SUB" => ControlRequest::Subscribe {
            node: node_name()?,
            topic: topic_name()?,
        },
        "REQUEST_STOP_PUB" => ControlRequest::StopPublish {
            node: node_name()?,
            topic: topic_name()?,
        },
        "REQUEST_STOP_SUB" => ControlRequest::StopSubscribe {
            node: node_name()?,
            topic: topic_name()?,
        },
        "LIST_ALL_TOPICS" => ControlRequest::ListTopics {
            node: if node == NULL {
                None
            } else {
                Some(node_name()?)
            },
        },
        "REQUEST_MAP" => ControlRequest::Graph,
        "LIST_NODES" => ControlRequest::ListNodes,
        "TOPIC_INFO" => ControlRequest::TopicInfo {
            topic: topic_name()?,
        },
        "NODE_INFO" => ControlRequest::NodeInfo { node: node_name()? },
        "HEARTBEAT" => ControlRequest::Heartbeat {
            node: node_name()?,
            session: parse_hex(topic)?,
        },
        other => {
            let mut cut = heapless::String::new();
            for c in other.chars() {
                if cut.push(c).is_err() {
                    break;
                }
            }
            return Err(DecodeError::UnknownCommand(cut));
        }
    })
}

/// Writes a text request into `buf`; returns its length.
pub fn encode_request(req: &ControlRequest, buf: &mut [u8]) -> Result<usize, ControlEncodeError> {
    let mut w = SliceWriter::new(buf);
    let r = match req {
        ControlRequest::Publish { node, topic } => write!(w, "REQUEST_PUB {node} {topic}"),
        ControlRequest::Subscribe { node, topic } => write!(w, "REQUEST_SUB {node} {topic}"),
        ControlRequest::StopPublish { node, topic } => write!(w, "REQUEST_STOP_PUB {node} {topic}"),
        ControlRequest::StopSubscribe { node, topic } => {
            write!(w, "REQUEST_STOP_SUB {node} {topic}")
        }
        ControlRequest::ListTopics { node } => {
            write!(
                w,
                "LIST_ALL_TOPICS {} {NULL}",
                node.as_ref().map_or(NULL, |n| n.as_str())
            )
        }
        ControlRequest::Graph => write!(w, "REQUEST_MAP {NULL} {NULL}"),
        ControlRequest::ListNodes => write!(w, "LIST_NODES {NULL} {NULL}"),
        ControlRequest::TopicInfo { topic } => write!(w, "TOPIC_INFO {NULL} {topic}"),
        ControlRequest::NodeInfo { node } => write!(w, "NODE_INFO {node} {NULL}"),
        ControlRequest::Heartbeat { node, session } => write!(w, "HEARTBEAT {node} {session:016x}"),
        ControlRequest::PublishTyped { .. } | ControlRequest::TopicSchema { .. } => {
            return Err(ControlEncodeError::BinaryOnly)
        }
    };
    r.map_err(|_| ControlEncodeError::BufferTooSmall)?;
    Ok(w.len())
}

/// Writes a text reply into `buf`; returns its length.
pub fn encode_reply(reply: &ControlReply<'_>, buf: &mut [u8]) -> Result<usize, ControlEncodeError> {
    let mut w = SliceWriter::new(buf);
    let r = match reply {
        ControlReply::Granted { port } => write!(w, "{GRANT} {port}"),
        ControlReply::Done => w.write_str(GRANT),
        ControlReply::Topics(s) | ControlReply::Graph(s) | ControlReply::Nodes(s) => w.write_str(s),
        ControlReply::TopicInfo(t) => {
            let r = write!(
                w,
                "TOPIC_INFO topic={} publish_port={} subscribe_port={} messages={} bytes={} overflows={} refused={} idle_ms=",
                t.topic, t.publish_port, t.subscribe_port, t.messages, t.bytes, t.overflows, t.refused
            );
            r.and_then(|()| match t.idle_ms {
                Some(ms) => write!(w, "{ms}"),
                None => Ok(()),
            })
            .and_then(|()| {
                write!(
                    w,
                    " publishers={} subscribers={}",
                    t.publishers, t.subscribers
                )
            })
        }
        ControlReply::NodeInfo(n) => write!(
            w,
            "NODE_INFO node={} publishes={} subscribes={}",
            n.node, n.publishes, n.subscribes
        ),
        ControlReply::Error(e) => write!(w, "{ERROR_PREFIX}{}: {}", e.code.as_str(), e.detail),
        ControlReply::Alive { epoch } => write!(w, "{ALIVE} {epoch:016x}"),
        ControlReply::Schema(_) => return Err(ControlEncodeError::BinaryOnly),
    };
    r.map_err(|_| ControlEncodeError::BufferTooSmall)?;
    Ok(w.len())
}

/// Parses a text reply to a request whose successful reply is of kind `kind`. Never panics.
pub fn decode_reply(kind: ReplyKind, bytes: &[u8]) -> Result<ControlReply<'_>, DecodeError> {
    let text = core::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if let Some(rest) = text.strip_prefix(ERROR_PREFIX) {
        let (code, detail) = match rest.split_once(": ") {
            Some((code, detail)) => match ErrorCode::parse(code) {
                Some(code) => (code, detail),
                None => (ErrorCode::Internal, rest),
            },
            None => (ErrorCode::Internal, rest),
        };
        return Ok(ControlReply::Error(ErrorReply { code, detail }));
    }
    let bad = DecodeError::UnexpectedReply;
    Ok(match kind {
        ReplyKind::Granted => {
            let port = text
                .strip_prefix(GRANT)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or(bad)?;
            ControlReply::Granted {
                port: port.parse().map_err(|_| DecodeError::UnexpectedReply)?,
            }
        }
        ReplyKind::Done if text == GRANT => ControlReply::Done,
        ReplyKind::Done => return Err(bad),
        ReplyKind::Alive => {
            let epoch = text
                .strip_prefix(ALIVE)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or(bad)?;
            ControlReply::Alive {
                epoch: parse_hex(epoch).map_err(|_| DecodeError::UnexpectedReply)?,
            }
        }
        ReplyKind::Topics => ControlReply::Topics(text),
        ReplyKind::Graph => ControlReply::Graph(text),
        ReplyKind::Nodes => ControlReply::Nodes(text),
        ReplyKind::TopicInfo => {
            let mut f = Fields::new(text, "TOPIC_INFO")?;
            let topic = f.next("topic")?;
            let publish_port = f.number("publish_port")?;
            let subscribe_port = f.number("subscribe_port")?;
            let messages = f.number("messages")?;
            let bytes = f.number("bytes")?;
            let overflows = f.number("overflows")?;
            let refused = f.number("refused")?;
            let idle = f.next("idle_ms")?;
            let idle_ms = if idle.is_empty() {
                None
            } else {
                Some(parse_number(idle)?)
            };
            let publishers = f.next("publishers")?;
            let subscribers = f.next("subscribers")?;
            f.end()?;
            ControlReply::TopicInfo(TopicInfo {
                topic,
                publish_port,
                subscribe_port,
                publishers,
                subscribers,
                messages,
                bytes,
                overflows,
                refused,
                idle_ms,
                schema: &[],
            })
        }
        // No text request asks for a schema.
        ReplyKind::Schema => return Err(bad),
        ReplyKind::NodeInfo => {
            let mut f = Fields::new(text, "NODE_INFO")?;
            let node = f.next("node")?;
            let publishes = f.next("publishes")?;
            let subscribes = f.next("subscribes")?;
            f.end()?;
            ControlReply::NodeInfo(NodeInfo {
                node,
                publishes,
                subscribes,
            })
        }
    })
}

/// `HEAD key=value key=value ...` with keys in a fixed order.
struct Fields<'a>(core::str::Split<'a, char>);

impl<'a> Fields<'a> {
    fn new(text: &'a str, head: &str) -> Result<Self, DecodeError> {
        let mut words = text.split(' ');
        if words.next() != Some(head) {
            return Err(DecodeError::UnexpectedReply);
        }
        Ok(Fields(words))
    }

    fn next(&mut self, key: &str) -> Result<&'a str, DecodeError> {
        let word = self.0.next().ok_or(DecodeError::UnexpectedReply)?;
        let (k, v) = word.split_once('=').ok_or(DecodeError::UnexpectedReply)?;
        if k == key {
            Ok(v)
        } else {
            Err(DecodeError::UnexpectedReply)
        }
    }

    fn number<T: core::str::FromStr>(&mut self, key: &str) -> Result<T, DecodeError> {
        parse_number(self.next(key)?)
    }

    fn end(mut self) -> Result<(), DecodeError> {
        match self.0.next() {
            None => Ok(()),
            Some(_) => Err(DecodeError::UnexpectedReply),
        }
    }
}

/// 1 to 16 hex digits (no sign, no prefix).
fn parse_hex(s: &str) -> Result<u64, DecodeError> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DecodeError::InvalidSession);
    }
    u64::from_str_radix(s, 16).map_err(|_| DecodeError::InvalidSession)
}

fn parse_number<T: core::str::FromStr>(s: &str) -> Result<T, DecodeError> {
    s.parse().map_err(|_| DecodeError::UnexpectedReply)
}
