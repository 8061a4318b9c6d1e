//! The blocking driver: [`Node`], [`Publisher`], [`Subscriber`] over `embedded_io::{Read, Write}`.
//!
//! The only reads and writes of the blocking node happen here, in short loops around
//! `zerosmq_core::zmtp::Connection`; the protocol logic is in `node.rs` and `zerosmq-core`.

use core::net::SocketAddr;

use embedded_io::{Read, ReadReady, Write};
use zerosmq_core::control::{ControlReply, ControlRequest, Encoding};
use zerosmq_core::zmtp::{Connection, CredentialsTooLong, Event, PlainCredentials, SocketType};
use zerosmq_core::Topic;

#[cfg(feature = "clock")]
use crate::clock::{Clock, HeartbeatTimer, HEARTBEAT_BUF_LEN};
use crate::connect::Connect;
use crate::link;
use crate::node::{self, NodeConfig, ReplyReader, SubState, SubStep, SubscriptionCount, PROBE_LEN};
use crate::Error;

type Result<T, C> = core::result::Result<T, Error<<C as Connect>::Error>>;

/// Writes what the connection has pending (greeting, READY, PONG), using `buf` as scratch.
fn flush<T: Write>(
    io: &mut T,
    conn: &mut Connection<'_>,
    buf: &mut [u8],
) -> core::result::Result<(), Error<T::Error>> {
    while let Some(n) = link::transmit(conn, buf)? {
        io.write_all(&buf[..n]).map_err(Error::Transport)?;
    }
    io.flush().map_err(Error::Transport)
}

/// Reads until the connection produces an event; a frame's body is left in `buf`.
///
/// Pending output is written only between frames, so it never overwrites a partial frame.
fn next_event<T: Read + Write>(
    io: &mut T,
    conn: &mut Connection<'_>,
    buf: &mut [u8],
) -> core::result::Result<Event, Error<T::Error>> {
    loop {
        if let Some(ev) = read_once(io, conn, buf)? {
            return Ok(ev);
        }
    }
}

/// Writes pending output, then does one read (which may block) and commits it.
fn read_once<T: Read + Write>(
    io: &mut T,
    conn: &mut Connection<'_>,
    buf: &mut [u8],
) -> core::result::Result<Option<Event>, Error<T::Error>> {
    if conn.wants_transmit() {
        flush(io, conn, buf)?;
    }
    let read = io.read(link::read_buffer(conn, buf)?);
    link::on_read(conn, read, buf)
}

/// Connects and runs the handshake (NULL, or PLAIN with `plain`) for a local socket of
/// `socket_type`.
fn open<'n, C: Connect>(
    connector: &'n C,
    remote: SocketAddr,
    socket_type: SocketType,
    plain: Option<PlainCredentials<'static>>,
    buf: &mut [u8],
) -> Result<(C::Connection<'n>, Connection<'static>), C> {
    let mut io = connector.connect(remote).map_err(Error::Transport)?;
    let mut conn = Connection::with_mechanism(socket_type, plain);
    loop {
        if let Event::Ready { .. } = next_event(&mut io, &mut conn, buf)? {
            return Ok((io, conn));
        }
    }
}

/// A zerosmq node: a name, the master's control address and a way to open TCP connections.
///
/// Publishers and subscribers borrow the node; each owns its connection and the buffer the
/// caller gives it, so nothing is allocated.
#[derive(Debug)]
pub struct Node<C: Connect> {
    cfg: NodeConfig<C>,
}

impl<C: Connect> Node<C> {
    /// A node named `name` whose master's control service is at `master` (port 5555 by default).
    pub fn new(
        connector: C,
        master: SocketAddr,
        name: &str,
    ) -> core::result::Result<Self, zerosmq_core::NameError> {
        let cfg = NodeConfig::new(connector, master, name)?;
        Ok(Node { cfg })
    }

    /// Sends control requests in the binary encoding instead of the original's text (the
    /// default with feature `text`; without it, binary is the default and text is refused).
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.cfg.encoding = encoding;
        self
    }

    /// Authenticates every connection of the node (control requests, publishers, subscribers)
    /// with ZMTP PLAIN, as the master requires when it runs with `--passwords`. A refusal is
    /// [`Error::AuthFailed`]. The role buffers must also hold the HELLO command (10 bytes plus
    /// the user name and the password).
    pub fn with_plain(
        mut self,
        user: &'static str,
        password: &'static str,
    ) -> core::result::Result<Self, CredentialsTooLong> {
        self.cfg.plain = Some(PlainCredentials::new(user, password)?);
        Ok(self)
    }

    /// Mixes a random value (from the board's RNG) into ready-probe nonces, so two boards with
    /// the same name never share a probe.
    pub fn with_probe_seed(mut self, seed: u64) -> Self {
        self.cfg.seed ^= seed;
        self
    }

    /// Gives the node a clock: from then on `publish` and `recv` send the node's heartbeat when
    /// `heartbeat_every_ms` has passed (keep it well within the master's `--node-timeout`, 5 s by
    /// default). An application that only publishes then stays in the graph without calling
    /// [`heartbeat`](Self::heartbeat), and leaves it within the node timeout once it stops.
    #[cfg(feature = "clock")]
    pub fn with_clock(mut self, clock: &'static dyn Clock, heartbeat_every_ms: u64) -> Self {
        self.cfg.heartbeat = Some(HeartbeatTimer::new(clock, heartbeat_every_ms));
        self
    }

    /// Sends the heartbeat if the clock says it is due. A failure is logged, not returned: the
    /// master may be restarting, and the roles reconnect by themselves. Not inlined, so its
    /// buffer takes stack only while it runs.
    #[inline(never)]
    #[cfg(feature = "clock")]
    fn beat_if_due(&self) {
        if self.cfg.heartbeat_due() {
            let mut buf = [0u8; HEARTBEAT_BUF_LEN];
            if self.heartbeat(&mut buf).is_err() {
                warn!("heartbeat failed");
            }
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.cfg.name.as_str()
    }

    /// Sends one control request over a fresh REQ connection; the reply borrows `buf` (at least
    /// 64 bytes; replies longer than `buf` are [`Error::FrameTooLarge`]).
    pub fn request<'b>(
        &self,
        req: &ControlRequest,
        buf: &'b mut [u8],
    ) -> Result<ControlReply<'b>, C> {
        let (mut io, mut conn) = open(
            &self.cfg.connector,
            self.cfg.master,
            SocketType::Req,
            self.cfg.plain,
            buf,
        )?;
        let (start, end) =
            node::encode_request(req, self.cfg.encoding, buf).map_err(|_| Error::BufferTooSmall)?;
        io.write_all(&buf[start..end]).map_err(Error::Transport)?;
        io.flush().map_err(Error::Transport)?;
        let mut reply = ReplyReader::default();
        let len = loop {
            let ev = next_event(&mut io, &mut conn, buf)?;
            if let Some(len) = reply.on_event(ev)? {
                break len;
            }
        };
        node::decode(req, &buf[..len])
    }

    /// Sends a heartbeat: claims the node name for this node instance (its session is the probe
    /// seed) and keeps it alive. Optional: a node that never sends one is never expired, but one
    /// that did must repeat it well within the master's node timeout (5 s by default). Returns the
    /// master's epoch, which changes when the master restarts.
    pub fn heartbeat(&self, buf: &mut [u8]) -> Result<u64, C> {
        node::alive(self.request(&self.cfg.heartbeat_request(), buf)?)
    }

    /// The topic graph as Graphviz DOT, borrowed from `buf`.
    pub fn graph<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, C> {
        node::graph(self.request(&ControlRequest::Graph, buf)?)
    }

    fn grant(&self, req: &ControlRequest, buf: &mut [u8]) -> Result<SocketAddr, C> {
        self.cfg.granted_addr(self.request(req, buf)?)
    }

    /// Asks the master for `topic`'s publisher port and connects. Call
    /// [`Publisher::wait_ready`] before the first message that must not be lost.
    /// `buf` (at least 64 bytes, 256 recommended) is the publisher's for good.
    pub fn advertise<'n, 'b>(
        &'n self,
        topic: &str,
        buf: &'b mut [u8],
    ) -> Result<Publisher<'n, 'b, C>, C> {
        let mut publisher = Publisher {
            node: self,
            topic: Topic::new(topic)?,
            buf,
            link: None,
        };
        publisher.connect()?;
        Ok(publisher)
    }

    /// Asks the master for `topic`'s subscriber port, connects and subscribes (to the topic and
    /// to a ready probe: see [`Subscriber::wait_ready`]). Received messages land in
    /// `buf`, so it must hold the largest `TOPIC SP PAYLOAD` frame expected (and 64 bytes at least).
    pub fn subscribe<'n, 'b>(
        &'n self,
        topic: &str,
        buf: &'b mut [u8],
    ) -> Result<Subscriber<'n, 'b, C>, C> {
        let mut subscriber = Subscriber {
            node: self,
            topic: Topic::new(topic)?,
            buf,
            probe: [0; PROBE_LEN],
            link: None,
        };
        subscriber.connect()?;
        Ok(subscriber)
    }
}

struct PubLink<T> {
    io: T,
    conn: Connection<'static>,
    subscriptions: SubscriptionCount,
}

/// Publishes `TOPIC SP PAYLOAD` frames on one topic through the master.
pub struct Publisher<'n, 'b, C: Connect + 'n> {
    node: &'n Node<C>,
    topic: Topic,
    buf: &'b mut [u8],
    link: Option<PubLink<C::Connection<'n>>>,
}

impl<C: Connect> core::fmt::Debug for Publisher<'_, '_, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("connected", &self.link.is_some())
            .finish()
    }
}

impl<'n, C: Connect> Publisher<'n, '_, C> {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.topic.as_str()
    }

    /// Whether the master has subscribed, so that a message published now is forwarded.
    pub fn is_ready(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.subscriptions.any())
    }

    fn connect(&mut self) -> Result<(), C> {
        let req = self.node.cfg.grant_request(true, &self.topic);
        let addr = self.node.grant(&req, self.buf)?;
        let (io, conn) = open(
            &self.node.cfg.connector,
            addr,
            SocketType::Pub,
            self.node.cfg.plain,
            self.buf,
        )?;
        debug!("publisher connected to port {}", addr.port());
        self.link = Some(PubLink {
            io,
            conn,
            subscriptions: SubscriptionCount::default(),
        });
        Ok(())
    }

    /// (Re)connects if needed, with a fresh grant, and reads until the master has subscribed.
    pub fn wait_ready(&mut self) -> Result<(), C> {
        if self.link.is_none() {
            self.connect()?;
        }
        while let Some(link) = self.link.as_mut() {
            if link.subscriptions.any() {
                return Ok(());
            }
            match next_event(&mut link.io, &mut link.conn, self.buf) {
                Ok(ev) => link
                    .subscriptions
                    .on_event(ev, self.buf, self.topic.as_bytes()),
                Err(e) => return Err(self.drop_unless_kept(e)),
            }
        }
        Ok(())
    }

    fn drop_unless_kept(&mut self, e: Error<C::Error>) -> Error<C::Error> {
        if !e.keeps_connection() {
            self.link = None;
        }
        e
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), C> {
        let Some(link) = self.link.as_mut() else {
            return Err(Error::Disconnected);
        };
        let topic = self.topic.as_bytes();
        let (header, n) = node::data_header(topic, payload);
        // Header, topic, separator and payload go out from where they are: no copy.
        for part in [&header[..n], topic, b" ", payload] {
            link.io.write_all(part).map_err(Error::Transport)?;
        }
        link.io.flush().map_err(Error::Transport)
    }

    /// Publishes one message. If the connection is gone (the master restarted), asks for a new
    /// grant, reconnects, waits for the master's subscription and sends again, once.
    pub fn publish(&mut self, payload: &[u8]) -> Result<(), C> {
        #[cfg(feature = "clock")]
        self.node.beat_if_due();
        if self.link.is_none() {
            self.wait_ready()?;
        }
        match self.send(payload) {
            Ok(()) => Ok(()),
            // The connection is gone (a write failed): reconnect with a fresh grant, send again.
            Err(_) => {
                warn!("publish failed, reconnecting");
                self.link = None;
                self.wait_ready()?;
                self.send(payload).map_err(|e| self.drop_unless_kept(e))
            }
        }
    }
}

impl<'n, C: Connect> Publisher<'n, '_, C>
where
    C::Connection<'n>: ReadReady,
{
    /// Handles what the master sent without blocking: answers its ZMTP PINGs and follows its
    /// subscription. The master closes a connection that stays silent for 6 s after a PING, so
    /// a publisher that may be idle longer than that should call this every second or so (a
    /// publisher that publishes more often needs nothing: its messages count as traffic).
    pub fn poll(&mut self) -> Result<(), C> {
        if self.link.is_none() {
            return self.wait_ready();
        }
        while let Some(link) = self.link.as_mut() {
            // Only what has arrived: one read per ready check, so this never blocks.
            let step = match link.io.read_ready() {
                Ok(false) if !link.conn.wants_transmit() => return Ok(()),
                Ok(false) => flush(&mut link.io, &mut link.conn, self.buf).map(|()| None),
                Ok(true) => read_once(&mut link.io, &mut link.conn, self.buf),
                Err(e) => Err(Error::Transport(e)),
            };
            match step {
                Ok(Some(ev)) => link
                    .subscriptions
                    .on_event(ev, self.buf, self.topic.as_bytes()),
                Ok(None) => {}
                Err(e) => return Err(self.drop_unless_kept(e)),
            }
        }
        Ok(())
    }
}

struct SubLink<T> {
    io: T,
    conn: Connection<'static>,
    state: SubState,
}

/// Receives the messages of one topic through the master.
pub struct Subscriber<'n, 'b, C: Connect + 'n> {
    node: &'n Node<C>,
    topic: Topic,
    buf: &'b mut [u8],
    probe: [u8; PROBE_LEN],
    link: Option<SubLink<C::Connection<'n>>>,
}

impl<C: Connect> core::fmt::Debug for Subscriber<'_, '_, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic)
            .field("connected", &self.link.is_some())
            .finish()
    }
}

impl<'n, C: Connect> Subscriber<'n, '_, C> {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.topic.as_str()
    }

    /// The ready probe of the current connection (`READY_PROBE_PREFIX` and a nonce).
    pub fn probe(&self) -> &[u8] {
        &self.probe
    }

    /// Whether the ready probe came back on the current connection.
    pub fn is_ready(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.state.ready)
    }

    fn connect(&mut self) -> Result<(), C> {
        let req = self.node.cfg.grant_request(false, &self.topic);
        let addr = self.node.grant(&req, self.buf)?;
        let (mut io, conn) = open(
            &self.node.cfg.connector,
            addr,
            SocketType::Sub,
            self.node.cfg.plain,
            self.buf,
        )?;
        self.probe = self.node.cfg.next_probe(&self.topic);
        let n = node::encode_subscriptions(&conn, self.topic.as_bytes(), &self.probe, self.buf)
            .map_err(|_| Error::BufferTooSmall)?;
        io.write_all(&self.buf[..n]).map_err(Error::Transport)?;
        io.flush().map_err(Error::Transport)?;
        debug!("subscriber connected to port {}", addr.port());
        self.link = Some(SubLink {
            io,
            conn,
            state: SubState::default(),
        });
        Ok(())
    }

    /// (Re)connects if needed and reads until the ready probe comes back; data messages read
    /// meanwhile are dropped.
    pub fn wait_ready(&mut self) -> Result<(), C> {
        while !self.is_ready() {
            let _ = self.next_payload()?;
        }
        Ok(())
    }

    /// Receives the next message on the topic; the payload borrows the subscriber's buffer.
    ///
    /// When the connection drops (the master restarted), this asks for a new grant, reconnects
    /// and subscribes again before reading on; if the master cannot be reached, the error is
    /// returned and the next call tries again.
    pub fn recv(&mut self) -> Result<&[u8], C> {
        loop {
            #[cfg(feature = "clock")]
            self.node.beat_if_due();
            if let Some((at, end)) = self.next_payload()? {
                return Ok(&self.buf[at..end]);
            }
        }
    }

    /// Reads one frame: the range of `buf` holding a delivered payload, or `None`.
    fn next_payload(&mut self) -> Result<Option<(usize, usize)>, C> {
        if self.link.is_none() {
            self.connect()?;
        }
        let Some(link) = self.link.as_mut() else {
            return Err(Error::Disconnected);
        };
        let ev = match next_event(&mut link.io, &mut link.conn, self.buf) {
            Ok(ev) => ev,
            Err(e) if e.keeps_connection() => return Err(e),
            Err(_) => {
                warn!("subscriber connection lost, reconnecting");
                self.link = None;
                // One immediate retry: when the master is already back, the caller sees nothing.
                self.connect()?;
                return Ok(None);
            }
        };
        match link
            .state
            .on_event(&link.conn, ev, self.buf, self.topic.as_bytes(), &self.probe)?
        {
            SubStep::Deliver(at, end) => Ok(Some((at, end))),
            SubStep::Write(n) => {
                let sent = link
                    .io
                    .write_all(&self.buf[..n])
                    .and_then(|()| link.io.flush());
                if let Err(e) = sent {
                    self.link = None;
                    return Err(Error::Transport(e));
                }
                Ok(None)
            }
            SubStep::Nothing => Ok(None),
        }
    }
}
