//! Recordings of topics: writing and reading the two file formats of `zerosmq record`/`replay`.
//!
//! - **MCAP** (default): the robotics recording format that Foxglove and ROS 2 read. One channel per
//!   topic (message encoding [`MCAP_MESSAGE_ENCODING`], no schema), the payload stored unchanged,
//!   `log_time` = receipt time in nanoseconds since the UNIX epoch. Lossless for any bytes.
//!   Multipart messages go to a second channel of the topic, encoding [`MCAP_MULTIPART_ENCODING`]:
//!   every frame (the payload first) as a 4-byte little-endian length and the bytes.
//!   A typed topic (see [`RecordingWriter::set_schema`]) gets a channel that Foxglove decodes:
//!   message encoding `json`, a `jsonschema` schema record derived from the type, the payload as
//!   JSON, and the postcard schema in the channel's metadata ([`MCAP_POSTCARD_SCHEMA_KEY`], hex)
//!   so that reading turns the JSON back into the postcard payload. A payload that does not
//!   decode as the type goes to the topic's plain channel, unchanged.
//! - **Text**: the original ZeROSMQ's `milliseconds,topic,message` lines (ended by `\r\n`, as the
//!   original writes them), milliseconds counted from the start of the recording. Our writer adds
//!   three decimals (microseconds); the original's replay reads them with `float()`. The message is
//!   everything after the second comma, so commas in payloads survive; payloads with a line break or
//!   bytes that are not UTF-8 cannot be written in this format and are skipped and counted.
//!
//! Reading never panics on a damaged file: [`read_recording`] returns the intact messages before
//! the damage and a [`Damage`] that says where it is, so the caller decides whether to use them.
#![forbid(unsafe_code)]

/// Typed payloads as JSON (the std client's, shared with the CLI and the Foxglove endpoint).
pub use zerosmq::json as typed;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The MCAP message encoding of zerosmq channels: the payload bytes exactly as published.
pub const MCAP_MESSAGE_ENCODING: &str = "zerosmq";

/// The MCAP message encoding of multipart messages: each frame as `u32` LE length + bytes.
pub const MCAP_MULTIPART_ENCODING: &str = "zerosmq.multipart";

/// Channel metadata key of a typed channel: the topic's postcard schema (postcard of a
/// postcard-schema `OwnedNamedType`), in lowercase hex.
pub const MCAP_POSTCARD_SCHEMA_KEY: &str = "zerosmq.postcard_schema";

/// The MCAP message encoding of typed channels.
pub const MCAP_JSON_ENCODING: &str = "json";

/// The MCAP profile written in the header.
pub const MCAP_PROFILE: &str = "zerosmq";

/// The first bytes of every MCAP file.
const MCAP_MAGIC: &[u8] = b"\x89MCAP0\r\n";

/// Target size of an MCAP chunk before compression; a crash loses at most the open chunk.
const MCAP_CHUNK_SIZE: u64 = 256 * 1024;

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMessage {
    /// Nanoseconds: since the UNIX epoch (MCAP) or since the start of the recording (text). Only
    /// differences between messages matter for replay.
    pub time_ns: u64,
    pub topic: String,
    pub payload: Vec<u8>,
    /// Frames after the first of a multipart message; empty for the usual one-frame message.
    pub parts: Vec<Vec<u8>>,
}

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingFormat {
    /// MCAP, lossless (default).
    Mcap,
    /// The original's `milliseconds,topic,message` lines.
    Text,
}

impl RecordingFormat {
    /// The format a new file gets from its name: `.txt`, `.csv` and `.log` are text, anything
    /// else MCAP.
    pub fn from_path(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("txt" | "csv" | "log") => RecordingFormat::Text,
            _ => RecordingFormat::Mcap,
        }
    }

    /// The format of existing content: MCAP when it starts with the MCAP magic, else text.
    pub fn detect(bytes: &[u8]) -> Self {
        if bytes.starts_with(MCAP_MAGIC) {
            RecordingFormat::Mcap
        } else {
            RecordingFormat::Text
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordingFormat::Mcap => "MCAP",
            RecordingFormat::Text => "text",
        }
    }
}

/// Why a recording could not be written or read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("MCAP writer: {0}")]
    Mcap(#[from] mcap::McapError),
}

/// Where a recording is damaged and why; messages before it are intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// `line 7` (text) or `after message 12` (MCAP).
    pub at: String,
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

/// What [`read_recording`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub format: RecordingFormat,
    /// The intact messages, in file order.
    pub messages: Vec<RecordedMessage>,
    /// Set when the file is truncated or corrupt; nothing after it is in `messages`.
    pub damage: Option<Damage>,
}

/// Reads a whole recording (either format, told apart by content).
pub fn read_recording(path: &Path) -> Result<Recording, RecordingError> {
    let bytes = std::fs::read(path).map_err(|source| RecordingError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_recording(&bytes))
}

/// Parses recording content (either format, told apart by content).
pub fn parse_recording(bytes: &[u8]) -> Recording {
    let format = RecordingFormat::detect(bytes);
    let (messages, damage) = match format {
        RecordingFormat::Mcap => parse_mcap(bytes),
        RecordingFormat::Text => parse_text(bytes),
    };
    Recording {
        format,
        messages,
        damage,
    }
}

/// Parses `milliseconds,topic,message` lines. A line without its line ending at the end of the
/// file is a truncated write and counts as damage. Empty lines are skipped.
pub fn parse_text(bytes: &[u8]) -> (Vec<RecordedMessage>, Option<Damage>) {
    let mut messages = Vec::new();
    let mut rest = bytes;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        let damage = |reason: String| {
            Some(Damage {
                at: format!("line {line_no}"),
                reason,
            })
        };
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return (
                messages,
                damage("the last line has no line ending (truncated file)".into()),
            );
        };
        let mut line = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.is_empty() {
            continue;
        }
        match parse_text_line(line) {
            Ok(m) => messages.push(m),
            Err(reason) => return (messages, damage(reason)),
        }
    }
    (messages, None)
}

fn parse_text_line(line: &[u8]) -> Result<RecordedMessage, String> {
    let mut fields = line.splitn(3, |&b| b == b',');
    let (Some(ms), Some(topic), Some(payload)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err("expected 'milliseconds,topic,message'".into());
    };
    let ms = std::str::from_utf8(ms)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .ok_or_else(|| {
            format!(
                "'{}' is not a time in milliseconds",
                String::from_utf8_lossy(ms)
            )
        })?;
    let topic = std::str::from_utf8(topic)
        .ok()
        .filter(|t| zerosmq_core::Topic::new(t).is_ok())
        .ok_or_else(|| format!("'{}' is not a topic name", String::from_utf8_lossy(topic)))?;
    Ok(RecordedMessage {
        time_ns: (ms * 1e6).round() as u64,
        topic: topic.to_owned(),
        payload: payload.to_vec(),
        parts: Vec::new(),
    })
}

/// Frames as `u32` LE length + bytes each.
fn encode_frames(first: &[u8], rest: &[&[u8]]) -> Vec<u8> {
    let frames = || std::iter::once(first).chain(rest.iter().copied());
    let mut out = Vec::with_capacity(frames().map(|f| 4 + f.len()).sum());
    for frame in frames() {
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// The inverse of [`encode_frames`]; at least one frame, every length within the data.
fn decode_frames(mut data: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut frames = Vec::new();
    while !data.is_empty() {
        let (len, rest) = data.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return None;
        }
        let (frame, rest) = rest.split_at(len);
        frames.push(frame.to_vec());
        data = rest;
    }
    let mut frames = frames.into_iter();
    let first = frames.next()?;
    Some((first, frames.collect()))
}

/// Adds the JSON channel of a typed topic and its `jsonschema` schema record.
fn typed_channel(
    writer: &mut mcap::Writer<BufWriter<File>>,
    topic: &str,
    decoder: &typed::JsonDecoder,
) -> Result<u16, RecordingError> {
    let json_schema = decoder.json_schema().to_string();
    let name = &decoder.schema().name;
    let schema_id = writer.add_schema(name, "jsonschema", json_schema.as_bytes())?;
    let bytes = postcard::to_stdvec(decoder.schema()).unwrap_or_default();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let metadata = [(MCAP_POSTCARD_SCHEMA_KEY.to_owned(), hex)].into();
    Ok(writer.add_channel(schema_id, topic, MCAP_JSON_ENCODING, &metadata)?)
}

/// A typed channel's JSON message back as its postcard payload; `None` when the metadata or the
/// JSON do not fit.
fn postcard_from_json(
    metadata: &std::collections::BTreeMap<String, String>,
    json: &[u8],
) -> Option<Vec<u8>> {
    let hex = metadata.get(MCAP_POSTCARD_SCHEMA_KEY)?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    // The decoder's checks keep postcard-dyn away from the types it panics on.
    let decoder = typed::JsonDecoder::from_bytes(&bytes).ok()?;
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    postcard_dyn::to_stdvec_dyn(decoder.schema(), &value).ok()
}

/// Reads MCAP messages in file order. A file cut short (no end magic, a partial record or chunk)
/// or a corrupt record ends the intact part.
pub fn parse_mcap(bytes: &[u8]) -> (Vec<RecordedMessage>, Option<Damage>) {
    let mut messages = Vec::new();
    // A file without a footer still yields every record before the cut; the reader then reports
    // what is wrong.
    let options = mcap::read::Options::IgnoreEndMagic.into();
    let stream = match mcap::read::MessageStream::new_with_options(bytes, options) {
        Ok(s) => s,
        Err(e) => {
            return (
                messages,
                Some(Damage {
                    at: "the start".into(),
                    reason: e.to_string(),
                }),
            )
        }
    };
    for item in stream {
        match item {
            Ok(m) if m.channel.message_encoding == MCAP_MULTIPART_ENCODING => {
                let Some((payload, parts)) = decode_frames(&m.data) else {
                    let at = format!("message {}", messages.len() + 1);
                    let reason = "a multipart message whose frame lengths do not fit".into();
                    return (messages, Some(Damage { at, reason }));
                };
                messages.push(RecordedMessage {
                    time_ns: m.log_time,
                    topic: m.channel.topic.clone(),
                    payload,
                    parts,
                });
            }
            Ok(m) if m.channel.message_encoding == MCAP_JSON_ENCODING => {
                let Some(payload) = postcard_from_json(&m.channel.metadata, &m.data) else {
                    let at = format!("message {}", messages.len() + 1);
                    let reason = format!(
                        "a typed message on '{}' that is not its type's JSON",
                        m.channel.topic
                    );
                    return (messages, Some(Damage { at, reason }));
                };
                messages.push(RecordedMessage {
                    time_ns: m.log_time,
                    topic: m.channel.topic.clone(),
                    payload,
                    parts: Vec::new(),
                });
            }
            Ok(m) => messages.push(RecordedMessage {
                time_ns: m.log_time,
                topic: m.channel.topic.clone(),
                payload: m.data.into_owned(),
                parts: Vec::new(),
            }),
            Err(e) => {
                let reason = match e {
                    mcap::McapError::UnexpectedEof => "the file ends early (truncated)".into(),
                    e => e.to_string(),
                };
                let at = format!("after message {}", messages.len());
                return (messages, Some(Damage { at, reason }));
            }
        }
    }
    // A truncated file may end exactly between records; only the footer and end magic tell.
    if !bytes.ends_with(MCAP_MAGIC) {
        let at = format!("after message {}", messages.len());
        let reason = "the file ends early: no footer (truncated, or the recorder was killed)";
        return (
            messages,
            Some(Damage {
                at,
                reason: reason.into(),
            }),
        );
    }
    (messages, None)
}

/// What a finished recording holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingSummary {
    /// Messages written.
    pub messages: u64,
    /// Messages the format could not hold (text format: line breaks or non-UTF-8), not written.
    pub skipped: u64,
    /// Per topic: messages written.
    pub per_topic: Vec<(String, u64)>,
}

/// Writes a recording, message by message. Call [`RecordingWriter::finish`] at the end: an MCAP
/// file without its footer reads as truncated.
pub struct RecordingWriter {
    path: PathBuf,
    inner: WriterKind,
    start_ns: u64,
    summary: RecordingSummary,
    topic_index: HashMap<String, usize>,
}

enum WriterKind {
    Mcap {
        writer: Box<mcap::Writer<BufWriter<File>>>,
        /// (topic, multipart) -> (channel id, last sequence number).
        channels: HashMap<(String, bool), (u16, u32)>,
        /// Typed topics: their decoder and JSON channel (id, last sequence number), added on
        /// the first message that decodes.
        typed: HashMap<String, (typed::JsonDecoder, Option<(u16, u32)>)>,
    },
    Text(BufWriter<File>),
}

impl std::fmt::Debug for RecordingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingWriter")
            .field("path", &self.path)
            .field("messages", &self.summary.messages)
            .finish()
    }
}

/// Options for new recordings.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// MCAP: compress chunks with zstd (default true).
    pub compress: bool,
    /// MCAP: target chunk size in bytes (default 256 KiB).
    pub chunk_size: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            compress: true,
            chunk_size: MCAP_CHUNK_SIZE,
        }
    }
}

impl RecordingWriter {
    /// Creates (or truncates) `path`. `start_ns` is the recording's start on the clock the message
    /// times use; the text format counts milliseconds from it.
    pub fn create(
        path: &Path,
        format: RecordingFormat,
        start_ns: u64,
        options: &WriterOptions,
    ) -> Result<Self, RecordingError> {
        let file = File::create(path).map_err(|source| RecordingError::Io {
            action: "create",
            path: path.to_owned(),
            source,
        })?;
        let out = BufWriter::new(file);
        let inner = match format {
            RecordingFormat::Mcap => {
                let compression = options.compress.then_some(mcap::Compression::Zstd);
                let writer = mcap::WriteOptions::new()
                    .profile(MCAP_PROFILE)
                    .library(concat!("zerosmq ", env!("CARGO_PKG_VERSION")))
                    .compression(compression)
                    .chunk_size(Some(options.chunk_size))
                    .create(out)?;
                WriterKind::Mcap {
                    writer: Box::new(writer),
                    channels: HashMap::new(),
                    typed: HashMap::new(),
                }
            }
            RecordingFormat::Text => WriterKind::Text(out),
        };
        Ok(RecordingWriter {
            path: path.to_owned(),
            inner,
            start_ns,
            summary: RecordingSummary::default(),
            topic_index: HashMap::new(),
        })
    }

    /// Records `topic`'s messages (from now on) as JSON with its type's schema (MCAP only; the
    /// text format ignores it). Fails when the type cannot be decoded to JSON.
    pub fn set_schema(
        &mut self,
        topic: &str,
        schema: typed::Schema,
    ) -> Result<(), typed::TypedError> {
        if let WriterKind::Mcap { typed: t, .. } = &mut self.inner {
            t.insert(topic.to_owned(), (typed::JsonDecoder::new(schema)?, None));
        }
        Ok(())
    }

    /// Appends one message. Returns false when the format cannot hold it (it is counted in
    /// [`RecordingSummary::skipped`]).
    pub fn write(
        &mut self,
        time_ns: u64,
        topic: &str,
        payload: &[u8],
    ) -> Result<bool, RecordingError> {
        self.write_parts(time_ns, topic, payload, &[])
    }

    /// Appends one message of several frames: `payload`, then `parts` (none: a plain message).
    /// The text format cannot hold more than one frame.
    pub fn write_parts(
        &mut self,
        time_ns: u64,
        topic: &str,
        payload: &[u8],
        parts: &[&[u8]],
    ) -> Result<bool, RecordingError> {
        match &mut self.inner {
            WriterKind::Mcap {
                writer,
                channels,
                typed,
            } => {
                let multipart = !parts.is_empty();
                let decoded = typed.get_mut(topic).filter(|_| !multipart).and_then(|t| {
                    let json = t.0.decode(payload).ok()?;
                    Some((t, json))
                });
                if let Some(((decoder, channel), json)) = decoded {
                    let (channel_id, sequence) = match channel {
                        Some(c) => c,
                        None => channel.insert((typed_channel(writer, topic, decoder)?, 0)),
                    };
                    *sequence = sequence.wrapping_add(1);
                    let header = mcap::records::MessageHeader {
                        channel_id: *channel_id,
                        sequence: *sequence,
                        log_time: time_ns,
                        publish_time: time_ns,
                    };
                    writer.write_to_known_channel(&header, json.to_string().as_bytes())?;
                    return Ok(self.count(topic));
                }
                let key = (topic.to_owned(), multipart);
                let (channel_id, sequence) = match channels.get_mut(&key) {
                    Some(c) => c,
                    None => {
                        let encoding = if multipart {
                            MCAP_MULTIPART_ENCODING
                        } else {
                            MCAP_MESSAGE_ENCODING
                        };
                        let id = writer.add_channel(0, topic, encoding, &Default::default())?;
                        channels.entry(key).or_insert((id, 0))
                    }
                };
                *sequence = sequence.wrapping_add(1);
                let header = mcap::records::MessageHeader {
                    channel_id: *channel_id,
                    sequence: *sequence,
                    log_time: time_ns,
                    publish_time: time_ns,
                };
                if multipart {
                    writer.write_to_known_channel(&header, &encode_frames(payload, parts))?;
                } else {
                    writer.write_to_known_channel(&header, payload)?;
                }
            }
            WriterKind::Text(out) => {
                let text_safe = parts.is_empty()
                    && std::str::from_utf8(payload).is_ok()
                    && !payload.iter().any(|&b| b == b'\n' || b == b'\r');
                if !text_safe {
                    self.summary.skipped += 1;
                    return Ok(false);
                }
                let us = time_ns.saturating_sub(self.start_ns) / 1_000;
                let io = |source| RecordingError::Io {
                    action: "write",
                    path: self.path.clone(),
                    source,
                };
                write!(out, "{}.{:03},{topic},", us / 1_000, us % 1_000).map_err(io)?;
                out.write_all(payload).map_err(io)?;
                out.write_all(b"\r\n").map_err(io)?;
            }
        }
        Ok(self.count(topic))
    }

    /// Counts a written message; true.
    fn count(&mut self, topic: &str) -> bool {
        self.summary.messages += 1;
        let index = *self.topic_index.entry(topic.to_owned()).or_insert_with(|| {
            self.summary.per_topic.push((topic.to_owned(), 0));
            self.summary.per_topic.len() - 1
        });
        self.summary.per_topic[index].1 += 1;
        true
    }

    /// Messages written so far.
    pub fn messages(&self) -> u64 {
        self.summary.messages
    }

    /// Messages given to [`RecordingWriter::write`] so far, written or skipped.
    pub fn offered(&self) -> u64 {
        self.summary.messages + self.summary.skipped
    }

    /// Writes the MCAP summary and footer, flushes and closes the file.
    pub fn finish(self) -> Result<RecordingSummary, RecordingError> {
        let io = |source| RecordingError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        };
        match self.inner {
            WriterKind::Mcap { mut writer, .. } => {
                writer.finish()?;
                let mut out = writer.into_inner();
                out.flush().map_err(io)?;
                out.get_ref().sync_all().map_err(io)?;
            }
            WriterKind::Text(mut out) => {
                out.flush().map_err(io)?;
                out.get_ref().sync_all().map_err(io)?;
            }
        }
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(time_ns: u64, topic: &str, payload: &[u8]) -> RecordedMessage {
        RecordedMessage {
            time_ns,
            topic: topic.into(),
            payload: payload.into(),
            parts: Vec::new(),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("zerosmq-recording-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn write_all(path: &Path, format: RecordingFormat, messages: &[RecordedMessage]) {
        let mut w =
            RecordingWriter::create(path, format, 1_000, &WriterOptions::default()).unwrap();
        for m in messages {
            let parts: Vec<&[u8]> = m.parts.iter().map(Vec::as_slice).collect();
            w.write_parts(m.time_ns, &m.topic, &m.payload, &parts)
                .unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn text_lines_are_the_originals() {
        let path = temp("exact.txt");
        let mut w = RecordingWriter::create(
            &path,
            RecordingFormat::Text,
            1_000,
            &WriterOptions::default(),
        )
        .unwrap();
        assert!(w.write(1_000, "imu", b"1.5").unwrap());
        assert!(w.write(2_501_000, "gps", b"a,b,c").unwrap());
        assert!(!w.write(3_000_000, "gps", b"two\nlines").unwrap());
        assert!(!w.write(3_000_000, "gps", &[0xff, 0]).unwrap());
        assert!(!w.write_parts(3_000_000, "gps", b"a", &[b"b"]).unwrap());
        let summary = w.finish().unwrap();
        assert_eq!(summary.messages, 2);
        assert_eq!(summary.skipped, 3);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"0.000,imu,1.5\r\n2.500,gps,a,b,c\r\n"
        );
    }

    #[test]
    fn text_reads_original_lines() {
        let (m, damage) = parse_text(b"0,a,hello\r\n15,b,x,y\r\n\r\n1002.25,a,\n");
        assert_eq!(damage, None);
        assert_eq!(
            m,
            vec![
                msg(0, "a", b"hello"),
                msg(15_000_000, "b", b"x,y"),
                msg(1_002_250_000, "a", b"")
            ]
        );
    }

    #[test]
    fn text_damage_stops_reading() {
        let (m, damage) = parse_text(b"0,a,1\r\n5,a,2\r\n9,a,tru");
        assert_eq!(m.len(), 2);
        assert_eq!(damage.unwrap().at, "line 3");
        let (m, damage) = parse_text(b"0,a,1\nxx,a,2\n3,a,3\n");
        assert_eq!(m.len(), 1);
        let damage = damage.unwrap();
        assert_eq!(damage.at, "line 2");
        assert!(damage.reason.contains("milliseconds"), "{damage}");
        let (m, damage) = parse_text(b"12,no topic here\n");
        assert!(m.is_empty());
        assert!(damage.is_some());
        let (m, damage) = parse_text(&[0x00, 0xff, 0x10, b'\n']);
        assert!(m.is_empty());
        assert!(damage.is_some());
    }

    #[test]
    fn mcap_round_trip_is_lossless() {
        let path = temp("round.mcap");
        let all_bytes: Vec<u8> = (0..=255).collect();
        let mut multipart = msg(1_700_000_000_000_000_004, "a", b"head");
        multipart.parts = vec![vec![], all_bytes.clone(), b"tail".to_vec()];
        let messages = vec![
            msg(1_700_000_000_000_000_001, "a", b"x,y\nz\r\n"),
            msg(1_700_000_000_000_000_002, "b", &all_bytes),
            msg(1_700_000_000_000_000_003, "a", b""),
            multipart,
            msg(1_700_000_000_000_000_005, "a", b"after"),
        ];
        write_all(&path, RecordingFormat::Mcap, &messages);
        let rec = read_recording(&path).unwrap();
        assert_eq!(rec.format, RecordingFormat::Mcap);
        assert_eq!(rec.damage, None);
        assert_eq!(rec.messages, messages);
    }

    #[test]
    fn truncated_mcap_is_damage_with_an_intact_prefix() {
        let path = temp("cut.mcap");
        let messages: Vec<_> = (0..2_000u64)
            .map(|i| msg(i * 1_000, "t", format!("message {i:05}").as_bytes()))
            .collect();
        let mut w = RecordingWriter::create(
            &path,
            RecordingFormat::Mcap,
            0,
            &WriterOptions {
                compress: false,
                chunk_size: 1024,
            },
        )
        .unwrap();
        for m in &messages {
            w.write(m.time_ns, &m.topic, &m.payload).unwrap();
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 1, 20, 3] {
            let rec = parse_recording(&bytes[..cut]);
            assert!(rec.damage.is_some(), "cut at {cut}");
            assert!(rec.messages.len() <= messages.len());
            assert_eq!(rec.messages[..], messages[..rec.messages.len()]);
        }
        let half = parse_recording(&bytes[..bytes.len() / 2]);
        assert!(half.messages.len() > 500, "{}", half.messages.len());
    }

    #[test]
    fn frames_encode_and_refuse_bad_lengths() {
        let data = encode_frames(b"ab", &[b"", b"c"]);
        assert_eq!(data, b"\x02\0\0\0ab\0\0\0\0\x01\0\0\0c");
        assert_eq!(
            decode_frames(&data),
            Some((b"ab".to_vec(), vec![vec![], b"c".to_vec()]))
        );
        assert_eq!(decode_frames(b""), None);
        assert_eq!(decode_frames(b"\x05\0\0\0ab"), None);
        assert_eq!(decode_frames(b"\x01\0\0"), None);
    }

    #[test]
    fn formats_from_names_and_content() {
        assert_eq!(
            RecordingFormat::from_path(Path::new("a.TXT")),
            RecordingFormat::Text
        );
        assert_eq!(
            RecordingFormat::from_path(Path::new("a.mcap")),
            RecordingFormat::Mcap
        );
        assert_eq!(
            RecordingFormat::from_path(Path::new("bag")),
            RecordingFormat::Mcap
        );
        assert_eq!(RecordingFormat::detect(b"0,a,b\r\n"), RecordingFormat::Text);
    }
}
