//! The native data path: ZMTP over the node's own TCP sockets, driven by `zerosmq_core::zmtp`.
//!
//! libzmq hands every message from the application thread to its I/O thread and back; here the
//! caller's thread reads and writes the socket itself when it can (see [`publisher_link`] for
//! when a publisher hands bytes to the node's I/O thread instead). Pieces:
//!
//! - [`handshake`]: a non-blocking connect, then the NULL, PLAIN or CURVE client handshake
//!   through core's [`Connection`](zerosmq_core::zmtp::Connection), read exactly up to the
//!   peer's READY and advanced by its caller within the caller's deadline.
//! - [`mechanism`]: the one place that picks NULL, PLAIN or CURVE for every connection, data
//!   and control, and frames what is written and read once it is open (CURVE boxes).
//! - [`control`]: the node's control requests on a ZMTP REQ of our own, driven blocking by a
//!   caller or on readiness by the I/O thread (heartbeats, claims, re-registration).
//! - [`inbound`]: frames after the handshake, decoded in place from large reads.
//! - [`io_thread`]: one thread per node (`mio`) that owns the publishers' connections and runs
//!   the node's timers (claim waits, heartbeats, PINGs, reconnect backoff, idle subscriber
//!   links), none of which blocks it.
//! - [`publisher_link`], [`subscriber_link`]: one topic's connection, reconnecting by itself.
//! - [`sys`]: the few socket calls std does not offer, through `rustix` (non-blocking send,
//!   a read into spare capacity, `ppoll`).

pub(crate) mod control;
pub(crate) mod handshake;
pub(crate) mod inbound;
pub(crate) mod io_thread;
pub(crate) mod mechanism;
pub(crate) mod publisher_link;
pub(crate) mod subscriber_link;
pub(crate) mod sys;

use std::time::Duration;

/// How long after the last byte from the master we send a ZMTP PING, and how long a silent
/// connection lives before it is dropped as half-open: libzmq's settings of the old path.
pub(crate) const PING_AFTER: Duration = Duration::from_secs(10);
pub(crate) const DEAD_AFTER: Duration = Duration::from_secs(30);

/// First and longest wait between reconnect attempts (libzmq waited 100 ms each time; the
/// backoff stops a node from hammering a master that is down for long).
pub(crate) const RECONNECT_FIRST: Duration = Duration::from_millis(100);
pub(crate) const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// Doubles a reconnect wait up to [`RECONNECT_MAX`].
pub(crate) fn next_backoff(wait: Duration) -> Duration {
    (wait * 2).min(RECONNECT_MAX)
}
