//! Every maximum of the wire formats, in one place.
//!
//! Both the master and the clients size their buffers from these, so a change here is a protocol
//! change: a peer built with smaller limits refuses what a peer with larger limits sends.

/// Longest topic name in bytes.
pub const MAX_TOPIC_LEN: usize = 64;

/// Longest node name in bytes.
pub const MAX_NODE_NAME_LEN: usize = 64;

/// Longest text control request the master accepts, in bytes (binary: [`MAX_BINARY_REQUEST_LEN`]).
///
/// The longest valid text request is `REQUEST_STOP_PUB <64> <64>` = 146 bytes; the binary one is
/// shorter. Anything past this limit is answered with an error without being parsed.
pub const MAX_CONTROL_REQUEST_LEN: usize = 512;

/// Buffer that always holds any encoded request (text or binary) except a typed publish request,
/// which needs [`TYPED_REQUEST_BUF_LEN`].
pub const CONTROL_REQUEST_BUF_LEN: usize = 160;

/// Longest schema a typed publish request carries (postcard of a postcard-schema
/// `OwnedNamedType`), in bytes. Every request carrying one is this much larger in memory (no
/// alloc), so it stays small; a struct of a dozen fields with nested structs takes a quarter.
pub const MAX_SCHEMA_LEN: usize = 512;

/// Buffer that always holds an encoded typed publish request (binary only: the schema's length
/// takes up to 2 varint bytes).
pub const TYPED_REQUEST_BUF_LEN: usize = CONTROL_REQUEST_BUF_LEN + MAX_SCHEMA_LEN + 2;

/// Longest binary control request the master accepts: room for a typed publish request.
pub const MAX_BINARY_REQUEST_LEN: usize = MAX_CONTROL_REQUEST_LEN + MAX_SCHEMA_LEN;

/// Longest human-readable detail in an error reply, in bytes (longer details are cut).
pub const MAX_ERROR_DETAIL_LEN: usize = 200;

/// Default TCP port of the master's control service (as the original).
pub const DEFAULT_CONTROL_PORT: u16 = 5555;

/// Version of the binary control encoding carried after [`crate::control::BINARY_MARKER`].
pub const BINARY_PROTOCOL_VERSION: u8 = 1;
