//! The node's control connection: a ZMTP REQ socket to the master's REP, on core's
//! [`Connection`](zerosmq_core::zmtp::Connection) over a non-blocking TCP socket, with the
//! node's [`Mechanism`]. On the wire it is what libzmq's REQ sends: every request is an empty
//! delimiter frame, then the request as one frame; the reply comes back in the same envelope.
//!
//! One state machine serves both drivers: [`ControlConn::poll`] advances it as far as the socket
//! allows and waits at most until its `until`. A caller's thread passes the request's deadline
//! ([`ControlConn::request`], blocking); the node's I/O thread passes "now" and comes back on the
//! socket's readiness or at [`ControlConn::next_wake`], so a heartbeat never blocks it.
//!
//! Like libzmq's REQ, a request waits for a master that is not there yet (reconnecting with
//! backoff) until its deadline; unlike it, a request whose connection broke before the reply is
//! sent again on the next connection (every control request may be repeated: a heartbeat, a
//! grant, a stop or a listing), so a master restart costs no timeout. After a timeout the
//! connection is dropped: the reply of the old request must not be taken for the next one's.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zerosmq_core::zmtp::SocketType;

use super::handshake::{self, ConnectError, Handshake};
use super::inbound::{Fill, Inbound, Item};
use super::mechanism::{Mechanism, Sealer};
use super::{next_backoff, sys, RECONNECT_FIRST};

/// Why a control request got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlError {
    /// The deadline passed (no master, or it did not answer).
    Timeout,
    /// The master refused our PLAIN user name or password, or our CURVE public key.
    AuthFailed,
    /// The deadline passed, and the master had closed every CURVE handshake on our HELLO: the
    /// server key we were given is not the master's.
    ServerKey,
}

/// How a [`ControlConn::poll`] went.
#[derive(Debug)]
pub(crate) enum Progress {
    /// The reply to the request (its frame after the empty delimiter).
    Reply(Bytes),
    Failed(ControlError),
    /// Not yet (or nothing in flight).
    Pending,
}

enum Phase {
    /// No connection; the next attempt is due at this time.
    Idle(Instant),
    Connecting(Box<Handshake>),
    Live {
        stream: TcpStream,
        inbound: Inbound,
        sealer: Sealer,
    },
}

pub(crate) struct ControlConn {
    host: String,
    port: u16,
    /// Resolved on the first connect (resolving may block: the I/O thread gets them resolved).
    addrs: Vec<SocketAddr>,
    mechanism: Mechanism,
    phase: Phase,
    backoff: Duration,
    /// Counts sockets made, so that a poll registration can tell a new socket from the old.
    generation: u64,
    /// The request in flight and its deadline; `out` is it framed for the live connection
    /// (`out[sent..]` not written yet), empty until framed (CURVE boxes it with the
    /// connection's nonces, so a request sent again on a new connection is framed again).
    request: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    deadline: Option<Instant>,
    /// The last connection attempt's master closed on our CURVE HELLO.
    server_key_refused: bool,
    /// Commands to the master (PONGs) not yet written.
    commands: Vec<u8>,
}

impl ControlConn {
    pub(crate) fn new(host: String, port: u16, mechanism: Mechanism) -> ControlConn {
        ControlConn {
            host,
            port,
            addrs: Vec::new(),
            mechanism,
            phase: Phase::Idle(Instant::now()),
            backoff: RECONNECT_FIRST,
            generation: 0,
            request: Vec::new(),
            out: Vec::new(),
            sent: 0,
            deadline: None,
            server_key_refused: false,
            commands: Vec::new(),
        }
    }

    /// Resolves the master's address now (it may block), so that later polls do not.
    pub(crate) fn resolve(&mut self) {
        if self.addrs.is_empty() {
            self.addrs = handshake::resolve(&self.host, self.port).unwrap_or_default();
        }
    }

    /// Starts `request` (encoded), to be answered by `deadline`; the one in flight, if any, is
    /// given up.
    pub(crate) fn start(&mut self, request: &[u8], deadline: Instant) {
        self.request.clear();
        self.request.extend_from_slice(request);
        self.out.clear();
        self.sent = 0;
        self.deadline = Some(deadline);
        self.server_key_refused = false;
    }

    /// Sends `request` and waits for its reply until `timeout` (the caller's thread).
    pub(crate) fn request(
        &mut self,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, ControlError> {
        let deadline = Instant::now() + timeout;
        self.start(request, deadline);
        loop {
            match self.poll(deadline) {
                Progress::Reply(r) => return Ok(r),
                Progress::Failed(e) => return Err(e),
                Progress::Pending => {}
            }
        }
    }

    /// The socket to watch and its generation (a new generation is a new socket to register).
    pub(crate) fn source(&self) -> Option<(RawFd, u64)> {
        let fd = match &self.phase {
            Phase::Idle(_) => return None,
            Phase::Connecting(h) => h.stream().as_raw_fd(),
            Phase::Live { stream, .. } => stream.as_raw_fd(),
        };
        Some((fd, self.generation))
    }

    /// When [`poll`](Self::poll) must run again without an event: the deadline, the end of a
    /// backoff, or soon while connecting (the handshake may have moved to another address's
    /// socket, not registered yet).
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let deadline = self.deadline?;
        Some(match &self.phase {
            Phase::Idle(at) => deadline.min(*at),
            Phase::Connecting(_) => deadline.min(Instant::now() + RECONNECT_FIRST),
            Phase::Live { .. } => deadline,
        })
    }

    /// Advances the request in flight as far as the socket allows, waiting until `until` at
    /// most (`until` in the past: never waits).
    pub(crate) fn poll(&mut self, until: Instant) -> Progress {
        loop {
            let Some(deadline) = self.deadline else {
                // Nothing in flight: still answer the master's PINGs, notice a close.
                if self.read().is_err() {
                    self.drop_connection();
                }
                return Progress::Pending;
            };
            let now = Instant::now();
            if now >= deadline {
                self.drop_connection();
                self.deadline = None;
                if self.server_key_refused {
                    return Progress::Failed(ControlError::ServerKey);
                }
                return Progress::Failed(ControlError::Timeout);
            }
            let until = until.min(deadline);
            match &mut self.phase {
                Phase::Idle(at) => {
                    if now < *at {
                        if until <= now {
                            return Progress::Pending;
                        }
                        std::thread::sleep((*at).min(until) - now);
                        continue;
                    }
                    self.resolve();
                    let addrs = self
                        .addrs
                        .iter()
                        .map(|a| SocketAddr::new(a.ip(), self.port));
                    match Handshake::start(
                        addrs.collect(),
                        SocketType::Req,
                        &self.mechanism,
                        deadline - now,
                    ) {
                        Ok(h) => {
                            self.generation += 1;
                            self.phase = Phase::Connecting(Box::new(h));
                        }
                        Err(e) => {
                            if let Some(p) = self.connect_failed(e) {
                                return p;
                            }
                        }
                    }
                }
                Phase::Connecting(h) => match h.advance(&self.mechanism, until) {
                    Ok(false) if Instant::now() >= until => return Progress::Pending,
                    Ok(false) => {}
                    Ok(true) => {
                        let Phase::Connecting(h) =
                            std::mem::replace(&mut self.phase, Phase::Idle(now))
                        else {
                            continue;
                        };
                        match h.finish_nonblocking() {
                            Ok(est) => {
                                self.backoff = RECONNECT_FIRST;
                                // A request of a broken connection goes again, whole.
                                self.sent = 0;
                                self.out.clear();
                                self.server_key_refused = false;
                                self.phase = Phase::Live {
                                    stream: est.stream,
                                    inbound: Inbound::with_opener(est.opener),
                                    sealer: est.sealer,
                                };
                            }
                            Err(e) => {
                                if let Some(p) = self.connect_failed(e) {
                                    return p;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if let Some(p) = self.connect_failed(e) {
                            return p;
                        }
                    }
                },
                Phase::Live { .. } => {
                    if let Some(p) = self.live_step(until) {
                        return p;
                    }
                }
            }
        }
    }

    /// A connection attempt failed: back off, or give up on refused credentials.
    fn connect_failed(&mut self, e: ConnectError) -> Option<Progress> {
        self.phase = Phase::Idle(Instant::now() + self.backoff);
        self.backoff = next_backoff(self.backoff);
        self.server_key_refused = matches!(e, ConnectError::ServerKey);
        if matches!(e, ConnectError::AuthFailed) {
            self.deadline = None;
            return Some(Progress::Failed(ControlError::AuthFailed));
        }
        None
    }

    /// Writes what is left of the request, reads what came; `None` to go round again (the
    /// connection was lost).
    fn live_step(&mut self, until: Instant) -> Option<Progress> {
        let Phase::Live { stream, sealer, .. } = &mut self.phase else {
            return None;
        };
        if self.out.is_empty() {
            frame_request(sealer, &self.request, &mut self.out);
        }
        while self.sent < self.out.len() {
            match sys::send_now(stream.as_fd(), &self.out[self.sent..]) {
                Ok(0) => break,
                Ok(n) => self.sent += n,
                Err(_) => {
                    self.lost();
                    return None;
                }
            }
        }
        match self.read() {
            Err(()) => {
                self.lost();
                None
            }
            Ok(Some(reply)) => {
                self.deadline = None;
                Some(Progress::Reply(reply))
            }
            Ok(None) => {
                if Instant::now() >= until {
                    return Some(Progress::Pending);
                }
                let Phase::Live { stream, .. } = &self.phase else {
                    return None;
                };
                let write = self.sent < self.out.len();
                let left = until.saturating_duration_since(Instant::now());
                if sys::poll_one(stream.as_fd(), write, left).is_err() {
                    self.lost();
                }
                None
            }
        }
    }

    /// Reads what is there: the reply when it came (`Ok(None)`: not yet), answering PINGs on
    /// the way. `Err` when the connection is over (closed, or a peer that breaks the protocol).
    fn read(&mut self) -> Result<Option<Bytes>, ()> {
        let Phase::Live {
            stream,
            inbound,
            sealer,
        } = &mut self.phase
        else {
            return Ok(None);
        };
        let mut reply = None;
        loop {
            match inbound.fill(stream.as_fd()) {
                Ok(Fill::Data) => {}
                Ok(Fill::Empty) => break,
                Ok(Fill::Closed) | Err(_) => return Err(()),
            }
        }
        loop {
            let item = inbound.next_item().map_err(|_| ())?;
            if let Some(ctx) = inbound.take_ping() {
                sealer.pong(&ctx, &mut self.commands);
            }
            match item {
                None => break,
                // REP's envelope: the empty delimiter, then the reply.
                Some(Item::Message { first, mut parts })
                    if first.is_empty() && parts.len() == 1 && self.deadline.is_some() =>
                {
                    reply = parts.pop();
                }
                Some(Item::Message { .. }) | Some(Item::Error) => return Err(()),
                Some(_) => {}
            }
        }
        if !self.commands.is_empty() {
            match sys::send_now(stream.as_fd(), &self.commands) {
                Ok(n) => {
                    self.commands.drain(..n);
                }
                Err(_) => return Err(()),
            }
        }
        Ok(reply)
    }

    /// The connection broke with a request in flight: reconnect (after the backoff) and send
    /// it again.
    fn lost(&mut self) {
        self.drop_connection();
        self.phase = Phase::Idle(Instant::now() + self.backoff);
        self.backoff = next_backoff(self.backoff);
    }

    fn drop_connection(&mut self) {
        self.phase = Phase::Idle(Instant::now());
        self.commands.clear();
        self.sent = 0;
        self.out.clear();
    }
}

/// `request` in libzmq REQ's envelope: an empty delimiter frame with MORE, then the request.
fn frame_request(sealer: &mut Sealer, request: &[u8], out: &mut Vec<u8>) {
    sealer.message(&[], true, out);
    sealer.message(&[request], false, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libzmq's REQ envelope: an empty delimiter frame with MORE, then the request.
    #[test]
    fn a_request_goes_out_in_req_framing() {
        let mut out = Vec::new();
        frame_request(&mut Sealer::default(), b"LIST_NODES", &mut out);
        assert_eq!(out, b"\x01\x00\x00\x0aLIST_NODES");
        let long = vec![b'x'; 300];
        out.clear();
        frame_request(&mut Sealer::default(), &long, &mut out);
        assert_eq!(&out[..11], b"\x01\x00\x02\x00\x00\x00\x00\x00\x00\x01\x2c");
        assert_eq!(&out[11..], &long[..]);
    }
}
