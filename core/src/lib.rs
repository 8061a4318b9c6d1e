//! # zerosmq-core
//!
//! The wire formats of [zerosmq](https://github.com/zerosmq/zerosmq), shared by the master, the
//! std client and the embedded client: `#![no_std]`, no `alloc`, every buffer the caller's.
//!
//! - [`name`]: validated [`Topic`] and [`NodeName`] (one word of printable ASCII, at most
//!   [`limits::MAX_TOPIC_LEN`] bytes).
//! - [`control`]: [`ControlRequest`] / [`ControlReply`] in the original's text protocol (feature
//!   `text`, on by default) and in a compact binary encoding.
//! - [`message`]: the data frame `TOPIC SP PAYLOAD`.
//! - [`zmtp`]: the ZeroMQ wire protocol subset used by the embedded client.
//!
//! Decoders never panic, whatever bytes they are given; they are fuzzed.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "std")]
extern crate std;

pub mod control;
pub mod limits;
pub mod message;
pub mod name;
#[cfg(feature = "std")]
pub mod random;
pub mod zmtp;

pub use control::{
    decode_reply, decode_request, ControlEncodeError, ControlReply, ControlRequest, DecodeError,
    Encoding, ErrorCode, ErrorReply, NodeInfo, ReplyKind, TopicInfo,
};
pub use message::{build_frame, DataFrame, FrameError, READY_PROBE_PREFIX};
pub use name::{NameError, NodeName, Topic};
