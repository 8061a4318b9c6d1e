//! The roles as one sans-IO state machine: a control request, a publisher and a subscriber
//! connection, from the grant through the ZMTP handshake to their traffic, with reconnects and
//! the node's own heartbeat. [`Role::next`] says which I/O it needs ([`Io`]); the driver performs
//! it and reports what came of it. The blocking and async drivers are each one short loop over
//! this, so every protocol decision is made here, once.

use core::net::SocketAddr;

use zerosmq_core::control::ControlRequest;
use zerosmq_core::zmtp::{Connection, Event, SocketType};
use zerosmq_core::Topic;

use crate::link;
use crate::node::{self, NodeConfig, ReplyReader, SubState, SubStep, SubscriptionCount, PROBE_LEN};
use crate::Error;

/// The I/O a [`Role`] needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    /// Drop the current connection and open one to [`Role::remote`]; then [`Role::connected`].
    Connect,
    /// Write all of `buf[start..end]`, then flush if `flush`; then [`Role::wrote`].
    Write {
        start: usize,
        end: usize,
        flush: bool,
    },
    /// Write the caller's payload as a data frame ([`data_header`], topic, space, payload),
    /// flush; then [`Role::wrote_data`].
    WriteData,
    /// Read into [`Role::read_buffer`]; then [`Role::read`]. Unless `wait`, only what has arrived
    /// (or EOF): when nothing has, [`Role::would_block`] instead. A driver that can wait on a
    /// timer stops waiting at `until_ms` of the node's clock (the heartbeat is due; `u64::MAX`:
    /// never) and asks [`Role::next`] again: nothing is lost, no byte was committed.
    Read { wait: bool, until_ms: u64 },
    /// The node's heartbeat is due: send it over its own connection, then ask again.
    #[cfg_attr(not(feature = "clock"), allow(dead_code))]
    Heartbeat,
    /// The operation is over: [`Role::output`] holds its result.
    Done,
}

/// Which role a machine plays; fixed at its creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One control request and its reply.
    Request,
    Publisher,
    Subscriber,
}

/// What the current operation is for (set by [`Role::begin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goal {
    /// A request's reply: its body at `buf[..len]`.
    Reply,
    /// Connected (grant, handshake and, for a subscriber, its subscriptions).
    Open,
    /// The path is live: the master subscribed (publisher), the probe came back (subscriber).
    Ready,
    /// The caller's payload written. With feature `clock`, what the master sent is handled
    /// first (PINGs answered, a closed connection noticed). A failed write reconnects with a
    /// fresh grant and writes again, once.
    Publish,
    /// Publisher: what has arrived handled, without waiting.
    Poll,
    /// Publisher: what arrives handled, until an error (the async `serve`).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Serve,
    /// Subscriber: the next payload, at `buf[start..end]`. A lost connection is reopened.
    Recv,
}

/// The control exchange's steps.
#[derive(Debug, Clone, Copy)]
enum Exchange {
    Connecting,
    Handshake,
    Sending,
    Reply,
}

/// Where the role's connection is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No connection: the next step connects to the master (for the grant, or the request).
    Down,
    /// The control connection of a request or of the grant.
    Control(Exchange),
    /// The granted data port: connecting, then the handshake.
    Data { port: u16, connected: bool },
    /// The subscriber's subscriptions, encoded in `buf[..n]`, to write.
    Subscribing(usize),
    /// Handshake done: the role's traffic.
    Live,
}

/// What a machine is told besides the bytes: who the node is, the role's topic and probe, the
/// caller's request.
pub(crate) struct Ctx<'a, C> {
    pub(crate) cfg: &'a NodeConfig<C>,
    /// The publisher's or subscriber's topic (`None` for a request).
    pub(crate) topic: Option<&'a Topic>,
    /// The subscriber's ready probe, renewed on every connection (`None` for the others).
    pub(crate) probe: Option<&'a mut [u8; PROBE_LEN]>,
    /// The request of [`Kind::Request`].
    pub(crate) request: Option<&'a ControlRequest>,
    /// The payload of [`Goal::Publish`] (empty for the others).
    pub(crate) payload: &'a [u8],
    /// A typed publisher's schema, declared in its grant request.
    #[cfg(feature = "typed")]
    pub(crate) schema: Option<&'static postcard_schema::schema::NamedType>,
}

/// One role's state above its connection (the buffer, the topic and the TCP connection are the
/// driver's).
#[derive(Debug)]
pub(crate) struct Role {
    kind: Kind,
    goal: Goal,
    phase: Phase,
    conn: Connection<'static>,
    reply: ReplyReader,
    subscriptions: SubscriptionCount,
    sub: SubState,
    /// The subscriber's cancel of its echoed probe, in `buf[..n]`, to write.
    cancel: Option<usize>,
    /// This operation opened the connection: wait until the path is live before writing.
    reopened: bool,
    /// Publish: still handling what arrived before the write.
    draining: bool,
    /// Publish: the data frame already failed once.
    retried: bool,
    /// Check the heartbeat before anything else.
    beat_first: bool,
    /// The pending write is the data frame, boxed (CURVE): its result is `wrote_data`'s.
    sealed: bool,
    /// The operation's result: the byte range of the reply or payload in `buf`.
    output: Option<(usize, usize)>,
}

impl Role {
    pub(crate) const fn new(kind: Kind) -> Self {
        Role {
            kind,
            goal: Goal::Open,
            phase: Phase::Down,
            // Replaced on every connection; a placeholder until the first.
            conn: Connection::new(SocketType::Req),
            reply: ReplyReader::new(),
            subscriptions: SubscriptionCount::new(),
            sub: SubState::new(),
            cancel: None,
            reopened: false,
            draining: false,
            retried: false,
            beat_first: false,
            sealed: false,
            output: None,
        }
    }

    /// Starts an operation; drive it with [`next`](Self::next) until [`Io::Done`].
    pub(crate) fn begin(&mut self, goal: Goal) {
        self.goal = goal;
        self.output = None;
        self.reopened = false;
        self.retried = false;
        self.draining = goal == Goal::Publish && cfg!(feature = "clock");
        // Waits check the heartbeat before each read; a publish, which may not wait, first.
        self.beat_first = goal == Goal::Publish;
    }

    /// The result of the finished operation: the reply body or the payload, as a range of `buf`.
    pub(crate) fn output(&self) -> (usize, usize) {
        self.output.unwrap_or((0, 0))
    }

    /// Where [`Io::Connect`] connects: the granted data port, else the master's control service.
    pub(crate) fn remote<C>(&self, cx: &Ctx<'_, C>) -> SocketAddr {
        match self.phase {
            Phase::Data { port, .. } => SocketAddr::new(cx.cfg.master.ip(), port),
            _ => cx.cfg.master,
        }
    }

    /// Whether the role has an open connection (its driver may drop the TCP connection if not).
    pub(crate) fn is_connected(&self) -> bool {
        !matches!(self.phase, Phase::Down)
    }

    /// Whether the path is live on the current connection: the master subscribed (publisher),
    /// or the ready probe came back (subscriber).
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Live)
            && match self.kind {
                Kind::Publisher => self.subscriptions.any(),
                Kind::Subscriber => self.sub.ready,
                Kind::Request => false,
            }
    }

    fn socket_type(&self) -> SocketType {
        match self.kind {
            Kind::Request => SocketType::Req,
            Kind::Publisher => SocketType::Pub,
            Kind::Subscriber => SocketType::Sub,
        }
    }

    /// The I/O the operation needs next.
    #[inline(never)]
    pub(crate) fn next<C, E>(
        &mut self,
        cx: &mut Ctx<'_, C>,
        buf: &mut [u8],
    ) -> Result<Io, Error<E>> {
        if self.output.is_some() {
            return Ok(Io::Done);
        }
        #[cfg(feature = "clock")]
        if core::mem::take(&mut self.beat_first) && cx.cfg.heartbeat_due() {
            return Ok(Io::Heartbeat);
        }
        match self.phase {
            Phase::Down | Phase::Control(Exchange::Connecting) => {
                self.phase = Phase::Control(Exchange::Connecting);
                self.reopened = true;
                Ok(Io::Connect)
            }
            Phase::Control(Exchange::Sending) => {
                let grant;
                let req = match (cx.request, cx.topic) {
                    (Some(req), _) => req,
                    (None, Some(topic)) => {
                        #[cfg(feature = "typed")]
                        if let Some(schema) = cx.schema {
                            grant = cx
                                .cfg
                                .typed_grant_request(topic, schema)
                                .map_err(|e| self.fail(e))?;
                        } else {
                            grant = cx.cfg.grant_request(self.kind == Kind::Publisher, topic);
                        }
                        #[cfg(not(feature = "typed"))]
                        {
                            grant = cx.cfg.grant_request(self.kind == Kind::Publisher, topic);
                        }
                        &grant
                    }
                    (None, None) => return Err(self.fail(Error::BadReply)),
                };
                // A declared type exists only in the binary encoding (the text one is the
                // original's, unchanged).
                #[cfg(feature = "typed")]
                let encoding = if matches!(req, ControlRequest::PublishTyped { .. }) {
                    zerosmq_core::control::Encoding::Binary
                } else {
                    cx.cfg.encoding
                };
                #[cfg(not(feature = "typed"))]
                let encoding = cx.cfg.encoding;
                #[cfg(feature = "curve")]
                let encoded = if cx.cfg.is_curve() {
                    node::encode_request_boxed(&mut self.conn, req, encoding, buf)
                } else {
                    node::encode_request(req, encoding, buf)
                };
                #[cfg(not(feature = "curve"))]
                let encoded = node::encode_request(req, encoding, buf);
                let (start, end) = encoded.map_err(|_| self.fail(Error::BufferTooSmall))?;
                Ok(Io::Write {
                    start,
                    end,
                    flush: true,
                })
            }
            Phase::Control(_)
            | Phase::Data {
                connected: true, ..
            } => self.exchange(buf, true),
            Phase::Data { .. } => Ok(Io::Connect),
            Phase::Subscribing(n) => Ok(Io::Write {
                start: 0,
                end: n,
                flush: true,
            }),
            Phase::Live => self.live(cx, buf),
        }
    }

    /// The next I/O on an open connection.
    fn live<C, E>(&mut self, cx: &Ctx<'_, C>, buf: &mut [u8]) -> Result<Io, Error<E>> {
        if let Some(n) = self.cancel.take() {
            return Ok(Io::Write {
                start: 0,
                end: n,
                flush: true,
            });
        }
        let waiting = self.reopened && !self.is_ready();
        match self.goal {
            Goal::Reply => Err(Error::BadReply),
            Goal::Open => self.finish((0, 0)),
            Goal::Ready if self.is_ready() => self.finish((0, 0)),
            Goal::Publish if self.draining => self.exchange(buf, false),
            Goal::Publish if !waiting => self.write_data(cx, buf),
            Goal::Poll if !waiting => self.exchange(buf, false),
            _ => self.wait(cx, buf),
        }
    }

    /// The caller's payload as a data frame: written from where it is, or, with CURVE, boxed
    /// into `buf` behind what the decoder holds of a frame still arriving (a publish may come
    /// between two reads of one frame).
    #[cfg_attr(not(feature = "curve"), allow(unused_variables))]
    fn write_data<C, E>(&mut self, cx: &Ctx<'_, C>, buf: &mut [u8]) -> Result<Io, Error<E>> {
        #[cfg(feature = "curve")]
        if cx.cfg.is_curve() {
            let held = self.conn.read_buffer(buf).as_ptr() as usize - buf.as_ptr() as usize;
            let out = buf.get_mut(held..).unwrap_or_default();
            // Too large for the buffer: nothing was sealed, so the connection stays usable.
            let n = self
                .conn
                .write_message(&[cx.topic_bytes(), b" ", cx.payload], false, out)
                .map_err(|_| Error::BufferTooSmall)?;
            self.sealed = true;
            return Ok(Io::Write {
                start: held,
                end: held + n,
                flush: true,
            });
        }
        Ok(Io::WriteData)
    }

    /// Waits for the peer: the heartbeat first if it is due, and the read stops for the next.
    #[cfg_attr(not(feature = "clock"), allow(unused_variables))]
    fn wait<C, E>(&mut self, cx: &Ctx<'_, C>, buf: &mut [u8]) -> Result<Io, Error<E>> {
        #[cfg(feature = "clock")]
        if let Some(timer) = cx.cfg.heartbeat.as_ref() {
            if timer.take_due() {
                return Ok(Io::Heartbeat);
            }
            return match self.exchange(buf, true)? {
                Io::Read { wait, .. } => Ok(Io::Read {
                    wait,
                    until_ms: timer.due_ms(),
                }),
                io => Ok(io),
            };
        }
        self.exchange(buf, true)
    }

    /// Writes what the connection has pending (greeting, handshake commands, PONG), else reads.
    /// Pending output is written only between frames, so it never overwrites a partial frame.
    fn exchange<E>(&mut self, buf: &mut [u8], wait: bool) -> Result<Io, Error<E>> {
        match link::transmit(&mut self.conn, buf) {
            Ok(Some(n)) => Ok(Io::Write {
                start: 0,
                end: n,
                flush: !self.conn.wants_transmit(),
            }),
            Ok(None) => Ok(Io::Read {
                wait,
                until_ms: u64::MAX,
            }),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn finish<E>(&mut self, range: (usize, usize)) -> Result<Io, Error<E>> {
        self.output = Some(range);
        Ok(Io::Done)
    }

    /// Ends the connection (unless the error keeps it) and returns the error.
    fn fail<E>(&mut self, e: Error<E>) -> Error<E> {
        if !matches!(self.phase, Phase::Live) || !e.keeps_connection() {
            self.phase = Phase::Down;
        }
        e
    }

    /// The connection [`Io::Connect`] asked for is open, or failed.
    pub(crate) fn connected<C, E>(
        &mut self,
        cx: &Ctx<'_, C>,
        result: Result<(), E>,
    ) -> Result<(), Error<E>> {
        if let Err(e) = result {
            return Err(self.fail(Error::Transport(e)));
        }
        let socket_type = match self.phase {
            Phase::Data { port, .. } => {
                self.phase = Phase::Data {
                    port,
                    connected: true,
                };
                self.socket_type()
            }
            _ => {
                self.phase = Phase::Control(Exchange::Handshake);
                SocketType::Req
            }
        };
        self.conn = cx.cfg.connection(socket_type);
        self.reply = ReplyReader::new();
        Ok(())
    }

    /// The bytes [`Io::Write`] asked for are written, or the write failed.
    pub(crate) fn wrote<E>(&mut self, result: Result<(), E>) -> Result<(), Error<E>> {
        if core::mem::take(&mut self.sealed) {
            return self.wrote_data(result);
        }
        if let Err(e) = result {
            let e = self.fail(Error::Transport(e));
            if self.goal == Goal::Publish && self.draining {
                // A PONG that could not go out: the connection is gone; publish reconnects.
                self.draining = false;
                return Ok(());
            }
            return Err(e);
        }
        match self.phase {
            Phase::Control(Exchange::Sending) => self.phase = Phase::Control(Exchange::Reply),
            Phase::Subscribing(_) => self.phase = Phase::Live,
            _ => {}
        }
        Ok(())
    }

    /// The data frame [`Io::WriteData`] asked for is written, or the write failed: then the
    /// connection is gone (the master restarted), and the next step asks for a fresh grant,
    /// waits for the path and writes again, once.
    pub(crate) fn wrote_data<E>(&mut self, result: Result<(), E>) -> Result<(), Error<E>> {
        match result {
            Ok(()) => {
                self.output = Some((0, 0));
                Ok(())
            }
            Err(e) => {
                let e = self.fail(Error::Transport(e));
                if core::mem::replace(&mut self.retried, true) {
                    return Err(e);
                }
                warn!("publish failed, reconnecting");
                Ok(())
            }
        }
    }

    /// Where [`Io::Read`] reads into.
    pub(crate) fn read_buffer<'b, E>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<&'b mut [u8], Error<E>> {
        link::read_buffer(&self.conn, buf).map_err(|e| self.fail(e))
    }

    /// A read that must not wait found nothing.
    pub(crate) fn would_block(&mut self) {
        if self.goal == Goal::Publish {
            self.draining = false;
        } else if self.goal == Goal::Poll {
            self.output = Some((0, 0));
        }
    }

    /// What [`Io::Read`] read (into [`read_buffer`](Self::read_buffer)'s slice of `buf`).
    #[inline(never)]
    pub(crate) fn read<C, E: embedded_io::Error>(
        &mut self,
        cx: &mut Ctx<'_, C>,
        result: Result<usize, E>,
        buf: &mut [u8],
    ) -> Result<(), Error<E>> {
        let ev = match link::on_read(&mut self.conn, result, buf) {
            Ok(Some(ev)) => ev,
            Ok(None) => return Ok(()),
            // The master closes a CURVE handshake whose HELLO it cannot open.
            Err(Error::Disconnected) if cx.cfg.is_curve() && !self.conn.is_open() => {
                return Err(self.fail(Error::WrongServerKey))
            }
            Err(e) => return self.read_failed(e),
        };
        match self.phase {
            Phase::Control(Exchange::Handshake) => {
                if let Event::Ready { .. } = ev {
                    self.phase = Phase::Control(Exchange::Sending);
                }
            }
            Phase::Control(Exchange::Reply) => {
                if let Some(len) = self.reply.on_event(ev).map_err(|e| self.fail(e))? {
                    return self.replied(len, buf);
                }
            }
            Phase::Data { port, .. } => {
                if let Event::Ready { .. } = ev {
                    return self.opened(cx, port, buf);
                }
            }
            Phase::Live => self.on_event(cx, ev, buf).map_err(|e| self.fail(e))?,
            _ => {}
        }
        Ok(())
    }

    /// A failed read: a subscriber reconnects (the master restarted); a publisher handling what
    /// arrived before its write reconnects before it writes, or drains on past a skipped frame;
    /// otherwise the error is the caller's.
    fn read_failed<E>(&mut self, e: Error<E>) -> Result<(), Error<E>> {
        let live = matches!(self.phase, Phase::Live);
        let e = self.fail(e);
        if live && self.goal == Goal::Publish && self.draining {
            if !e.keeps_connection() {
                self.draining = false;
            }
            return Ok(());
        }
        if live
            && self.kind == Kind::Subscriber
            && !e.keeps_connection()
            && matches!(self.goal, Goal::Ready | Goal::Recv)
        {
            warn!("subscriber connection lost, reconnecting");
            return Ok(());
        }
        Err(e)
    }

    /// The reply's body is `buf[..len]`: a request is done; a role connects to its grant.
    fn replied<E>(&mut self, len: usize, buf: &[u8]) -> Result<(), Error<E>> {
        if self.kind == Kind::Request {
            self.output = Some((0, len));
            return Ok(());
        }
        let port = match node::granted(&buf[..len]) {
            Ok(port) => port,
            Err(e) => return Err(self.fail(e)),
        };
        self.phase = Phase::Data {
            port,
            connected: false,
        };
        Ok(())
    }

    /// The data connection's handshake is done: a subscriber subscribes (to its topic and to a
    /// fresh probe), a publisher is live.
    #[inline(never)]
    fn opened<C, E>(
        &mut self,
        cx: &mut Ctx<'_, C>,
        port: u16,
        buf: &mut [u8],
    ) -> Result<(), Error<E>> {
        self.subscriptions = SubscriptionCount::new();
        self.sub = SubState::new();
        self.cancel = None;
        let Some(topic) = cx.topic else {
            return Err(self.fail(Error::BadReply));
        };
        if self.kind != Kind::Subscriber {
            debug!("publisher connected to port {}", port);
            self.phase = Phase::Live;
            return Ok(());
        }
        let Some(probe) = cx.probe.as_deref_mut() else {
            return Err(self.fail(Error::BadReply));
        };
        *probe = cx.cfg.next_probe(topic);
        let n = node::encode_subscriptions(&mut self.conn, topic.as_bytes(), probe, buf)
            .map_err(|_| self.fail(Error::BufferTooSmall))?;
        debug!("subscriber connected to port {}", port);
        self.phase = Phase::Subscribing(n);
        Ok(())
    }

    /// An event on the open connection.
    fn on_event<C, E>(
        &mut self,
        cx: &Ctx<'_, C>,
        ev: Event,
        buf: &mut [u8],
    ) -> Result<(), Error<E>> {
        let topic = cx.topic_bytes();
        if self.kind == Kind::Publisher {
            self.subscriptions.on_event(ev, buf, topic);
            return Ok(());
        }
        let probe = cx.probe.as_deref().map_or(&[][..], |p| &p[..]);
        match self.sub.on_event(&mut self.conn, ev, buf, topic, probe)? {
            SubStep::Deliver(at, end) if self.goal == Goal::Recv => self.output = Some((at, end)),
            SubStep::Write(n) => self.cancel = Some(n),
            _ => {}
        }
        Ok(())
    }
}

impl<C> Ctx<'_, C> {
    /// The role's topic, empty for a request.
    pub(crate) fn topic_bytes(&self) -> &[u8] {
        self.topic.map_or(&[][..], |t| t.as_bytes())
    }
}

// The recorded reply is in the text encoding.
#[cfg(all(test, feature = "text"))]
mod tests {
    use super::*;
    use core::net::{IpAddr, Ipv4Addr};

    const REP: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-rep.bin");
    const MASTER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5555);

    #[derive(Debug, PartialEq)]
    struct Broken;

    impl core::fmt::Display for Broken {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("broken")
        }
    }

    impl core::error::Error for Broken {}

    impl embedded_io::Error for Broken {
        fn kind(&self) -> embedded_io::ErrorKind {
            embedded_io::ErrorKind::BrokenPipe
        }
    }

    /// Feeds `bytes` to the role as its reads ask, one read at a time.
    fn feed(role: &mut Role, cx: &mut Ctx<'_, ()>, buf: &mut [u8], mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let dst = role.read_buffer::<Broken>(buf).unwrap();
            let n = dst.len().min(bytes.len());
            dst[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            role.read(cx, Ok::<_, Broken>(n), buf).unwrap();
        }
    }

    #[test]
    fn a_grant_asks_for_each_step_then_the_granted_port() {
        let cfg = NodeConfig::new((), MASTER, "n").unwrap();
        let topic = Topic::new("imu").unwrap();
        let mut cx = Ctx {
            cfg: &cfg,
            topic: Some(&topic),
            probe: None,
            request: None,
            payload: &[],
            #[cfg(feature = "typed")]
            schema: None,
        };
        let mut role = Role::new(Kind::Publisher);
        role.begin(Goal::Open);
        let mut buf = [0u8; 128];
        let next = |role: &mut Role, cx: &mut Ctx<'_, ()>, buf: &mut [u8]| {
            role.next::<(), Broken>(cx, buf).unwrap()
        };
        assert_eq!(next(&mut role, &mut cx, &mut buf), Io::Connect);
        assert_eq!(role.remote(&cx), MASTER);
        role.connected(&cx, Ok::<_, Broken>(())).unwrap();
        let greeting = Io::Write {
            start: 0,
            end: 64,
            flush: true,
        };
        assert_eq!(next(&mut role, &mut cx, &mut buf), greeting);
        role.wrote(Ok::<_, Broken>(())).unwrap();
        let read = Io::Read {
            wait: true,
            until_ms: u64::MAX,
        };
        assert_eq!(next(&mut role, &mut cx, &mut buf), read);
        feed(&mut role, &mut cx, &mut buf, &REP[..64]);
        // READY goes out after the peer's greeting, then the request after the peer's READY.
        assert!(matches!(
            next(&mut role, &mut cx, &mut buf),
            Io::Write { start: 0, .. }
        ));
        role.wrote(Ok::<_, Broken>(())).unwrap();
        feed(&mut role, &mut cx, &mut buf, &REP[64..91]);
        assert!(matches!(
            next(&mut role, &mut cx, &mut buf),
            Io::Write { flush: true, .. }
        ));
        role.wrote(Ok::<_, Broken>(())).unwrap();
        assert_eq!(next(&mut role, &mut cx, &mut buf), read);
        feed(&mut role, &mut cx, &mut buf, &REP[91..]);
        assert_eq!(next(&mut role, &mut cx, &mut buf), Io::Connect);
        assert_eq!(role.remote(&cx), SocketAddr::new(MASTER.ip(), 6000));
        // The data port refuses: the error is the caller's, and the next step starts over.
        assert_eq!(
            role.connected(&cx, Err(Broken)),
            Err(Error::Transport(Broken))
        );
        assert!(!role.is_connected());
        assert_eq!(next(&mut role, &mut cx, &mut buf), Io::Connect);
        assert_eq!(role.remote(&cx), MASTER);
    }
}
