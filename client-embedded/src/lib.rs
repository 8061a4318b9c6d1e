//! # zerosmq-embedded
//!
//! A `no_std`, allocation-free [zerosmq](https://github.com/zerosmq/zerosmq) node for
//! microcontrollers: it speaks ZMTP 3.0/3.1 (the ZeroMQ wire protocol) itself over any TCP
//! stack that offers `embedded-io` streams, asks the master's control service for ports,
//! publishes, subscribes and shows up in the graph.
//!
//! - [`blocking`]: [`Node`], [`Publisher`], [`Subscriber`] over `embedded_io::{Read, Write}`,
//!   connections opened through [`Connect`] ([`StdConnect`] with the `std` feature).
//! - [`asynch`] (feature `async`): the same over `embedded_io_async`, connections opened through
//!   `embedded_nal_async::TcpConnect` (embassy-net's `TcpClient`).
//! - Buffers are the caller's: each publisher and subscriber takes a `&mut [u8]`; a received
//!   payload is borrowed from it, never copied.
//! - When the master restarts, publishers and subscribers notice on their next call, ask for
//!   new grants and reconnect by themselves.
//! - Logging: feature `defmt` or `log` (not both), or none.
//!
//! See the README for an embassy example and the measured footprint.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "std")]
extern crate std;

#[macro_use]
mod fmt;

#[cfg(feature = "async")]
pub mod asynch;
pub mod blocking;
mod clock;
pub mod connect;
#[cfg(feature = "curve")]
mod curve;
mod error;
mod link;
mod node;
mod role;

pub use blocking::{Node, Publisher, Subscriber};
pub use clock::Clock;
#[cfg(feature = "std")]
pub use clock::StdClock;
pub use connect::Connect;
#[cfg(feature = "std")]
pub use connect::{StdConnect, StdError, StdStream};
#[cfg(feature = "curve")]
pub use curve::CurveKeyMismatch;
pub use error::Error;
pub use node::PROBE_LEN;
pub use zerosmq_core::control::{ControlReply, ControlRequest, Encoding, ErrorCode};
pub use zerosmq_core::zmtp::{CredentialsTooLong, PlainCredentials, MIN_RX_LEN};

/// Receive buffer the examples use: greeting, control replies and small messages fit.
pub const RECOMMENDED_BUF_LEN: usize = 256;

/// The smallest role buffer of a node with CURVE: its HELLO and INITIATE are written from it.
/// A published message is boxed in it too, so it must also hold `topic`, a space, the payload
/// and 42 bytes.
#[cfg(feature = "curve")]
pub const CURVE_MIN_BUF_LEN: usize = 320;
