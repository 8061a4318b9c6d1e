//! # zerosmq-bridge
//!
//! Carries chosen topics between one zerosmq master and one distributed engine: MQTT (a broker
//! such as mosquitto, EMQX or HiveMQ) or Zenoh (peer to peer, or through a `zenohd` router).
//! The bridge is a node of the master (`bridge:mqtt`, `bridge:zenoh`): it subscribes the topics
//! that match `--out` and publishes what the engine brings in on keys that match `--in`. Topic
//! `T` is key `PREFIX/T` (default prefix `zerosmq`); payloads cross byte for byte, and a typed
//! topic's schema crosses with them ([`Schema`]: the Zenoh encoding, MQTT 5 content type and a
//! user property), so the topic is typed on the other master too.
//!
//! See `docs/fleet.md` for the fleet guide and [`bridge`] for the rules (loops, loss, limits).

pub mod bridge;
pub mod counters;
pub mod echo;
pub mod glob;
pub mod mqtt;
pub mod zenoh_engine;

pub use bridge::{Bridge, Engine, Options, Schema, SendError};
pub use counters::Counters;
pub use glob::Glob;

/// A random bridge id, the origin mark of its messages in the engine.
pub fn random_id() -> String {
    format!("{:016x}", zerosmq_core::random::random_u64())
}
