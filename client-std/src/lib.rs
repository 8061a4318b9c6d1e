//! # zerosmq
//!
//! The std node library of zerosmq: connect to a master, publish and subscribe to topics, list
//! topics and nodes, fetch the topic graph.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let node = zerosmq::Node::connect("talker")?; // ZEROSMQ_MASTER or tcp://127.0.0.1:5555
//! let mut chatter = node.advertise("chatter")?;
//! let mut echo = node.subscribe("chatter")?;
//! chatter.wait_ready(Duration::from_secs(2))?; // the slow-joiner fix: nothing below is lost
//! echo.wait_ready(Duration::from_secs(2))?;
//! chatter.publish(b"hello")?;
//! let msg = echo.recv()?;
//! assert_eq!(msg.payload(), b"hello");
//! # Ok::<(), zerosmq::Error>(())
//! ```
//!
//! With the `curve` feature, [`NodeBuilder::curve`] (or the environment variables
//! [`CURVE_SERVER_KEY_ENV`] and [`CURVE_KEYS_ENV`]) encrypts and authenticates every
//! connection of the node with CurveZMQ, for a master started with `--curve-keys`.

#![deny(unsafe_code)]

#[cfg(feature = "curve")]
pub mod curve;
mod error;
#[cfg(feature = "json")]
pub mod json;
mod node;
mod publisher;
mod subscriber;
mod transport;

pub use error::{Error, Result};
pub use node::{
    Node, NodeBuilder, NodeInfo, TopicInfo, CURVE_KEYS_ENV, CURVE_SERVER_KEY_ENV,
    DEFAULT_CLAIM_WAIT, DEFAULT_HEARTBEAT, DEFAULT_MASTER, DEFAULT_TIMEOUT, MASTER_ENV,
};
/// A typed topic's schema as the master keeps it and subscribers read it.
pub use postcard_schema::schema::owned::OwnedNamedType;
/// The schema derive and types of typed topics: `#[derive(Serialize, Deserialize, Schema)]`,
/// with `#[postcard(crate = zerosmq::postcard_schema)]` unless the crate depends on
/// `postcard-schema` itself.
pub use postcard_schema::{self, Schema};
pub use publisher::Publisher;
pub use subscriber::{Message, Subscriber};
pub use zerosmq_core::ErrorCode;
