//! The blocking driver: [`Node`], [`Publisher`], [`Subscriber`] over `embedded_io::{Read, Write,
//! ReadReady}`.
//!
//! The only reads and writes of the blocking node happen in [`drive`], one loop that performs
//! the I/O the role machine (`role.rs`) asks for; the protocol logic is there, in `node.rs` and in
//! `zerosmq-core`.

use core::net::SocketAddr;

use embedded_io::{Read, ReadReady, Write};
use zerosmq_core::control::{ControlReply, ControlRequest, Encoding};
use zerosmq_core::zmtp::{CredentialsTooLong, PlainCredentials};
use zerosmq_core::Topic;

#[cfg(feature = "clock")]
use crate::clock::{Clock, HeartbeatTimer, HEARTBEAT_BUF_LEN};
use crate::connect::Connect;
use crate::node::{self, NodeConfig, PROBE_LEN};
use crate::role::{Ctx, Goal, Io, Kind, Role};
use crate::Error;

type Result<T, C> = core::result::Result<T, Error<<C as Connect>::Error>>;

/// Performs the I/O `role` asks for until its operation is done (`true`) or the node's
/// heartbeat is due (`false`); drops the connection when the role has lost it. Never inlined:
/// requests and roles share this one copy of the loop (`opt-level = "z"` would otherwise inline
/// it into each caller).
#[inline(never)]
fn drive<'n, C: Connect>(
    connector: &'n C,
    io: &mut Option<C::Connection<'n>>,
    role: &mut Role,
    cx: &mut Ctx<'_, C>,
    buf: &mut [u8],
) -> Result<bool, C> {
    let done = perform(connector, io, role, cx, buf);
    if !role.is_connected() {
        *io = None;
    }
    done
}

fn perform<'n, C: Connect>(
    connector: &'n C,
    io: &mut Option<C::Connection<'n>>,
    role: &mut Role,
    cx: &mut Ctx<'_, C>,
    buf: &mut [u8],
) -> Result<bool, C> {
    loop {
        let conn = match role.next(cx, buf)? {
            Io::Done => return Ok(true),
            Io::Heartbeat => return Ok(false),
            Io::Connect => {
                let addr = role.remote(cx);
                *io = None;
                let opened = connector.connect(addr).map(|c| *io = Some(c));
                role.connected(cx, opened)?;
                continue;
            }
            step => (step, io.as_mut().ok_or(Error::Disconnected)?),
        };
        match conn {
            (Io::Write { start, end, flush }, conn) => {
                let mut sent = conn.write_all(&buf[start..end]);
                if flush && sent.is_ok() {
                    sent = conn.flush();
                }
                role.wrote(sent)?;
            }
            (Io::WriteData, conn) => {
                let topic = cx.topic_bytes();
                let payload = cx.payload;
                let (header, n) = node::data_header(topic, payload);
                // Header, topic, separator and payload go out from where they are: no copy.
                let sent = [&header[..n], topic, b" ", payload]
                    .iter()
                    .try_for_each(|part| conn.write_all(part))
                    .and_then(|()| conn.flush());
                role.wrote_data(sent)?;
            }
            (Io::Read { wait, .. }, conn) => {
                // Without waiting: one read only when bytes (or EOF) are there.
                match if wait { Ok(true) } else { conn.read_ready() } {
                    Ok(false) => role.would_block(),
                    Ok(true) => {
                        let read = conn.read(role.read_buffer(buf)?);
                        role.read(cx, read, buf)?;
                    }
                    Err(e) => role.read(cx, Err(e), buf)?,
                }
            }
            _ => {}
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

    /// Gives the node a clock: from then on every publisher and subscriber call sends the node's
    /// heartbeat when `heartbeat_every_ms` has passed (keep it well within the master's
    /// `--node-timeout`, 5 s by default), and `publish` first answers the master's ZMTP PINGs
    /// that have arrived. An application that only publishes then stays in the graph without
    /// calling [`heartbeat`](Self::heartbeat) or [`Publisher::poll`], and leaves it within the
    /// node timeout once it stops. A heartbeat opens its own control connection beside the
    /// role's, with a 256-byte buffer on the stack while it runs. A blocking read waits on the
    /// stack's own timeout, not on the clock: a subscriber that may wait in `recv` longer than the
    /// heartbeat period needs a read timeout ([`crate::StdConnect::read_timeout`] on a host), so
    /// that `recv` returns [`Error::TimedOut`] and the next call sends the heartbeat.
    #[cfg(feature = "clock")]
    pub fn with_clock(mut self, clock: &'static dyn Clock, heartbeat_every_ms: u64) -> Self {
        self.cfg.heartbeat = Some(HeartbeatTimer::new(clock, heartbeat_every_ms));
        self
    }

    /// Sends the heartbeat. A failure is logged, not returned: the master may be restarting,
    /// and the roles reconnect by themselves. Not inlined, so its buffer takes stack only while
    /// it runs.
    #[inline(never)]
    fn beat(&self) {
        #[cfg(feature = "clock")]
        if self.heartbeat(&mut [0u8; HEARTBEAT_BUF_LEN]).is_err() {
            warn!("heartbeat failed");
        }
    }

    /// Runs `role`'s operation, sending the node's heartbeat whenever it falls due.
    fn run<'n>(
        &'n self,
        io: &mut Option<C::Connection<'n>>,
        role: &mut Role,
        cx: &mut Ctx<'_, C>,
        buf: &mut [u8],
    ) -> Result<(), C> {
        while !drive(&self.cfg.connector, io, role, cx, buf)? {
            self.beat();
        }
        Ok(())
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
        // A request never waits for the heartbeat, so `drive` ends only when it is done.
        while !drive(&self.cfg.connector, &mut None, &mut role, &mut cx, buf)? {}
        let (_, len) = role.output();
        node::decode(req.reply_kind(), &buf[..len])
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

    /// Asks the master for `topic`'s publisher port and connects. Call
    /// [`Publisher::wait_ready`] before the first message that must not be lost.
    /// `buf` (at least 64 bytes, 256 recommended) is the publisher's for good.
    pub fn advertise<'n, 'b>(
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
    }

    /// As [`advertise`](Self::advertise), declaring the topic's type `T` (its
    /// `postcard_schema::Schema`, derived without code generation) in the grant request, as the
    /// std client's `advertise_typed` does: the master keeps it per topic and refuses another
    /// type (`ErrorCode::SchemaMismatch`), and typed readers decode what
    /// [`Publisher::publish`] sends as postcard of `T`.
    #[cfg(feature = "typed")]
    pub fn advertise_typed<'n, 'b, T: postcard_schema::Schema + ?Sized>(
        &'n self,
        topic: &str,
        buf: &'b mut [u8],
    ) -> Result<Publisher<'n, 'b, C>, C> {
        self.open_publisher(topic, buf, Some(T::SCHEMA))
    }

    fn open_publisher<'n, 'b>(
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
        publisher.run(Goal::Open, &[])?;
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
            io: None,
            role: Role::new(Kind::Subscriber),
        };
        subscriber.run(Goal::Open)?;
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

    fn run(&mut self, goal: Goal, payload: &[u8]) -> Result<(), C> {
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
    }

    /// (Re)connects if needed, with a fresh grant, and reads until the master has subscribed.
    pub fn wait_ready(&mut self) -> Result<(), C> {
        self.run(Goal::Ready, &[])
    }

    /// Publishes one message. If the connection is gone (the master restarted), asks for a new
    /// grant, reconnects, waits for the master's subscription and sends again, once.
    ///
    /// With a clock ([`Node::with_clock`]), it first sends the node's heartbeat when due and
    /// handles what the master has sent, without waiting: answers its ZMTP PINGs, follows its
    /// subscription, and notices a connection the master closed (and reconnects before it writes
    /// instead of writing into a dead socket). A publisher that publishes then needs no
    /// [`poll`](Self::poll).
    pub fn publish(&mut self, payload: &[u8]) -> Result<(), C> {
        self.run(Goal::Publish, payload)
    }

    /// Handles what the master sent without blocking: answers its ZMTP PINGs and follows its
    /// subscription (and connects, waiting for the subscription, if the connection is gone).
    /// The master closes a connection that stays silent for three of its heartbeat intervals
    /// (`--zmtp-heartbeat`), so a publisher that may be idle longer than that calls this every
    /// second or so (a publisher that publishes more often needs nothing: its messages count as
    /// traffic).
    pub fn poll(&mut self) -> Result<(), C> {
        self.run(Goal::Poll, &[])
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

    fn run(&mut self, goal: Goal) -> Result<(usize, usize), C> {
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
            .run(&mut self.io, &mut self.role, &mut cx, self.buf)?;
        Ok(self.role.output())
    }

    /// (Re)connects if needed and reads until the ready probe comes back; data messages read
    /// meanwhile are dropped.
    pub fn wait_ready(&mut self) -> Result<(), C> {
        self.run(Goal::Ready).map(|_| ())
    }

    /// Receives the next message on the topic; the payload borrows the subscriber's buffer.
    ///
    /// When the connection drops (the master restarted), this asks for a new grant, reconnects
    /// and subscribes again before reading on; if the master cannot be reached, the error is
    /// returned and the next call tries again. With a clock ([`Node::with_clock`]), it sends the
    /// node's heartbeat when due before each read.
    pub fn recv(&mut self) -> Result<&[u8], C> {
        let (at, end) = self.run(Goal::Recv)?;
        Ok(&self.buf[at..end])
    }
}
