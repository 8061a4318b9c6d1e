//! Connecting a data socket: TCP, then the ZMTP handshake as a client.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use zerosmq_core::zmtp::{Connection, Event, PlainCredentials, SocketType, ZmtpError};

/// A connection past the handshake: the next byte on `stream` starts a frame.
#[derive(Debug)]
pub(crate) struct Established {
    pub stream: TcpStream,
    /// Negotiated ZMTP 3.`minor` (decides how subscriptions are sent).
    pub minor: u8,
}

/// Why a data connection could not be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// TCP failed (refused, unreachable, reset) or the handshake took too long: try again.
    Io,
    /// The peer does not speak our ZMTP, or is not the right socket type: try again (a master
    /// restarting may answer anything).
    Protocol,
    /// The master refused our PLAIN user name or password.
    AuthFailed,
}

impl From<io::Error> for ConnectError {
    fn from(_: io::Error) -> Self {
        ConnectError::Io
    }
}

/// Longest handshake frame we accept (READY or WELCOME with libzmq's metadata).
const HANDSHAKE_RX_LEN: usize = 1024;

/// Bounds each blocking write after the handshake, so writers can look at their shutdown and
/// port flags while a stalled master does not read.
pub(crate) const WRITE_SLICE: Duration = Duration::from_millis(250);

/// Connects to `host:port` as a `socket_type` socket, with PLAIN `credentials` if any, within
/// `timeout`. Reads exactly up to the peer's READY, so nothing of the data stream is consumed.
pub(crate) fn connect(
    host: &str,
    port: u16,
    socket_type: SocketType,
    credentials: Option<&(String, String)>,
    timeout: Duration,
) -> Result<Established, ConnectError> {
    let deadline = Instant::now() + timeout;
    // Endpoint hosts keep IPv6 brackets (libzmq wants them); the resolver does not.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the master");
    let mut stream = None;
    for addr in (bare, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream.set_nodelay(true)?;
    let plain = match credentials {
        Some((user, password)) => {
            Some(PlainCredentials::new(user, password).map_err(|_| ConnectError::AuthFailed)?)
        }
        None => None,
    };
    let mut conn = Connection::with_mechanism(socket_type, plain);
    let mut rx = [0u8; HANDSHAKE_RX_LEN];
    let mut tx = [0u8; 2 * 256 + 64];
    let minor = loop {
        while let Some(n) = conn
            .poll_transmit(&mut tx)
            .map_err(|_| ConnectError::Protocol)?
        {
            stream.set_write_timeout(Some(left(deadline)?))?;
            stream.write_all(&tx[..n])?;
        }
        let dst = conn.read_buffer(&mut rx);
        if dst.is_empty() {
            return Err(ConnectError::Protocol);
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = stream.read(dst)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        match conn.commit(n, &rx) {
            Ok(Some(Event::Ready { minor, .. })) => break minor,
            Ok(_) => {}
            Err(ZmtpError::AuthFailed { .. }) => return Err(ConnectError::AuthFailed),
            Err(_) => return Err(ConnectError::Protocol),
        }
    };
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(Some(WRITE_SLICE))?;
    Ok(Established { stream, minor })
}

fn left(deadline: Instant) -> io::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(io::ErrorKind::TimedOut.into()),
    }
}
