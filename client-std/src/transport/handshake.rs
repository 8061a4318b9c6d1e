//! Connecting a data socket: a non-blocking TCP connect, then the ZMTP handshake as a client,
//! advanced by whoever holds the [`Handshake`] as far as the socket allows before their own
//! deadline. A subscriber drives it from its receive calls (which must not block longer than
//! asked, as libzmq's background connect never did); the node's I/O thread for a
//! publisher, on readiness events.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use zerosmq_core::zmtp::{Connection, Event, SocketType, ZmtpError};

use super::mechanism::{self, Mechanism, Opener, Sealer};
use super::sys;

/// A connection past the handshake: the next byte on `stream` starts a frame.
pub(crate) struct Established {
    pub stream: TcpStream,
    /// Negotiated ZMTP 3.`minor` (decides how subscriptions are sent).
    pub minor: u8,
    /// How we frame what we write (CURVE boxes it).
    pub sealer: Sealer,
    /// With CURVE, what opens the boxes we read (for `Inbound::with_opener`).
    pub opener: Option<Opener>,
}

/// Why a data connection could not be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// TCP failed (refused, unreachable, reset) or the handshake took too long: try again.
    Io,
    /// The peer does not speak our ZMTP, or is not the right socket type: try again (a master
    /// restarting may answer anything).
    Protocol,
    /// The master refused our PLAIN user name or password, or our CURVE public key.
    AuthFailed,
    /// A CURVE master closed the connection on our HELLO: it could not open it, so the server
    /// key we have is not its key (libzmq and our master close without a word). Try again (a
    /// master that was just restarted with new keys is the same to us).
    ServerKey,
}

impl From<io::Error> for ConnectError {
    fn from(_: io::Error) -> Self {
        ConnectError::Io
    }
}

/// Longest handshake frame we accept (READY or WELCOME with libzmq's metadata).
const HANDSHAKE_RX_LEN: usize = 1024;

/// Room for our largest handshake frame: HELLO with two 255-byte strings.
const HANDSHAKE_TX_LEN: usize = 2 * 256 + 64;

/// Bounds each blocking write after the handshake, so writers can look at their shutdown and
/// port flags while a stalled master does not read.
pub(crate) const WRITE_SLICE: Duration = Duration::from_millis(250);

/// The addresses of `host:port`. Endpoint hosts keep IPv6 brackets (libzmq wants them); the
/// resolver does not. Resolving a name may block: callers that must not resolve once.
pub(crate) fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Ok((bare, port).to_socket_addrs()?.collect())
}

/// One connection attempt in progress: TCP connect, then the handshake up to the peer's READY.
pub(crate) struct Handshake {
    /// Addresses to try in turn; `at` is the one `stream` connects to.
    addrs: Vec<SocketAddr>,
    at: usize,
    stream: TcpStream,
    /// The TCP connect completed.
    connected: bool,
    /// Stored with placeholder credentials; the real ones are lent for each step.
    conn: Connection<'static>,
    rx: [u8; HANDSHAKE_RX_LEN],
    tx: [u8; HANDSHAKE_TX_LEN],
    /// Bytes of `tx` still to write: `tx[sent..queued]`.
    queued: usize,
    sent: usize,
    /// Handshake commands written whole (the greeting is the first).
    written: u8,
    curve: bool,
    /// The whole attempt ends here.
    deadline: Instant,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("addr", &self.addrs.get(self.at))
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts connecting to the first of `addrs` as a `socket_type` socket with `mechanism`;
    /// the attempt fails after `timeout`. Never blocks.
    pub(crate) fn start(
        addrs: Vec<SocketAddr>,
        socket_type: SocketType,
        mechanism: &Mechanism,
        timeout: Duration,
    ) -> Result<Handshake, ConnectError> {
        let conn = mechanism.client(socket_type)?;
        let (at, stream) = connect_first(&addrs, 0)?;
        Ok(Handshake {
            addrs,
            at,
            stream,
            connected: false,
            conn,
            rx: [0; HANDSHAKE_RX_LEN],
            tx: [0; HANDSHAKE_TX_LEN],
            queued: 0,
            sent: 0,
            written: 0,
            curve: mechanism.is_curve(),
            deadline: Instant::now() + timeout,
        })
    }

    /// Advances the attempt as far as the socket allows, waiting for it until `until` at the
    /// latest: true once the peer's READY arrived ([`finish`](Self::finish) then), false when
    /// `until` came first (call again), or why the attempt failed (including its own timeout).
    /// `mechanism` must be the one given to [`start`](Self::start).
    pub(crate) fn advance(
        &mut self,
        mechanism: &Mechanism,
        until: Instant,
    ) -> Result<bool, ConnectError> {
        let conn = std::mem::replace(&mut self.conn, Connection::new(SocketType::Sub));
        let mut conn = mechanism.lend(conn)?;
        let r = self.step(&mut conn, until);
        self.conn = mechanism.take_back(conn);
        r
    }

    /// The socket being connected (to register it with a poll).
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The connection past the handshake, left non-blocking (for the node's I/O thread).
    pub(crate) fn finish_nonblocking(self) -> Result<Established, ConnectError> {
        let (sealer, opener) = mechanism::framing(&self.conn);
        Ok(Established {
            stream: self.stream,
            minor: self.conn.minor(),
            sealer,
            opener,
        })
    }

    /// The connection past the handshake, back in blocking mode (with [`WRITE_SLICE`]).
    pub(crate) fn finish(self) -> Result<Established, ConnectError> {
        self.stream.set_nonblocking(false)?;
        self.stream.set_write_timeout(Some(WRITE_SLICE))?;
        self.finish_nonblocking()
    }

    fn step(&mut self, conn: &mut Connection<'_>, until: Instant) -> Result<bool, ConnectError> {
        loop {
            if !self.connected {
                if !self.wait(true, until)? {
                    return Ok(false);
                }
                // Writable: the connect finished, well or not.
                match self.stream.take_error() {
                    Ok(None) => {
                        self.connected = true;
                        self.stream.set_nodelay(true)?;
                    }
                    Ok(Some(_)) | Err(_) => self.next_address()?,
                }
                continue;
            }
            if self.sent == self.queued {
                if self.queued > 0 {
                    self.written = self.written.saturating_add(1);
                }
                self.sent = 0;
                self.queued = conn
                    .poll_transmit(&mut self.tx)
                    .map_err(|_| ConnectError::Protocol)?
                    .unwrap_or(0);
            }
            if self.sent < self.queued {
                match (&self.stream).write(&self.tx[self.sent..self.queued]) {
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if !self.wait(true, until)? {
                            return Ok(false);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            // Exactly up to the end of the next frame: nothing of the data stream is consumed.
            let dst = conn.read_buffer(&mut self.rx);
            if dst.is_empty() {
                return Err(ConnectError::Protocol);
            }
            let n = match (&self.stream).read(dst) {
                // Greeting and HELLO written, nothing more: the master could not open HELLO.
                Ok(0) if self.curve && self.written == 2 => return Err(ConnectError::ServerKey),
                Ok(0) => return Err(ConnectError::Io),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.wait(false, until)? {
                        return Ok(false);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            match conn.commit_in_place(n, &mut self.rx) {
                Ok(Some(Event::Ready { .. })) => return Ok(true),
                Ok(_) => {}
                Err(ZmtpError::AuthFailed { .. }) => return Err(ConnectError::AuthFailed),
                Err(_) => return Err(ConnectError::Protocol),
            }
        }
    }

    /// Waits until the socket is readable (writable, for `write`: a connect that finished or a
    /// send buffer with room), until `until` or the attempt's deadline; false when `until` came
    /// first, an error when the attempt's deadline did.
    fn wait(&self, write: bool, until: Instant) -> Result<bool, ConnectError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(ConnectError::Io);
        }
        let end = until.min(self.deadline);
        let wait = end.saturating_duration_since(now);
        let ready = sys::poll_one(self.stream.as_fd(), write, wait)?;
        if ready {
            return Ok(true);
        }
        if Instant::now() >= self.deadline {
            return Err(ConnectError::Io);
        }
        Ok(false)
    }

    /// The connect to the current address failed: starts on the next one, if any.
    fn next_address(&mut self) -> Result<(), ConnectError> {
        (self.at, self.stream) = connect_first(&self.addrs, self.at + 1)?;
        Ok(())
    }
}

/// A socket connecting to the first of `addrs[from..]` that does not fail at once, and its
/// index. The connect is under way, or done, or failed later: the first wait tells.
fn connect_first(addrs: &[SocketAddr], from: usize) -> Result<(usize, TcpStream), ConnectError> {
    let mut at = from;
    loop {
        let addr = addrs.get(at).ok_or(ConnectError::Io)?;
        if let Ok(stream) = connect_nonblocking(*addr) {
            return Ok((at, stream));
        }
        at += 1;
    }
}

fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}
