//! The async driver: [`Node`], [`Publisher`], [`Subscriber`] over
//! `embedded_io_async::{Read, Write}`, connections opened through
//! `embedded_nal_async::TcpConnect` (embassy-net's `TcpClient` implements it).
//!
//! The same protocol logic as [`crate::blocking`]: the role machine (`role.rs`) decides, and
//! [`drive`] performs the I/O it asks for, with `.await`s. Futures are cancel-safe between
//! frames: dropping one (for example on `embassy_time::with_timeout`) while it waits for bytes
//! loses nothing, because bytes are committed to the decoder only when a read returns.
//!
//! With feature `embassy-time` and [`Node::with_heartbeat`], the node keeps itself alive: every
//! publisher and subscriber call sends the node's heartbeat when it is due (a wait in `recv`,
//! `wait_ready` or `serve` is cut short for it), and `publish` first answers the master's ZMTP
//! PINGs that have arrived, so an application that only publishes needs no `heartbeat()` and
//! no `serve()`.

use core::future::Future;
use core::net::SocketAddr;
use core::pin::pin;
use core::task::Poll;

use embedded_io_async::{Read, Write};
use embedded_nal_async::TcpConnect as Connect;
use zerosmq_core::control::{ControlReply, ControlRequest, Encoding};
use zerosmq_core::zmtp::{CredentialsTooLong, PlainCredentials};
use zerosmq_core::Topic;

#[cfg(feature = "clock")]
use crate::clock::HEARTBEAT_BUF_LEN;
#[cfg(feature = "embassy-time")]
use crate::clock::{EmbassyClock, HeartbeatTimer};
use crate::node::{self, NodeConfig, PROBE_LEN};
use crate::role::{Ctx, Goal, Io, Kind, Role};
use crate::Error;

type Result<T, C> = core::result::Result<T, Error<<C as Connect>::Error>>;

/// Performs the I/O `role` asks for until its operation is done (`true`) or the node's
/// heartbeat is due (`false`); drops the connection when the role has lost it.
async fn drive<'n, C: Connect>(
    connector: &'n C,
    io: &mut Option<C::Connection<'n>>,
    role: &mut Role,
    cx: &mut Ctx<'_, C>,
    buf: &mut [u8],
) -> Result<bool, C> {
    let done = perform(connector, io, role, cx, buf).await;
    if !role.is_connected() {
        *io = None;
    }
    done
}

async fn perform<'n, C: Connect>(
    connector: &'n C,
    io: &mut Option<C::Connection<'n>>,
    role: &mut Role,
    cx: &mut Ctx<'_, C>,
    buf: &mut [u8],
) -> Result<bool, C> {
    loop {
        let step = match role.next(cx, buf)? {
            Io::Done => return Ok(true),
            Io::Heartbeat => return Ok(false),
            Io::Connect => {
                let addr = role.remote(cx);
                *io = None;
                let opened = connector.connect(addr).await.map(|c| *io = Some(c));
                role.connected(cx, opened)?;
                continue;
            }
            step => (step, io.as_mut().ok_or(Error::Disconnected)?),
        };
        match step {
            (Io::Write { start, end, flush }, conn) => {
                let mut sent = conn.write_all(&buf[start..end]).await;
                if flush && sent.is_ok() {
                    sent = conn.flush().await;
                }
                role.wrote(sent)?;
            }
            (Io::WriteData, conn) => {
                let topic = cx.topic_bytes();
                let payload = cx.payload;
                let (header, n) = node::data_header(topic, payload);
                // Header, topic, separator and payload go out from where they are: no copy.
                let mut sent = Ok(());
                for part in [&header[..n], topic, b" ", payload] {
                    if sent.is_ok() {
                        sent = conn.write_all(part).await;
                    }
                }
                if sent.is_ok() {
                    sent = conn.flush().await;
                }
                role.wrote_data(sent)?;
            }
            (Io::Read { wait, until_ms }, conn) => {
                let read = conn.read(role.read_buffer(buf)?);
                // Dropping a read loses nothing: bytes are committed only once it returns.
                let read = if wait {
                    read_until(read, until_ms).await
                } else {
                    match poll_once(read).await {
                        Poll::Ready(read) => Some(read),
                        Poll::Pending => {
                            role.would_block();
                            None
                        }
                    }
                };
                if let Some(read) = read {
                    role.read(cx, read, buf)?;
                }
            }
            _ => {}
        }
    }
}

/// `fut`'s output, or `None` once the node's clock reaches `until_ms` (feature
/// `embassy-time`; without it, or at `u64::MAX`, the future runs to its end).
async fn read_until<F: Future>(fut: F, until_ms: u64) -> Option<F::Output> {
    #[cfg(feature = "embassy-time")]
    if until_ms != u64::MAX {
        let mut fut = pin!(fut);
        let mut timer = pin!(embassy_time::Timer::at(embassy_time::Instant::from_millis(
            until_ms
        )));
        return core::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            timer.as_mut().poll(cx).map(|()| None)
        })
        .await;
    }
    #[cfg(not(feature = "embassy-time"))]
    let _ = until_ms;
    Some(fut.await)
}

/// One poll of `fut`: only what is there already.
async fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = pin!(fut);
    core::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
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

    /// Encrypts and authenticates every connection of the node (control requests, publishers,
    /// subscribers) with CurveZMQ, as a master started with `--curve-keys` requires (in place
    /// of PLAIN, if both are given). `server_public` is the master's public key (the first line
    /// of its key file, Z85: [`zerosmq_core::zmtp::z85::decode_key`] turns it into bytes),
    /// `client_public` and `client_secret` the node's key pair (a master with
    /// `--curve-clients` admits it when its public key is listed there). `rng` (the board's
    /// hardware RNG) is read once, here: it seeds the generator of every connection's
    /// ephemeral keys.
    ///
    /// Role buffers must hold [`crate::CURVE_MIN_BUF_LEN`] bytes, and a publisher's also
    /// `topic SP payload` plus 42 bytes (messages are boxed in it; a larger one is
    /// [`Error::BufferTooSmall`]). A refused key is [`Error::AuthFailed`], a wrong server key
    /// [`Error::WrongServerKey`].
    #[cfg(feature = "curve")]
    pub fn with_curve<R: rand_core::CryptoRng + rand_core::RngCore>(
        mut self,
        server_public: [u8; 32],
        client_public: [u8; 32],
        client_secret: [u8; 32],
        rng: &mut R,
    ) -> core::result::Result<Self, crate::CurveKeyMismatch> {
        self.cfg.curve = Some(crate::curve::CurveConfig::new(
            server_public,
            client_public,
            client_secret,
            rng,
        )?);
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

    /// Sends the heartbeat. A failure is logged, not returned: the master may be restarting,
    /// and the roles reconnect by themselves.
    async fn beat(&self) {
        #[cfg(feature = "clock")]
        if self.heartbeat(&mut [0u8; HEARTBEAT_BUF_LEN]).await.is_err() {
            warn!("heartbeat failed");
        }
    }

    /// Runs `role`'s operation, sending the node's heartbeat whenever it falls due.
    async fn run<'n>(
        &'n self,
        io: &mut Option<C::Connection<'n>>,
        role: &mut Role,
        cx: &mut Ctx<'_, C>,
        buf: &mut [u8],
    ) -> Result<(), C> {
        while !drive(&self.cfg.connector, io, role, cx, buf).await? {
            self.beat().await;
        }
        Ok(())
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
        let mut role = Role::new(Kind::Request);
        role.begin(Goal::Reply);
        let mut cx = Ctx {
            cfg: &self.cfg,
            topic: None,
            probe: None,
            request: Some(req),
            payload: &[],
            #[cfg(feature = "typed")]
            schema: None,
        };
        let mut io = None;
        // A request never waits for the heartbeat, so `drive` ends only when it is done.
        while !drive(&self.cfg.connector, &mut io, &mut role, &mut cx, buf).await? {}
        let (_, len) = role.output();
        node::decode(req.reply_kind(), &buf[..len])
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

    /// Asks the master for `topic`'s publisher port and connects. Call
    /// [`Publisher::wait_ready`] before the first message that must not be lost.
    /// `buf` (at least 64 bytes, 256 recommended) is the publisher's for good.
    pub async fn advertise<'n, 'b>(
        &'n self,
        topic: &str,
        buf: &'b mut [u8],
    ) -> Result<Publisher<'n, 'b, C>, C> {
        self.open_publisher(
            topic,
            buf,
            #[cfg(feature = "typed")]
            None,
        )
        .await
    }

    /// As [`advertise`](Self::advertise), declaring the topic's type `T` (its
    /// `postcard_schema::Schema`, derived without code generation) in the grant request, as the
    /// std client's `advertise_typed` does: the master keeps it per topic and refuses another
    /// type (`ErrorCode::SchemaMismatch`), and typed readers decode what
    /// [`Publisher::publish`] sends as postcard of `T`.
    #[cfg(feature = "typed")]
    pub async fn advertise_typed<'n, 'b, T: postcard_schema::Schema + ?Sized>(
        &'n self,
        topic: &str,
        buf: &'b mut [u8],
    ) -> Result<Publisher<'n, 'b, C>, C> {
        self.open_publisher(topic, buf, Some(T::SCHEMA)).await
    }

    async fn open_publisher<'n, 'b>(
        &'n self,
        topic: &str,
        buf: &'b mut [u8],
        #[cfg(feature = "typed")] schema: Option<&'static postcard_schema::schema::NamedType>,
    ) -> Result<Publisher<'n, 'b, C>, C> {
        let mut publisher = Publisher {
            node: self,
            topic: Topic::new(topic)?,
            buf,
            io: None,
            role: Role::new(Kind::Publisher),
            #[cfg(feature = "typed")]
            schema,
        };
        publisher.run(Goal::Open, &[]).await?;
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
            io: None,
            role: Role::new(Kind::Subscriber),
        };
        subscriber.run(Goal::Open).await?;
        Ok(subscriber)
    }
}

/// Publishes `TOPIC SP PAYLOAD` frames on one topic through the master.
pub struct Publisher<'n, 'b, C: Connect + 'n> {
    node: &'n Node<C>,
    topic: Topic,
    buf: &'b mut [u8],
    io: Option<C::Connection<'n>>,
    role: Role,
    /// The declared type (`advertise_typed`), sent again with every grant request.
    #[cfg(feature = "typed")]
    schema: Option<&'static postcard_schema::schema::NamedType>,
}

impl<C: Connect> core::fmt::Debug for Publisher<'_, '_, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("connected", &self.role.is_connected())
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
        self.role.is_ready()
    }

    async fn run(&mut self, goal: Goal, payload: &[u8]) -> Result<(), C> {
        self.role.begin(goal);
        let mut cx = Ctx {
            cfg: &self.node.cfg,
            topic: Some(&self.topic),
            probe: None,
            request: None,
            payload,
            #[cfg(feature = "typed")]
            schema: self.schema,
        };
        self.node
            .run(&mut self.io, &mut self.role, &mut cx, self.buf)
            .await
    }

    /// (Re)connects if needed, with a fresh grant, and reads until the master has subscribed.
    pub async fn wait_ready(&mut self) -> Result<(), C> {
        self.run(Goal::Ready, &[]).await
    }

    /// Publishes one message. If the connection is gone (the master restarted), asks for a new
    /// grant, reconnects, waits for the master's subscription and sends again, once.
    ///
    /// With feature `embassy-time`, it first sends the node's heartbeat when due and handles
    /// what the master has sent, without waiting: answers its ZMTP PINGs, follows its
    /// subscription, and notices a connection the master closed (and reconnects before it
    /// writes instead of writing into a dead socket).
    pub async fn publish(&mut self, payload: &[u8]) -> Result<(), C> {
        self.run(Goal::Publish, payload).await
    }

    /// Handles what the master sends, forever: answers its ZMTP PINGs and follows its
    /// subscription. Returns only on an error (the connection is then dropped and the next
    /// `publish` reconnects). The master closes a connection that stays silent for three of its
    /// heartbeat intervals, so a publisher that may be idle longer runs this while it waits, for
    /// example `embassy_time::with_timeout(period, publisher.serve()).await` before each
    /// `publish` (with [`Node::with_heartbeat`], `publish` alone answers the PINGs that arrived
    /// meanwhile). Cancelling it loses nothing, except a PONG cut half-way when the socket's
    /// transmit buffer is full, which costs a reconnect.
    pub async fn serve(&mut self) -> Error<C::Error> {
        match self.run(Goal::Serve, &[]).await {
            Err(e) => e,
            // Serving never finishes by itself.
            Ok(()) => Error::Disconnected,
        }
    }
}

/// Receives the messages of one topic through the master.
pub struct Subscriber<'n, 'b, C: Connect + 'n> {
    node: &'n Node<C>,
    topic: Topic,
    buf: &'b mut [u8],
    probe: [u8; PROBE_LEN],
    io: Option<C::Connection<'n>>,
    role: Role,
}

impl<C: Connect> core::fmt::Debug for Subscriber<'_, '_, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic)
            .field("connected", &self.role.is_connected())
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
        self.role.is_ready()
    }

    async fn run(&mut self, goal: Goal) -> Result<(usize, usize), C> {
        self.role.begin(goal);
        let mut cx = Ctx {
            cfg: &self.node.cfg,
            topic: Some(&self.topic),
            probe: Some(&mut self.probe),
            request: None,
            payload: &[],
            #[cfg(feature = "typed")]
            schema: None,
        };
        self.node
            .run(&mut self.io, &mut self.role, &mut cx, self.buf)
            .await?;
        Ok(self.role.output())
    }

    /// (Re)connects if needed and reads until the ready probe comes back; data messages read
    /// meanwhile are dropped.
    pub async fn wait_ready(&mut self) -> Result<(), C> {
        self.run(Goal::Ready).await.map(|_| ())
    }

    /// Receives the next message on the topic; the payload borrows the subscriber's buffer.
    ///
    /// When the connection drops (the master restarted), this asks for a new grant, reconnects
    /// and subscribes again before reading on; if the master cannot be reached, the error is
    /// returned and the next call tries again.
    pub async fn recv(&mut self) -> Result<&[u8], C> {
        let (at, end) = self.run(Goal::Recv).await?;
        Ok(&self.buf[at..end])
    }
}
