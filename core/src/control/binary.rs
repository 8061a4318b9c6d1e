//! The compact binary encoding: [`BINARY_MARKER`], [`BINARY_PROTOCOL_VERSION`], postcard body.
//!
//! The marker byte is never valid UTF-8, so the master tells binary from text by one byte; the
//! version byte lets a future master refuse (or translate) an older client clearly.

use super::{ControlEncodeError, ControlReply, ControlRequest, DecodeError, BINARY_MARKER};
use crate::limits::{BINARY_PROTOCOL_VERSION, MAX_SCHEMA_LEN};
use crate::name::{NodeName, Topic};

/// Postcard's variant index of [`ControlRequest::PublishTyped`] (its place in the enum).
const PUBLISH_TYPED: u32 = 10;

const HEADER_LEN: usize = 2;

fn encode<T: serde::Serialize>(value: &T, buf: &mut [u8]) -> Result<usize, ControlEncodeError> {
    let (header, body) = match buf.split_first_chunk_mut::<HEADER_LEN>() {
        Some(split) => split,
        None => return Err(ControlEncodeError::BufferTooSmall),
    };
    *header = [BINARY_MARKER, BINARY_PROTOCOL_VERSION];
    let used = postcard::to_slice(value, body).map_err(|_| ControlEncodeError::BufferTooSmall)?;
    Ok(HEADER_LEN + used.len())
}

fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let ([marker, version], body) = match bytes.split_first_chunk::<HEADER_LEN>() {
        Some((header, body)) => (*header, body),
        None if bytes.is_empty() => return Err(DecodeError::Empty),
        None => return Err(DecodeError::Malformed),
    };
    if marker != BINARY_MARKER {
        return Err(DecodeError::Malformed);
    }
    if version != BINARY_PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        // Trailing bytes mean the peer and we disagree on the layout: refuse rather than guess.
        Ok(_) | Err(_) => Err(DecodeError::Malformed),
    }
}

/// The declared schema length of a typed publish request whose schema is over
/// [`MAX_SCHEMA_LEN`], read from its head only; `None` for anything else. Lets the master say
/// which part of the request is too long.
pub fn oversized_schema(bytes: &[u8]) -> Option<usize> {
    let body = match bytes {
        [BINARY_MARKER, BINARY_PROTOCOL_VERSION, body @ ..] => body,
        _ => return None,
    };
    let (variant, rest) = postcard::take_from_bytes::<u32>(body).ok()?;
    if variant != PUBLISH_TYPED {
        return None;
    }
    let (_, rest) = postcard::take_from_bytes::<(NodeName, Topic)>(rest).ok()?;
    let (len, _) = postcard::take_from_bytes::<u32>(rest).ok()?;
    let len = usize::try_from(len).ok()?;
    (len > MAX_SCHEMA_LEN).then_some(len)
}

/// Writes a binary request into `buf`; returns its length.
pub fn encode_request(req: &ControlRequest, buf: &mut [u8]) -> Result<usize, ControlEncodeError> {
    encode(req, buf)
}

/// Parses a binary request. Never panics.
pub fn decode_request(bytes: &[u8]) -> Result<ControlRequest, DecodeError> {
    decode(bytes)
}

/// Writes a binary reply into `buf`; returns its length.
pub fn encode_reply(reply: &ControlReply<'_>, buf: &mut [u8]) -> Result<usize, ControlEncodeError> {
    encode(reply, buf)
}

/// Parses a binary reply. Never panics.
pub fn decode_reply(bytes: &[u8]) -> Result<ControlReply<'_>, DecodeError> {
    decode(bytes)
}
