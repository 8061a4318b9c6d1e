//! The async driver: [`Node`], [`Publisher`], [`Subscriber`] over
//! `embedded_io_async::{Read, Write}`, connections opened through
//! `embedded_nal_async::TcpConnect` (embassy-net's `TcpClient` implements it).
//!
//! The same protocol logic as [`crate::blocking`] (in `node.rs` and `zerosmq-core`); only these
//! short loops differ, by their `.await`s. Futures are cancel-safe between frames: dropping one
//! (for example on `embassy_time::with_timeout`) while it waits for bytes loses nothing, because
//! bytes are committed to the decoder as soon as a read returns.
//!
//! With feature `embassy-time` and [`Node::with_heartbeat`], the node keeps itself alive: every
//! publisher and subscriber call sends the node's heartbeat when it is due (a wait in `recv`,
//! `wait_ready` or `serve` is cut short for it), and `publish` first answers the master's ZMTP
//! PINGs that have arrived, so an application that only publishes needs no `heartbeat()` and
//! no `serve()`.

use core::net::SocketAddr;
#[cfg(feature = "embassy-time")]
use core::task::Poll;

use embedded_io_async::{Read, Write};
use embedded_nal_async::TcpConnect as Connect;
use zerosmq_core::control::{ControlReply, ControlRequest, Encoding};
use zerosmq_core::zmtp::{Connection, CredentialsTooLong, Event, PlainCredentials, SocketType};
use zerosmq_core::Topic;

#[cfg(feature = "embassy-time")]
use crate::clock::{EmbassyClock, HeartbeatTimer, HEARTBEAT_BUF_LEN};
use crate::link;
use crate::node::{self, NodeConfig, ReplyReader, SubState, SubStep, SubscriptionCount, PROBE_LEN};
use crate::Error;

type Result<T, C> = core::result::Result<T, Error<<C as Connect>::Error>>;

/// Writes what the connection has pending (greeting, READY, PONG), using `buf` as scratch.
async fn flush<T: Write>(
    io: &mut T,
    conn: &mut Connection<'_>,
    buf: &mut [u8],
) -> core::result::Result<(), Error<T::Error>> {
    while let Some(n) = link::transmit(conn, buf)? {
        io.write_all(&buf[..n]).await.map_err(Error::Transport)?;
    }
    io.flush().await.map_err(Error::Transport)
}

/// Reads until the connection produces an event; a frame's body is left in `buf`.
///
/// Pending output is written only between frames, so it never overwrites a partial frame.
async fn next_event<T: Read + Write>(
    io: &mut T,
    conn: &mut Connection<'_>,
    buf: &mut [u8],
) -> core::result::Result<Event, Error<T::Error>> {
    loop {
        if conn.wants_transmit() {
            flush(io, conn, buf).await?;
        }
        let read = io.read(link::read_buffer(conn, buf)?).await;
        if let Some(ev) = link::on_read(conn, read, buf)? {
            return Ok(ev);
        }
    }
}

/// [`next_event`], or `None` when the node's own heartbeat falls due first (then the read is
/// dropped, which loses nothing: see the module's note on cancelling).
async fn next_event_or_beat<C: Connect, T: Read + Write>(
    node: &Node<C>,
    io: &mut T,
    conn: &mut Connection<'_>,
    buf: &mut [u8],
) -> core::result::Result<Option<Event>, Error<T::Error>> {
    #[cfg(feature = "embassy-time")]
    if let Some(due) = node.cfg.heartbeat.as_ref().map(HeartbeatTimer::due_ms) {
        use core::future::Future as _;
        let mut event = core::pin::pin!(next_event(io, conn, buf));
        let mut timer = core::pin::pin!(embassy_time::Timer::at(
            embassy_time::Instant::from_millis(due)
        ));
        return core::future::poll_fn(|cx| {
            if let Poll::Ready(ev) = event.as_mut().poll(cx) {
                return Poll::Ready(ev.map(Some));
            }
            timer.as_mut().poll(cx).map(|()| Ok(None))
        })
        .await;
    }
    #[cfg(not(feature = "embassy-time"))]
    let _ = node;
    next_event(io, conn, buf).await.map(Some)
}

/// Connects and runs the handshake (NULL, or PLAIN with `plain`) for a local socket of
/// `socket_type`.
async fn open<'n, C: Connect>(
    connector: &'n C,
    remote: SocketAddr,
    socket_type: SocketType,
    plain: Option<PlainCredentials<'static>>,
    buf: &mut [u8],
) -> Result<(C::Connection<'n>, Connection<'static>), C> {
    let mut io = connector.connect(remote).await.map_err(Error::Transport)?;
    let mut conn = Connection::with_mechanism(socket_type, plain);
    loop {
        if let Event::Ready { .. } = next_event(&mut io, &mut conn, buf).await? {
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

    /// Keeps the node alive by itself (feature `embassy-time`): from then on every publisher
    /// and subscriber call sends the node's heartbeat when `every` has passed (keep it well
    /// within the master's `--node-timeout`, 5 s by default), also while `recv`, `wait_ready`
    /// or `serve` waits. An application that only publishes then stays in `node list` without
    /// calling [`heartbeat`](Self::heartbeat), and leaves it within the node timeout once it
    /// stops. A heartbeat opens its own control connection beside the role's (one more socket
    /// for the TCP stack), with a 256-byte buffer inside the calling future.
    #[cfg(feature = "embassy-time")]
    pub fn with_heartbeat(mut self, every: embassy_time::Duration) -> Self {
        static CLOCK: EmbassyClock = EmbassyClock;
        self.cfg.heartbeat = Some(HeartbeatTimer::new(&CLOCK, every.as_millis()));
        self
    }

    /// Sends the heartbeat if it is due. A failure is logged, not returned: the master may be
    /// restarting, and the roles reconnect by themselves.
    #[cfg(feature = "embassy-time")]
    async fn beat_if_due(&self) {
        if self.cfg.heartbeat_due() {
            let mut buf = [0u8; HEARTBEAT_BUF_LEN];
            if self.heartbeat(&mut buf).await.is_err() {
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
    pub async fn request<'b>(
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
        )
        .await?;
        let (start, end) =
            node::encode_request(req, self.cfg.encoding, buf).map_err(|_| Error::BufferTooSmall)?;
        io.write_all(&buf[start..end])
            .await
            .map_err(Error::Transport)?;
        io.flush().await.map_err(Error::Transport)?;
        let mut reply = ReplyReader::default();
        let len = loop {
            let ev = next_event(&mut io, &mut conn, buf).await?;
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
    pub async fn heartbeat(&self, buf: &mut [u8]) -> Result<u64, C> {
        node::alive(self.request(&self.cfg.heartbeat_request(), buf).await?)
    }

    /// The topic graph as Graphviz DOT, borrowed from `buf`.
    pub async fn graph<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, C> {
        node::graph(self.request(&ControlRequest::Graph, buf).await?)
    }

    async fn grant(&self, req: &ControlRequest, buf: &mut [u8]) -> Result<SocketAddr, C> {
        self.cfg.granted_addr(self.request(req, buf).await?)
    }

    /// Asks the master for `topic`'s publisher port and connects. Call
    /// [`Publisher::wait_ready`] before the first message that must not be lost.
    /// `buf` (at least 64 bytes, 256 recommended) is the publisher's for good.
    pub async fn advertise<'n, 'b>(
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
        publisher.connect().await?;
        Ok(publisher)
    }

    /// Asks the master for `topic`'s subscriber port, connects and subscribes (to the topic and
    /// to a ready probe: see [`Subscriber::wait_ready`]). Received messages land in
    /// `buf`, so it must hold the largest `TOPIC SP PAYLOAD` frame expected (and 64 bytes at least).
    pub async fn subscribe<'n, 'b>(
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
        subscriber.connect().await?;
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

    async fn connect(&mut self) -> Result<(), C> {
        let req = self.node.cfg.grant_request(true, &self.topic);
        let addr = self.node.grant(&req, self.buf).await?;
        let (io, conn) = open(
            &self.node.cfg.connector,
            addr,
            SocketType::Pub,
            self.node.cfg.plain,
            self.buf,
        )
        .await?;
        debug!("publisher connected to port {}", addr.port());
        self.link = Some(PubLink {
            io,
            conn,
            subscriptions: SubscriptionCount::default(),
        });
        Ok(())
    }

    /// (Re)connects if needed, with a fresh grant, and reads until the master has subscribed.
    pub async fn wait_ready(&mut self) -> Result<(), C> {
        if self.link.is_none() {
            self.connect().await?;
        }
        loop {
            #[cfg(feature = "embassy-time")]
            self.node.beat_if_due().await;
            let Some(link) = self.link.as_mut() else {
                return Ok(());
            };
            if link.subscriptions.any() {
                return Ok(());
            }
            match next_event_or_beat(self.node, &mut link.io, &mut link.conn, self.buf).await {
                Ok(Some(ev)) => link
                    .subscriptions
                    .on_event(ev, self.buf, self.topic.as_bytes()),
                Ok(None) => {}
                Err(e) => return Err(self.drop_unless_kept(e)),
            }
        }
    }

    fn drop_unless_kept(&mut self, e: Error<C::Error>) -> Error<C::Error> {
        if !e.keeps_connection() {
            self.link = None;
        }
        e
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), C> {
        let Some(link) = self.link.as_mut() else {
            return Err(Error::Disconnected);
        };
        let topic = self.topic.as_bytes();
        let (header, n) = node::data_header(topic, payload);
        // Header, topic, separator and payload go out from where they are: no copy.
        for part in [&header[..n], topic, b" ", payload] {
            link.io.write_all(part).await.map_err(Error::Transport)?;
        }
        link.io.flush().await.map_err(Error::Transport)
    }

    /// Publishes one message. If the connection is gone (the master restarted), asks for a new
    /// grant, reconnects, waits for the master's subscription and sends again, once.
    pub async fn publish(&mut self, payload: &[u8]) -> Result<(), C> {
        #[cfg(feature = "embassy-time")]
        {
            self.node.beat_if_due().await;
            self.drain().await;
        }
        if self.link.is_none() {
            self.wait_ready().await?;
        }
        match self.send(payload).await {
            Ok(()) => Ok(()),
            // The connection is gone (a write failed): reconnect with a fresh grant, send again.
            Err(_) => {
                warn!("publish failed, reconnecting");
                self.link = None;
                self.wait_ready().await?;
                self.send(payload)
                    .await
                    .map_err(|e| self.drop_unless_kept(e))
            }
        }
    }
}

impl<'n, C: Connect> Publisher<'n, '_, C> {
    /// Handles what the master has sent so far, without waiting: answers its PINGs, follows its
    /// subscription, and drops a connection the master closed (so `publish` reconnects before
    /// it sends instead of writing into a dead socket).
    #[cfg(feature = "embassy-time")]
    async fn drain(&mut self) {
        use core::future::Future as _;
        while let Some(link) = self.link.as_mut() {
            if link.conn.wants_transmit() {
                if let Err(e) = flush(&mut link.io, &mut link.conn, self.buf).await {
                    self.drop_unless_kept(e);
                    return;
                }
            }
            let dst = match link::read_buffer(&link.conn, self.buf) {
                Ok(dst) => dst,
                Err(e) => {
                    self.drop_unless_kept(e);
                    return;
                }
            };
            // One poll of a read: only what has arrived (dropping it loses nothing).
            let polled = {
                let mut read = core::pin::pin!(link.io.read(dst));
                core::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await
            };
            let Poll::Ready(read) = polled else {
                return;
            };
            let read = link::on_read(&mut link.conn, read, self.buf);
            match read {
                Ok(Some(ev)) => link
                    .subscriptions
                    .on_event(ev, self.buf, self.topic.as_bytes()),
                Ok(None) => {}
                Err(e) => {
                    if !self.drop_unless_kept(e).keeps_connection() {
                        return;
                    }
                }
            }
        }
    }

    /// Handles what the master sends, forever: answers its ZMTP PINGs and follows its
    /// subscription. Returns only on an error (the connection is then dropped and the next
    /// `publish` reconnects). The master closes a connection that stays silent for 6 s after a
    /// PING, so a publisher that may be idle longer runs this while it waits, for example
    /// `embassy_time::with_timeout(period, publisher.serve()).await` before each `publish`.
    /// Cancelling it loses nothing, except a PONG cut half-way when the socket's transmit
    /// buffer is full, which costs a reconnect.
    pub async fn serve(&mut self) -> Error<C::Error> {
        loop {
            if let Err(e) = self.wait_ready().await {
                return e;
            }
            #[cfg(feature = "embassy-time")]
            self.node.beat_if_due().await;
            let Some(link) = self.link.as_mut() else {
                continue;
            };
            match next_event_or_beat(self.node, &mut link.io, &mut link.conn, self.buf).await {
                Ok(Some(ev)) => link
                    .subscriptions
                    .on_event(ev, self.buf, self.topic.as_bytes()),
                Ok(None) => {}
                Err(e) => return self.drop_unless_kept(e),
            }
        }
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

    async fn connect(&mut self) -> Result<(), C> {
        let req = self.node.cfg.grant_request(false, &self.topic);
        let addr = self.node.grant(&req, self.buf).await?;
        let (mut io, conn) = open(
            &self.node.cfg.connector,
            addr,
            SocketType::Sub,
            self.node.cfg.plain,
            self.buf,
        )
        .await?;
        self.probe = self.node.cfg.next_probe(&self.topic);
        let n = node::encode_subscriptions(&conn, self.topic.as_bytes(), &self.probe, self.buf)
            .map_err(|_| Error::BufferTooSmall)?;
        io.write_all(&self.buf[..n])
            .await
            .map_err(Error::Transport)?;
        io.flush().await.map_err(Error::Transport)?;
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
    pub async fn wait_ready(&mut self) -> Result<(), C> {
        while !self.is_ready() {
            let _ = self.next_payload().await?;
        }
        Ok(())
    }

    /// Receives the next message on the topic; the payload borrows the subscriber's buffer.
    ///
    /// When the connection drops (the master restarted), this asks for a new grant, reconnects
    /// and subscribes again before reading on; if the master cannot be reached, the error is
    /// returned and the next call tries again.
    pub async fn recv(&mut self) -> Result<&[u8], C> {
        loop {
            if let Some((at, end)) = self.next_payload().await? {
                return Ok(&self.buf[at..end]);
            }
        }
    }

    /// Reads one frame: the range of `buf` holding a delivered payload, or `None`.
    async fn next_payload(&mut self) -> Result<Option<(usize, usize)>, C> {
        #[cfg(feature = "embassy-time")]
        self.node.beat_if_due().await;
        if self.link.is_none() {
            self.connect().await?;
        }
        let Some(link) = self.link.as_mut() else {
            return Err(Error::Disconnected);
        };
        let ev = match next_event_or_beat(self.node, &mut link.io, &mut link.conn, self.buf).await {
            Ok(Some(ev)) => ev,
            // The heartbeat is due: the caller's loop sends it.
            Ok(None) => return Ok(None),
            Err(e) if e.keeps_connection() => return Err(e),
            Err(_) => {
                warn!("subscriber connection lost, reconnecting");
                self.link = None;
                // One immediate retry: when the master is already back, the caller sees nothing.
                self.connect().await?;
                return Ok(None);
            }
        };
        match link
            .state
            .on_event(&link.conn, ev, self.buf, self.topic.as_bytes(), &self.probe)?
        {
            SubStep::Deliver(at, end) => Ok(Some((at, end))),
            SubStep::Write(n) => {
                let sent = link.io.write_all(&self.buf[..n]).await;
                let sent = match sent {
                    Ok(()) => link.io.flush().await,
                    Err(e) => Err(e),
                };
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
