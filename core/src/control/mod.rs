//! Control requests and replies: the conversation between a node and the master's REP socket.
//!
//! Two encodings parse into the same types:
//! - the original's text protocol (`text`, feature `text`, on by default), byte for byte, so
//!   original nodes work unchanged;
//! - a compact binary encoding ([`binary`]): [`BINARY_MARKER`], a version byte, then postcard.
//!
//! [`decode_request`] tells the two apart by the first byte; the master answers in the encoding
//! it was asked in ([`Encoding`]).

pub mod binary;
#[cfg(feature = "text")]
pub mod text;

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::name::{NameError, NodeName, Topic};

/// First byte of every binary control message. It can never start (or appear in) UTF-8 text, so no
/// text request can be mistaken for a binary one.
pub const BINARY_MARKER: u8 = 0xFF;

/// How a control message is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The original's UTF-8 text protocol.
    Text,
    /// [`BINARY_MARKER`], version, postcard body.
    Binary,
}

impl Encoding {
    /// The encoding a message uses, judged by its first byte.
    pub fn of(bytes: &[u8]) -> Encoding {
        match bytes.first() {
            Some(&BINARY_MARKER) => Encoding::Binary,
            _ => Encoding::Text,
        }
    }
}

/// A request from a node to the master.
// No alloc in core: a typed request's schema is inline (MAX_SCHEMA_LEN bytes), which makes
// every request that large; a borrowed schema would need a lifetime on every user's requests.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// `REQUEST_PUB node topic` -> [`ControlReply::Granted`] with the port publishers connect to.
    Publish { node: NodeName, topic: Topic },
    /// `REQUEST_SUB node topic` -> [`ControlReply::Granted`] with the port subscribers connect to.
    Subscribe { node: NodeName, topic: Topic },
    /// `REQUEST_STOP_PUB node topic` -> [`ControlReply::Done`].
    StopPublish { node: NodeName, topic: Topic },
    /// `REQUEST_STOP_SUB node topic` -> [`ControlReply::Done`].
    StopSubscribe { node: NodeName, topic: Topic },
    /// `LIST_ALL_TOPICS node null` -> [`ControlReply::Topics`]. The node word is informational.
    ListTopics { node: Option<NodeName> },
    /// `REQUEST_MAP null null` -> [`ControlReply::Graph`].
    Graph,
    /// `LIST_NODES null null` (ours) -> [`ControlReply::Nodes`].
    ListNodes,
    /// `TOPIC_INFO null topic` (ours) -> [`ControlReply::TopicInfo`].
    TopicInfo { topic: Topic },
    /// `NODE_INFO node null` (ours) -> [`ControlReply::NodeInfo`].
    NodeInfo { node: NodeName },
    /// `HEARTBEAT node <session>` (ours) -> [`ControlReply::Alive`]. Claims the node name for the
    /// session (a random number per node instance, 16 hex digits in text) and keeps it alive; the
    /// master drops a claimed node that stops sending these, and refuses the name to another
    /// session while the claim is live. Nodes that never send one are never expired.
    Heartbeat { node: NodeName, session: u64 },
    /// Binary only: [`ControlRequest::Publish`] declaring the topic's schema, the postcard
    /// encoding of a postcard-schema `OwnedNamedType` (core keeps it opaque; the master checks
    /// it). -> [`ControlReply::Granted`]; the first typed publisher sets the topic's schema, a
    /// different one is refused with [`ErrorCode::SchemaMismatch`].
    PublishTyped {
        node: NodeName,
        topic: Topic,
        schema: SchemaBytes,
    },
    /// Binary only: the schema of `topic` -> [`ControlReply::Schema`] (empty when untyped).
    TopicSchema { topic: Topic },
}

/// A topic's schema as carried in [`ControlRequest::PublishTyped`] (at most
/// [`MAX_SCHEMA_LEN`](crate::limits::MAX_SCHEMA_LEN) bytes).
pub type SchemaBytes = heapless::Vec<u8, { crate::limits::MAX_SCHEMA_LEN }>;

impl ControlRequest {
    /// What a successful reply to this request looks like; needed to read text replies, whose
    /// meaning depends on the question (as in the original).
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            ControlRequest::Publish { .. }
            | ControlRequest::PublishTyped { .. }
            | ControlRequest::Subscribe { .. } => ReplyKind::Granted,
            ControlRequest::StopPublish { .. } | ControlRequest::StopSubscribe { .. } => {
                ReplyKind::Done
            }
            ControlRequest::ListTopics { .. } => ReplyKind::Topics,
            ControlRequest::Graph => ReplyKind::Graph,
            ControlRequest::ListNodes => ReplyKind::Nodes,
            ControlRequest::TopicInfo { .. } => ReplyKind::TopicInfo,
            ControlRequest::NodeInfo { .. } => ReplyKind::NodeInfo,
            ControlRequest::Heartbeat { .. } => ReplyKind::Alive,
            ControlRequest::TopicSchema { .. } => ReplyKind::Schema,
        }
    }

    /// Encodes into `buf` and returns the used part.
    pub fn encode<'b>(
        &self,
        encoding: Encoding,
        buf: &'b mut [u8],
    ) -> Result<&'b [u8], ControlEncodeError> {
        let n = match encoding {
            #[cfg(feature = "text")]
            Encoding::Text => text::encode_request(self, buf)?,
            #[cfg(not(feature = "text"))]
            Encoding::Text => return Err(ControlEncodeError::TextDisabled),
            Encoding::Binary => binary::encode_request(self, buf)?,
        };
        Ok(&buf[..n])
    }
}

/// Decodes a request in either encoding. Never panics, whatever `bytes` holds.
pub fn decode_request(bytes: &[u8]) -> Result<ControlRequest, DecodeError> {
    let encoding = Encoding::of(bytes);
    let max = match encoding {
        Encoding::Text => crate::limits::MAX_CONTROL_REQUEST_LEN,
        Encoding::Binary => crate::limits::MAX_BINARY_REQUEST_LEN,
    };
    if bytes.len() > max {
        // A typed request over the limit is told about its schema, the part that is too long.
        if let Some(len) = binary::oversized_schema(bytes) {
            let max = crate::limits::MAX_SCHEMA_LEN;
            return Err(DecodeError::SchemaTooLong { len, max });
        }
        return Err(DecodeError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    match encoding {
        #[cfg(feature = "text")]
        Encoding::Text => text::decode_request(bytes),
        #[cfg(not(feature = "text"))]
        Encoding::Text => Err(DecodeError::TextDisabled),
        Encoding::Binary => {
            binary::decode_request(bytes).map_err(|e| match binary::oversized_schema(bytes) {
                Some(len) => DecodeError::SchemaTooLong {
                    len,
                    max: crate::limits::MAX_SCHEMA_LEN,
                },
                None => e,
            })
        }
    }
}

/// Decodes the reply to a request of kind `kind`, in whichever encoding it came.
pub fn decode_reply(kind: ReplyKind, bytes: &[u8]) -> Result<ControlReply<'_>, DecodeError> {
    match Encoding::of(bytes) {
        #[cfg(feature = "text")]
        Encoding::Text => text::decode_reply(kind, bytes),
        #[cfg(not(feature = "text"))]
        Encoding::Text => {
            let _ = kind;
            Err(DecodeError::TextDisabled)
        }
        Encoding::Binary => binary::decode_reply(bytes),
    }
}

/// The kinds of successful reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Granted,
    Done,
    Topics,
    Graph,
    Nodes,
    TopicInfo,
    NodeInfo,
    Alive,
    Schema,
}

/// A reply from the master. Text bodies borrow from the buffer they were decoded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlReply<'a> {
    /// `REQUEST GRANT <port>`: connect to this port on the master's host.
    Granted { port: u16 },
    /// `REQUEST GRANT`: a stop request was carried out.
    Done,
    /// Topics that have a publisher, joined by `,` (empty when none), as the original.
    Topics(&'a str),
    /// The topic graph as Graphviz DOT source.
    Graph(&'a str),
    /// Node names joined by `,` (empty when none).
    Nodes(&'a str),
    /// Who uses a topic and how much it carried.
    #[serde(borrow)]
    TopicInfo(TopicInfo<'a>),
    /// What a node publishes and subscribes.
    #[serde(borrow)]
    NodeInfo(NodeInfo<'a>),
    /// The request was refused; `detail` says why, for humans.
    #[serde(borrow)]
    Error(ErrorReply<'a>),
    /// `ALIVE <epoch>`: the heartbeat was accepted. `epoch` identifies this run of the master
    /// (16 hex digits in text); a node that sees it change knows the master restarted.
    Alive { epoch: u64 },
    /// Binary only: a topic's schema as declared by its first typed publisher (postcard of a
    /// postcard-schema `OwnedNamedType`); empty when the topic is untyped.
    Schema(&'a [u8]),
}

impl ControlReply<'_> {
    /// Encodes into `buf` and returns the used part.
    pub fn encode<'b>(
        &self,
        encoding: Encoding,
        buf: &'b mut [u8],
    ) -> Result<&'b [u8], ControlEncodeError> {
        let n = match encoding {
            #[cfg(feature = "text")]
            Encoding::Text => text::encode_reply(self, buf)?,
            #[cfg(not(feature = "text"))]
            Encoding::Text => return Err(ControlEncodeError::TextDisabled),
            Encoding::Binary => binary::encode_reply(self, buf)?,
        };
        Ok(&buf[..n])
    }
}

/// Who uses a topic and what it carried, as the master's counters say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo<'a> {
    pub topic: &'a str,
    /// Port publishers connect to (the master's SUB socket).
    pub publish_port: u16,
    /// Port subscribers connect to (the master's PUB socket).
    pub subscribe_port: u16,
    /// Publishing node names joined by `,`.
    pub publishers: &'a str,
    /// Subscribing node names joined by `,`.
    pub subscribers: &'a str,
    /// Messages forwarded so far.
    pub messages: u64,
    /// Payload bytes forwarded so far (all frames).
    pub bytes: u64,
    /// Times a subscriber's queue overflowed (reached the high-water mark): each starts a run of
    /// messages that subscriber misses until it catches up. libzmq's XPUB does not say how many
    /// messages each run is, so runs are what is counted.
    pub overflows: u64,
    /// Connections the master turned away on this topic's ports because a connection or
    /// descriptor limit was reached (native engine; 0 otherwise).
    pub refused: u64,
    /// Milliseconds since the last forwarded message; `None` when nothing was forwarded yet.
    pub idle_ms: Option<u64>,
    /// The topic's schema (see [`ControlReply::Schema`]); empty when untyped. Not in the text
    /// form, which stays as it was.
    pub schema: &'a [u8],
}

/// What a node publishes and subscribes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo<'a> {
    pub node: &'a str,
    /// Topics joined by `,`.
    pub publishes: &'a str,
    /// Topics joined by `,`.
    pub subscribes: &'a str,
}

/// An error reply: a machine-readable code and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply<'a> {
    pub code: ErrorCode,
    pub detail: &'a str,
}

impl fmt::Display for ErrorReply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

/// Why the master refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request could not be parsed (garbage, wrong word count, invalid UTF-8, multipart...).
    BadRequest,
    /// The command word is not one the master knows.
    UnknownCommand,
    /// A topic or node name breaks the name rules.
    InvalidName,
    /// The request is larger than [`crate::limits::MAX_CONTROL_REQUEST_LEN`].
    TooLarge,
    /// The binary encoding's version is not supported.
    UnsupportedVersion,
    /// The node name is claimed by another live node.
    NameInUse,
    /// No such topic.
    UnknownTopic,
    /// No such node.
    UnknownNode,
    /// A configured limit (topics, ports, sockets) is reached.
    LimitReached,
    /// Not allowed for this node.
    Refused,
    /// The master failed internally (for example a socket could not be bound).
    Internal,
    /// A typed publisher declared a schema other than the one the topic has.
    SchemaMismatch,
    /// A declared schema is not a valid postcard-schema type.
    InvalidSchema,
}

impl ErrorCode {
    /// The code as it appears in text replies (`ERROR <code>: <detail>`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::UnknownCommand => "unknown-command",
            ErrorCode::InvalidName => "invalid-name",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::NameInUse => "name-in-use",
            ErrorCode::UnknownTopic => "unknown-topic",
            ErrorCode::UnknownNode => "unknown-node",
            ErrorCode::LimitReached => "limit-reached",
            ErrorCode::Refused => "refused",
            ErrorCode::Internal => "internal",
            ErrorCode::SchemaMismatch => "schema-mismatch",
            ErrorCode::InvalidSchema => "invalid-schema",
        }
    }

    /// Inverse of [`ErrorCode::as_str`].
    pub fn parse(s: &str) -> Option<ErrorCode> {
        const ALL: [ErrorCode; 13] = [
            ErrorCode::NameInUse,
            ErrorCode::BadRequest,
            ErrorCode::UnknownCommand,
            ErrorCode::InvalidName,
            ErrorCode::TooLarge,
            ErrorCode::UnsupportedVersion,
            ErrorCode::UnknownTopic,
            ErrorCode::UnknownNode,
            ErrorCode::LimitReached,
            ErrorCode::Refused,
            ErrorCode::Internal,
            ErrorCode::SchemaMismatch,
            ErrorCode::InvalidSchema,
        ];
        ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Which word of a text request was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Node,
    Topic,
}

/// Why bytes are not a valid control message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Zero bytes.
    Empty,
    /// More bytes than a control message may have.
    TooLong { len: usize, max: usize },
    /// A text message that is not UTF-8.
    InvalidUtf8 { valid_up_to: usize },
    /// A text request that is not three words separated by single spaces.
    WordCount { found: usize },
    /// A command word the protocol does not have (cut to 32 bytes).
    UnknownCommand(heapless::String<32>),
    /// A node or topic word that breaks the name rules.
    InvalidName { word: Word, error: NameError },
    /// A session word that is not 1 to 16 hex digits.
    InvalidSession,
    /// A binary message of a version this build does not speak.
    UnsupportedVersion(u8),
    /// A binary message whose body is not a valid postcard value, or has trailing bytes.
    Malformed,
    /// A text reply that does not have the form the request expects.
    UnexpectedReply,
    /// A text message, and this build has no text protocol (feature `text` is off).
    TextDisabled,
    /// A typed publish request whose schema is longer than
    /// [`MAX_SCHEMA_LEN`](crate::limits::MAX_SCHEMA_LEN).
    SchemaTooLong { len: usize, max: usize },
}

impl DecodeError {
    /// The error code an error reply carries for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLong { .. } | DecodeError::SchemaTooLong { .. } => ErrorCode::TooLarge,
            DecodeError::UnknownCommand(_) => ErrorCode::UnknownCommand,
            DecodeError::InvalidName { .. } => ErrorCode::InvalidName,
            DecodeError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            DecodeError::Empty
            | DecodeError::InvalidUtf8 { .. }
            | DecodeError::WordCount { .. }
            | DecodeError::InvalidSession
            | DecodeError::Malformed
            | DecodeError::UnexpectedReply
            | DecodeError::TextDisabled => ErrorCode::BadRequest,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty message"),
            DecodeError::TooLong { len, max } => {
                write!(f, "message is {len} bytes, the limit is {max}")
            }
            DecodeError::InvalidUtf8 { valid_up_to } => {
                write!(f, "text is not valid UTF-8 (from byte {valid_up_to})")
            }
            DecodeError::WordCount { found } => write!(
                f,
                "expected 3 words separated by single spaces (COMMAND NODE TOPIC), found {found}"
            ),
            DecodeError::UnknownCommand(c) => write!(f, "unknown command '{c}'"),
            DecodeError::InvalidName { word, error } => {
                let w = match word {
                    Word::Node => "node",
                    Word::Topic => "topic",
                };
                write!(f, "invalid {w} name: {error}")
            }
            DecodeError::InvalidSession => f.write_str("session must be 1 to 16 hex digits"),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "binary protocol version {v} is not supported (this master speaks {})",
                crate::limits::BINARY_PROTOCOL_VERSION
            ),
            DecodeError::Malformed => f.write_str("malformed binary message"),
            DecodeError::UnexpectedReply => f.write_str("reply does not match the request"),
            DecodeError::TextDisabled => {
                f.write_str("text control message, but this build speaks only binary")
            }
            DecodeError::SchemaTooLong { len, max } => {
                write!(f, "schema is {len} bytes, the limit is {max}")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlEncodeError {
    /// The caller's buffer is too small for the message.
    BufferTooSmall,
    /// The text encoding was asked for, and this build has none (feature `text` is off).
    TextDisabled,
    /// The message exists only in the binary encoding (typed topics are ours).
    BinaryOnly,
}

impl fmt::Display for ControlEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ControlEncodeError::BufferTooSmall => "buffer too small for the encoded message",
            ControlEncodeError::TextDisabled => {
                "text encoding asked for, but this build speaks only binary"
            }
            ControlEncodeError::BinaryOnly => "this message has no text form (binary only)",
        })
    }
}

impl core::error::Error for ControlEncodeError {}

/// A `fmt::Write` over a caller's slice; fails instead of growing.
#[cfg(feature = "text")]
pub(crate) struct SliceWriter<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

#[cfg(feature = "text")]
impl<'b> SliceWriter<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        SliceWriter { buf, pos: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.pos
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), ControlEncodeError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(ControlEncodeError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(ControlEncodeError::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

#[cfg(feature = "text")]
impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

#[cfg(all(test, feature = "text"))]
mod tests;
