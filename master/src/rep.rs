//! The control port: a ZMTP REP server in the master's run loop, on the engine's [`Handshake`]
//! (core's `Connection`: NULL, PLAIN or CURVE, admitted as the data ports admit, minus the
//! per-topic ACL, which applies to each request instead).
//!
//! REP semantics as libzmq's: a request's envelope (routing frames up to the empty delimiter,
//! `zmtp::envelope`) goes back in front of its one reply, and a peer that pipelines requests
//! gets the replies in order. Connections take turns (a ready list, as the data plane's): one
//! request per turn, so a pipelining peer cannot starve a REQ that waits for one reply. A peer
//! whose replies pile up unread is not read until they are written (TCP backpressure), so its
//! queue stays bounded.

use std::collections::VecDeque;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use tracing::{debug, warn};
use zerosmq_core::zmtp::command::encode_pong;
use zerosmq_core::zmtp::envelope::split_request;
use zerosmq_core::zmtp::stream::{next_unit, StreamError, Unit};
use zerosmq_core::zmtp::{Command, FrameHeader, SocketType, GREETING_LEN};

use crate::engine::{Auth, Handshake, HandshakeError, Opened, HANDSHAKE, KEEPALIVE_IDLE};
use crate::ratelimit::{PerPeer, RateLimited};
use crate::replies::Queued;

/// Largest frame a control peer may send: requests above `MAX_CONTROL_REQUEST_LEN` but below
/// this get a `too-large` reply; above it the peer is dropped (it cannot make the master buffer
/// gigabytes).
pub(crate) const MAX_FRAME: u64 = 16 << 20;

/// A whole request message (envelope and frames) at most.
const MAX_MESSAGE: usize = (MAX_FRAME as usize) + (64 << 10);

/// Control connections open at once; past it a new one is accepted and closed.
pub(crate) const MAX_CONNECTIONS: usize = 4096;

/// Replies (and handshake commands) queued unwritten for one peer before it is not read any
/// more until they are written.
const MAX_PENDING: usize = 256;

/// Bytes read at once.
const READ_LEN: usize = 64 << 10;

/// Connections accepted per turn of the listener (the rest on the next turn).
const ACCEPTS_PER_TURN: usize = 64;

/// Token of control connection `i`: counted down from just below the broker's own tokens, so
/// its slot bits are all ones, a slot the engine never uses (`engine::MAX_SLOTS`).
fn token(i: usize) -> Token {
    Token(usize::MAX - 2 - i)
}

/// The connection a token stands for, if it is a control connection's.
pub(crate) fn index(token: Token) -> Option<usize> {
    let i = (usize::MAX - 2).checked_sub(token.0)?;
    (i < MAX_CONNECTIONS).then_some(i)
}

/// A request taken from a connection, to be answered with [`ControlPort::reply`].
pub(crate) struct Request {
    conn: usize,
    /// The connection's generation, so a reply never goes to a later connection in its slot.
    generation: u64,
    /// The whole message as plain frames.
    wire: Vec<u8>,
    envelope: std::ops::Range<usize>,
    body: std::ops::Range<usize>,
    /// Frames after the delimiter.
    pub frames: usize,
    /// The PLAIN user or the CURVE client's key name.
    pub user: Option<String>,
    /// The peer's IP address (for rate-limited warnings and per-peer reply bounds).
    pub peer: String,
}

impl Request {
    pub(crate) fn body(&self) -> &[u8] {
        &self.wire[self.body.clone()]
    }
}

/// A reply's bytes on their way out: owned bytes, then optionally a shared reply's body.
struct Chunk {
    bytes: Vec<u8>,
    /// A shared reply (its body written after `bytes` when `write_body`) and the count of the
    /// peer's queued large replies it holds until written.
    shared: Option<(Queued, bool)>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.bytes.len()
            + match &self.shared {
                Some((q, true)) => q.bytes().len(),
                _ => 0,
            }
    }
}

struct RepConn {
    stream: TcpStream,
    peer: SocketAddr,
    ip: String,
    generation: u64,
    handshake: Handshake,
    /// Bytes read and not yet handled.
    input: Vec<u8>,
    out: VecDeque<Chunk>,
    /// Bytes of `out`'s front already written.
    written: usize,
    /// The peer closed its side: what is in `input` is still answered, then it is closed.
    eof: bool,
    /// On the ready list.
    queued: bool,
    /// Not read until its queued replies are written.
    paused: bool,
    accepted: Instant,
    last_recv: Instant,
    last_ping: Instant,
}

/// Why a control connection is closed.
enum Close {
    Stream(StreamError),
    Handshake(HandshakeError),
    Io(io::Error),
    /// A read failed before the peer's greeting was whole (why such a peer leaves, the error).
    InGreeting(&'static str, io::Error),
    Malformed,
    PeerError,
    Closed(&'static str),
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Stream(e) => e.fmt(f),
            Close::Handshake(e) => e.fmt(f),
            Close::Io(e) => e.fmt(f),
            Close::InGreeting(why, e) => write!(f, "{why}: {e}"),
            Close::Malformed => f.write_str("malformed command"),
            Close::PeerError => f.write_str("peer sent ERROR"),
            Close::Closed(why) => f.write_str(why),
        }
    }
}

/// The control port's listener and connections.
pub(crate) struct ControlPort {
    listener: TcpListener,
    port: u16,
    conns: Vec<Option<RepConn>>,
    free: Vec<usize>,
    open: usize,
    next_generation: u64,
    auth: Option<Auth>,
    heartbeat: Duration,
    /// Connections that may have a request waiting, served in turn.
    ready: VecDeque<usize>,
    /// Connections with replies to write at the end of the batch.
    touched: Vec<usize>,
    /// The listener may have connections waiting.
    accept_pending: bool,
    refused: RateLimited,
    /// Requests without the REQ envelope, per peer.
    logs: PerPeer,
    next_sweep: Instant,
    /// What each read goes into first.
    scratch: Box<[u8]>,
}

impl ControlPort {
    /// Binds `bind:port` and watches it.
    pub(crate) fn bind(
        bind: &str,
        port: u16,
        auth: Option<Auth>,
        heartbeat: Duration,
        registry: &Registry,
    ) -> io::Result<ControlPort> {
        let listener = crate::ports::listen(bind, port)?;
        let port = listener.local_addr()?.port();
        registry.register(
            &mut SourceFd(&listener.as_raw_fd()),
            crate::broker::TOKEN_CONTROL,
            Interest::READABLE,
        )?;
        let heartbeat = heartbeat.max(Duration::from_millis(10));
        Ok(ControlPort {
            listener,
            port,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            next_generation: 0,
            auth,
            heartbeat,
            ready: VecDeque::new(),
            touched: Vec::new(),
            accept_pending: true,
            refused: RateLimited::default(),
            logs: PerPeer::default(),
            next_sweep: Instant::now() + sweep_every(heartbeat),
            scratch: vec![0u8; READ_LEN].into_boxed_slice(),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Whether work is waiting that no event will announce (the loop must not sleep).
    pub(crate) fn is_hot(&self) -> bool {
        self.accept_pending || !self.ready.is_empty()
    }

    /// When the next sweep (handshake deadlines, heartbeats) is due.
    pub(crate) fn next_sweep(&self) -> Instant {
        self.next_sweep
    }

    /// The listener is readable.
    pub(crate) fn on_listener(&mut self) {
        self.accept_pending = true;
    }

    /// A connection's readiness.
    pub(crate) fn on_event(&mut self, idx: usize, read: bool, write: bool) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if write && !conn.out.is_empty() {
            self.flush(idx);
        }
        if read {
            self.make_ready(idx);
        }
    }

    fn make_ready(&mut self, idx: usize) {
        if let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) {
            if !conn.queued && !conn.paused {
                conn.queued = true;
                self.ready.push_back(idx);
            }
        }
    }

    /// The next request of the connections' turns (accepting new ones first), or `None` when
    /// none is waiting.
    pub(crate) fn next_request(&mut self, registry: &Registry, now: Instant) -> Option<Request> {
        if self.accept_pending {
            self.accept(registry, now);
        }
        while let Some(idx) = self.ready.pop_front() {
            let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            conn.queued = false;
            if conn.out.len() >= MAX_PENDING {
                // Read again once its replies are written (`flush`).
                conn.paused = true;
                continue;
            }
            match self.take_request(idx, now) {
                Ok(Some(request)) => {
                    // Its next request waits for the others' turns.
                    self.make_ready(idx);
                    return Some(request);
                }
                // Nothing whole in the input, and the socket said "would block": the next
                // bytes come with an edge.
                Ok(None) => {}
                Err(why) => self.close(idx, why),
            }
        }
        None
    }

    /// Handles the units at the front of a connection's input until a request is whole, reading
    /// more when the input holds none; `None` when the socket has nothing more for now.
    fn take_request(&mut self, idx: usize, now: Instant) -> Result<Option<Request>, Close> {
        loop {
            let conn = self.conns[idx].as_mut().ok_or(Close::Closed("gone"))?;
            let unit = next_unit(
                &conn.input,
                conn.handshake.wants_greeting(),
                MAX_FRAME,
                MAX_MESSAGE,
            )
            .map_err(Close::Stream)?;
            let consumed = match unit {
                Unit::Incomplete { .. } => {
                    if conn.eof {
                        // As on the data ports: a libzmq peer of another mechanism may
                        // leave before any of its greeting is out, or with part of it sent.
                        return Err(Close::Closed(if conn.handshake.wants_greeting() {
                            conn.handshake.closed_in_greeting()
                        } else if conn.input.is_empty() {
                            "peer closed the connection"
                        } else {
                            "peer closed the connection mid-frame"
                        }));
                    }
                    match read_more(conn, &mut self.scratch, now)? {
                        true => continue,
                        false => return Ok(None),
                    }
                }
                Unit::Greeting => {
                    conn.handshake
                        .on_greeting(&conn.input[..GREETING_LEN])
                        .map_err(Close::Handshake)?;
                    GREETING_LEN
                }
                Unit::Command { end, body } => {
                    if !conn.handshake.is_open() || conn.handshake.is_curve() {
                        let mut frame = conn.input[..end].to_vec();
                        let request = self.session_frame(idx, &mut frame)?;
                        let conn = self.conns[idx].as_mut().ok_or(Close::Closed("gone"))?;
                        conn.input.drain(..end);
                        if request.is_some() {
                            return Ok(request);
                        }
                        continue;
                    }
                    let pong = command(&conn.input[body])?;
                    queue_pong(conn, pong)?;
                    end
                }
                Unit::CommandInMessage { frame, body } => {
                    if !conn.handshake.is_open() {
                        return Err(Close::Handshake(HandshakeError::Unexpected));
                    }
                    if conn.handshake.is_curve() {
                        // A box is a command frame; a CURVE message's parts are boxes, whole.
                        return Err(Close::Malformed);
                    }
                    let pong = command(&conn.input[body])?;
                    queue_pong(conn, pong)?;
                    conn.input.drain(frame);
                    continue;
                }
                Unit::Message { wire, .. } => {
                    if !conn.handshake.is_open() {
                        return Err(Close::Handshake(HandshakeError::Unexpected));
                    }
                    if conn.handshake.is_curve() {
                        // Every frame is a box of its own: one at a time, so that what follows
                        // a request's last part stays in the input.
                        let (h, n) =
                            FrameHeader::parse(&conn.input).map_err(|_| Close::Malformed)?;
                        let end = usize::try_from(h.len)
                            .ok()
                            .and_then(|len| len.checked_add(n))
                            .filter(|&end| end <= wire.end)
                            .ok_or(Close::Malformed)?;
                        let mut frame = conn.input[..end].to_vec();
                        conn.input.drain(..end);
                        if let Some(request) = self.session_frame(idx, &mut frame)? {
                            return Ok(Some(request));
                        }
                        continue;
                    }
                    let message = conn.input[wire.clone()].to_vec();
                    conn.input.drain(..wire.end);
                    if let Some(request) = self.request(idx, message) {
                        return Ok(Some(request));
                    }
                    continue;
                }
            };
            let conn = self.conns[idx].as_mut().ok_or(Close::Closed("gone"))?;
            conn.input.drain(..consumed);
            self.transmit(idx);
        }
    }

    /// A frame for the session: a handshake frame, or any frame with CURVE. Returns a request
    /// when a CURVE message's last part arrived.
    fn session_frame(&mut self, idx: usize, frame: &mut [u8]) -> Result<Option<Request>, Close> {
        let conn = self.conns[idx].as_mut().ok_or(Close::Closed("gone"))?;
        let result = conn
            .handshake
            .on_control_frame(frame, self.auth.as_ref(), MAX_MESSAGE);
        // Handshake commands, a refusal (written before the close), a boxed PONG.
        self.transmit(idx);
        let (opened, ready) = result.map_err(Close::Handshake)?;
        let conn = self.conns[idx].as_mut().ok_or(Close::Closed("gone"))?;
        if ready {
            conn.last_ping = conn.last_recv;
            debug!(peer = %conn.peer, zmtp = %format_args!("3.{}", conn.handshake.minor()), user = conn.handshake.user().unwrap_or(""), curve = conn.handshake.is_curve(), "control peer connected");
            return Ok(None);
        }
        if opened != Opened::Message {
            return Ok(None);
        }
        let message = conn.handshake.take_message();
        Ok(self.request(idx, message))
    }

    /// A whole message as plain frames: a request, or (no REQ envelope) dropped with a warning.
    fn request(&mut self, idx: usize, wire: Vec<u8>) -> Option<Request> {
        let conn = self.conns[idx].as_mut()?;
        match split_request(&wire) {
            Ok(r) => Some(Request {
                conn: idx,
                generation: conn.generation,
                envelope: r.envelope,
                body: r.body,
                frames: r.frames,
                user: conn.handshake.user().map(str::to_owned),
                peer: conn.ip.clone(),
                wire,
            }),
            Err(e) => {
                // No reply can reach a peer that sent no envelope (a REQ drops it): as libzmq's
                // REP, the message is dropped; the warning says why.
                if let Some(unlogged) = self.logs.hit(&conn.ip, "no envelope", Instant::now()) {
                    warn!(peer = %conn.peer, unlogged, "control message dropped: {e}");
                }
                None
            }
        }
    }

    /// Queues the reply to `request` (its envelope, then `reply`), written at the end of the
    /// batch ([`flush_touched`](Self::flush_touched)).
    pub(crate) fn reply(&mut self, request: Request, reply: crate::replies::Reply) {
        let Some(conn) = self.conns.get_mut(request.conn).and_then(Option::as_mut) else {
            return;
        };
        if conn.generation != request.generation {
            return; // the requester left; its reply has nowhere to go
        }
        let envelope = &request.wire[request.envelope];
        let (body, shared): (&[u8], _) = match &reply {
            crate::replies::Reply::Owned(b) => (b, None),
            crate::replies::Reply::Shared(s, peer) => {
                (s.bytes(), Some(Queued::new(s.clone(), peer.clone())))
            }
        };
        let (header, n) = FrameHeader::message(body.len(), false).to_bytes();
        let chunk = if conn.handshake.is_curve() {
            let mut wire = Vec::with_capacity(envelope.len() + n + body.len());
            wire.extend_from_slice(envelope);
            wire.extend_from_slice(&header[..n]);
            wire.extend_from_slice(body);
            let mut boxed = Vec::with_capacity(wire.len() + 64);
            conn.handshake.box_message(&wire, &mut boxed);
            Chunk {
                bytes: boxed,
                shared: shared.map(|q| (q, false)),
            }
        } else {
            let mut bytes = Vec::with_capacity(envelope.len() + n + body.len());
            bytes.extend_from_slice(envelope);
            bytes.extend_from_slice(&header[..n]);
            match shared {
                Some(q) => Chunk {
                    bytes,
                    shared: Some((q, true)),
                },
                None => {
                    bytes.extend_from_slice(body);
                    Chunk {
                        bytes,
                        shared: None,
                    }
                }
            }
        };
        conn.out.push_back(chunk);
        self.touched.push(request.conn);
    }

    /// Writes the replies of the batch.
    pub(crate) fn flush_touched(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.dedup();
        for idx in touched.drain(..) {
            self.flush(idx);
        }
        self.touched = touched;
    }

    /// Queues what the session has to send (greeting, handshake commands, a PONG) and writes.
    fn transmit(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let mut bytes = Vec::new();
        if conn.handshake.transmit(&mut bytes) {
            conn.out.push_back(Chunk {
                bytes,
                shared: None,
            });
            self.flush(idx);
        }
    }

    /// Writes as much of a connection's queue as the socket takes; a paused one whose queue
    /// went down is read again.
    fn flush(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let result = write_out(conn);
        if let Err(e) = result {
            return self.close(idx, Close::Io(e));
        }
        if conn.paused && conn.out.len() < MAX_PENDING / 2 {
            conn.paused = false;
            self.make_ready(idx);
        }
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        for _ in 0..ACCEPTS_PER_TURN {
            let (stream, peer) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors: tried again at the next sweep.
                    self.accept_pending = false;
                    if let Some(more) = self.refused.hit(now) {
                        warn!(error = %e, failures = more + 1, "accepting control connections failed");
                    }
                    return;
                }
            };
            if self.open >= MAX_CONNECTIONS {
                drop(stream);
                if let Some(more) = self.refused.hit(now) {
                    warn!(%peer, open = self.open, refused = more + 1, "control connection refused: too many open");
                }
                continue;
            }
            let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
            if let Err(e) = stream
                .set_nonblocking(true)
                .and_then(|()| stream.set_nodelay(true))
                .and_then(|()| socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive))
            {
                warn!(%peer, error = %e, "cannot configure a control connection");
                continue;
            }
            let idx = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if let Err(e) = registry.register(
                &mut SourceFd(&stream.as_raw_fd()),
                token(idx),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                self.free.push(idx);
                warn!(%peer, error = %e, "cannot watch a control connection");
                continue;
            }
            self.next_generation += 1;
            self.conns[idx] = Some(RepConn {
                stream,
                peer,
                ip: peer.ip().to_string(),
                generation: self.next_generation,
                handshake: Handshake::new(SocketType::Rep, self.auth.as_ref()),
                input: Vec::new(),
                out: VecDeque::new(),
                written: 0,
                eof: false,
                queued: false,
                paused: false,
                accepted: now,
                last_recv: now,
                last_ping: now,
            });
            self.open += 1;
            self.transmit(idx);
            self.make_ready(idx);
        }
        // A full turn: more may be waiting (`is_hot`).
    }

    /// Handshake deadlines, PINGs and silent peers.
    pub(crate) fn sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + sweep_every(self.heartbeat);
        // Accepting paused for want of descriptors tries again.
        self.accept_pending = true;
        for idx in 0..self.conns.len() {
            let Some(conn) = self.conns[idx].as_mut() else {
                continue;
            };
            if !conn.handshake.is_open() {
                if now.duration_since(conn.accepted) >= HANDSHAKE {
                    self.close(idx, Close::Closed("no handshake within 5 s"));
                }
                continue;
            }
            // ZMTP 3.0 has no heartbeats: kernel keepalive finds a vanished peer.
            if conn.handshake.minor() < 1 {
                continue;
            }
            if now.duration_since(conn.last_recv) >= self.heartbeat * 3 {
                self.close(idx, Close::Closed(SILENT));
                continue;
            }
            if now.duration_since(conn.last_ping) >= self.heartbeat {
                conn.last_ping = now;
                let mut ping = Vec::new();
                conn.handshake.push_ping(&mut ping);
                conn.out.push_back(Chunk {
                    bytes: ping,
                    shared: None,
                });
                self.flush(idx);
            }
        }
    }

    fn close(&mut self, idx: usize, why: Close) {
        let Some(mut conn) = self.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        // Best effort: a refusal the handshake queued goes out before the close.
        let _ = write_out(&mut conn);
        self.free.push(idx);
        self.open -= 1;
        match why {
            // A REQ peer reads only when it asks (an embedded node does not answer PINGs in
            // between): an ordinary end, as libzmq's REP closed such peers without a word.
            why @ Close::Closed("peer closed the connection" | SILENT) => {
                debug!(peer = %conn.peer, reason = %why, "control peer disconnected")
            }
            // As on the data ports: a refusal or garbage is a warning naming the reason.
            why => warn!(peer = %conn.peer, reason = %why, "control peer dropped"),
        }
    }
}

const SILENT: &str = "silent for three heartbeat intervals";

/// How often the sweep runs.
fn sweep_every(heartbeat: Duration) -> Duration {
    (heartbeat / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// One read into the connection's input (through `scratch`, so an idle connection holds no
/// read-sized buffer): `true` when bytes came, `false` when the socket has nothing now; an end of
/// input is noted (`eof`) and reported as `true`, so the input is looked at once more.
fn read_more(conn: &mut RepConn, scratch: &mut [u8], now: Instant) -> Result<bool, Close> {
    loop {
        match conn.stream.read(scratch) {
            Ok(0) => {
                conn.eof = true;
                return Ok(true);
            }
            Ok(n) => {
                conn.input.extend_from_slice(&scratch[..n]);
                conn.last_recv = now;
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if conn.input.is_empty() && conn.input.capacity() > 4 * READ_LEN {
                    conn.input = Vec::new();
                }
                return Ok(false);
            }
            // A libzmq peer of another mechanism resets the connection as often as it closes
            // it, in its greeting.
            Err(e) if conn.handshake.wants_greeting() => {
                return Err(Close::InGreeting(conn.handshake.closed_in_greeting(), e));
            }
            Err(e) => return Err(Close::Io(e)),
        }
    }
}

/// A command of an open NULL or PLAIN connection: the PONG to send, if any.
fn command(body: &[u8]) -> Result<Option<Vec<u8>>, Close> {
    match Command::parse(body).map_err(|_| Close::Malformed)? {
        Command::Ping { context, .. } => {
            let mut bytes = vec![0u8; 64];
            let n = encode_pong(context, &mut bytes).unwrap_or(0);
            bytes.truncate(n);
            Ok(Some(bytes))
        }
        Command::Error { .. } => Err(Close::PeerError),
        _ => Ok(None),
    }
}

fn queue_pong(conn: &mut RepConn, pong: Option<Vec<u8>>) -> Result<(), Close> {
    let Some(bytes) = pong else { return Ok(()) };
    conn.out.push_back(Chunk {
        bytes,
        shared: None,
    });
    write_out(conn).map_err(Close::Io)
}

/// Writes the front of the queue until the socket would block.
fn write_out(conn: &mut RepConn) -> io::Result<()> {
    while let Some(chunk) = conn.out.front() {
        let at = conn.written;
        let result = if at < chunk.bytes.len() {
            match &chunk.shared {
                Some((q, true)) => conn.stream.write_vectored(&[
                    io::IoSlice::new(&chunk.bytes[at..]),
                    io::IoSlice::new(q.bytes()),
                ]),
                _ => conn.stream.write(&chunk.bytes[at..]),
            }
        } else {
            match &chunk.shared {
                Some((q, true)) => conn.stream.write(&q.bytes()[at - chunk.bytes.len()..]),
                _ => Ok(0),
            }
        };
        match result {
            Ok(0) if at < chunk.len() => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.written += n;
                if conn.written >= chunk.len() {
                    conn.out.pop_front();
                    conn.written = 0;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_the_brokers_own_are_not_connections() {
        for i in [0, 1, MAX_CONNECTIONS - 1] {
            assert_eq!(index(token(i)), Some(i));
        }
        assert_eq!(index(crate::broker::TOKEN_STOP), None);
        assert_eq!(index(crate::broker::TOKEN_CONTROL), None);
        assert_eq!(index(token(MAX_CONNECTIONS)), None);
        assert_eq!(index(Token(0)), None, "an engine token");
    }
}
