//! Data messages: one ZeroMQ frame `TOPIC SP PAYLOAD`, the payload arbitrary bytes.
//!
//! This is the original's data format; the topic prefix is also what ZeroMQ's prefix
//! subscriptions match on. Build and split without allocation.

use core::fmt;

/// Byte between topic and payload.
pub const SEPARATOR: u8 = b' ';

/// First bytes of a *ready probe*: the slow-joiner fix.
///
/// A subscriber that wants to know when its path through the master is live subscribes (on its
/// SUB socket to the master's per-topic PUB socket) to `READY_PROBE_PREFIX` followed by a nonce of
/// its choice (at most [`MAX_READY_PROBE_LEN`] bytes in all). The master's per-topic socket is an
/// XPUB: when it reads that subscription it sends one message whose bytes are exactly the
/// subscription's bytes, which only this subscriber matches. Subscriptions travel in order on one
/// connection, so when the probe message arrives, the master has processed the topic subscription
/// too, and every later message on the topic is delivered. The subscriber then unsubscribes the
/// probe. Original nodes never subscribe to a prefix starting with a NUL byte and see nothing.
///
/// A publisher knows its path is live when the master's per-topic SUB socket has subscribed to it:
/// the std client publishes through an XPUB socket and waits for that subscription; the embedded
/// client sees the SUBSCRIBE command in ZMTP.
pub const READY_PROBE_PREFIX: &[u8] = b"\x00zerosmq-ready ";

/// Longest ready probe (prefix and nonce) the master answers.
pub const MAX_READY_PROBE_LEN: usize = 64;

/// Why a frame could not be built or split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The caller's buffer cannot hold topic, separator and payload.
    BufferTooSmall { needed: usize },
    /// The frame has no space, so it has no topic.
    MissingSeparator,
    /// The frame's topic is not the one expected.
    TopicMismatch,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BufferTooSmall { needed } => {
                write!(
                    f,
                    "buffer too small for the data frame ({needed} bytes needed)"
                )
            }
            FrameError::MissingSeparator => f.write_str("data frame has no space after the topic"),
            FrameError::TopicMismatch => f.write_str("data frame is for another topic"),
        }
    }
}

impl core::error::Error for FrameError {}

/// A data frame split into topic and payload; both borrow the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFrame<'a> {
    /// Bytes before the first space (not validated: a frame is data, not a request).
    pub topic: &'a [u8],
    /// Bytes after the first space.
    pub payload: &'a [u8],
}

impl<'a> DataFrame<'a> {
    /// Splits at the first space. Never panics.
    pub fn split(frame: &'a [u8]) -> Result<Self, FrameError> {
        let at = frame
            .iter()
            .position(|&b| b == SEPARATOR)
            .ok_or(FrameError::MissingSeparator)?;
        let (topic, rest) = frame.split_at(at);
        Ok(DataFrame {
            topic,
            payload: rest.get(1..).unwrap_or(&[]),
        })
    }

    /// The payload of `frame` if it is a message on exactly `topic`.
    pub fn payload_for(frame: &'a [u8], topic: &str) -> Result<&'a [u8], FrameError> {
        let rest = frame
            .strip_prefix(topic.as_bytes())
            .ok_or(FrameError::TopicMismatch)?;
        match rest.split_first() {
            Some((&SEPARATOR, payload)) => Ok(payload),
            Some(_) => Err(FrameError::TopicMismatch),
            None => Err(FrameError::MissingSeparator),
        }
    }

    /// The topic as text, when it is UTF-8.
    pub fn topic_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.topic).ok()
    }

    /// Bytes this frame takes when built.
    pub fn len(&self) -> usize {
        frame_len(self.topic.len(), self.payload.len())
    }

    /// True when topic and payload are both empty (a frame is never shorter than one byte).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes `TOPIC SP PAYLOAD` into `buf`; returns the used part.
    pub fn build<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], FrameError> {
        build_frame(self.topic, self.payload, buf)
    }
}

/// Length of a frame with a topic of `topic_len` and a payload of `payload_len` bytes.
pub const fn frame_len(topic_len: usize, payload_len: usize) -> usize {
    topic_len.saturating_add(1).saturating_add(payload_len)
}

/// Writes `topic SP payload` into `buf`; returns the used part.
pub fn build_frame<'b>(
    topic: &[u8],
    payload: &[u8],
    buf: &'b mut [u8],
) -> Result<&'b [u8], FrameError> {
    let needed = frame_len(topic.len(), payload.len());
    let out = buf
        .get_mut(..needed)
        .ok_or(FrameError::BufferTooSmall { needed })?;
    let (t, rest) = out.split_at_mut(topic.len());
    t.copy_from_slice(topic);
    if let Some((sep, p)) = rest.split_first_mut() {
        *sep = SEPARATOR;
        p.copy_from_slice(payload);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_split_binary_payload() {
        let mut buf = [0u8; 32];
        let payload = [0u8, 0xff, b' ', b'\n', 7];
        let frame = build_frame(b"imu", &payload, &mut buf).unwrap();
        assert_eq!(frame, b"imu \x00\xff \n\x07");
        let split = DataFrame::split(frame).unwrap();
        assert_eq!(split.topic, b"imu");
        assert_eq!(split.payload, &payload);
        assert_eq!(split.len(), frame.len());
        assert_eq!(DataFrame::payload_for(frame, "imu"), Ok(&payload[..]));
    }

    #[test]
    fn refuses_what_does_not_fit_or_match() {
        let mut buf = [0u8; 4];
        assert_eq!(
            build_frame(b"imu", b"x", &mut buf),
            Err(FrameError::BufferTooSmall { needed: 5 })
        );
        assert_eq!(
            DataFrame::split(b"nospace"),
            Err(FrameError::MissingSeparator)
        );
        assert_eq!(
            DataFrame::payload_for(b"imu2 x", "imu"),
            Err(FrameError::TopicMismatch)
        );
        assert_eq!(
            DataFrame::payload_for(b"imu", "imu"),
            Err(FrameError::MissingSeparator)
        );
        assert_eq!(DataFrame::payload_for(b"imu ", "imu"), Ok(&b""[..]));
        assert_eq!(DataFrame::split(b" x").unwrap().topic, b"");
    }
}
