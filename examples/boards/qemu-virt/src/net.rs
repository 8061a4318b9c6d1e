//! smoltcp over the card, and the node's TCP connections: [`Stack`] implements
//! `zerosmq_embedded::Connect`, its [`TcpStream`]s `embedded_io::{Read, Write, ReadReady}`.
//! Every blocking call polls the interface and sleeps (`wfi`) until the card's interrupt or
//! smoltcp's next timer, so the hart idles while it waits.

use core::cell::{Cell, RefCell};
use core::net::SocketAddr;

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::board;
use crate::nic::Nic;

/// TCP sockets: the publisher's and the subscriber's connections, and room for the short
/// control connections (grants, heartbeats), which linger in TIME-WAIT after they close.
pub const SOCKETS: usize = 6;
/// Bytes of each socket's receive and transmit buffer.
pub const SOCKET_BUF: usize = 4096;
/// Longest a sleep lasts even if nothing is due (bounds a missed wake-up).
const MAX_SLEEP_US: u64 = 10_000;

/// Why a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// Every socket is busy.
    NoSocket,
    /// The peer refused or reset the connection, or it is not established.
    Closed,
    /// Nothing came within the read timeout, or the connection did not open in time.
    TimedOut,
    /// An IPv6 address (this build has IPv4 only) or a bad endpoint.
    Unaddressable,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NetError::NoSocket => "no free TCP socket",
            NetError::Closed => "connection closed",
            NetError::TimedOut => "timed out",
            NetError::Unaddressable => "address not reachable with this build",
        })
    }
}

impl core::error::Error for NetError {}

impl embedded_io::Error for NetError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetError::NoSocket => ErrorKind::OutOfMemory,
            NetError::Closed => ErrorKind::ConnectionReset,
            NetError::TimedOut => ErrorKind::TimedOut,
            NetError::Unaddressable => ErrorKind::AddrNotAvailable,
        }
    }
}

/// The caller's memory for the stack: socket storage and buffers.
pub struct Buffers<'a> {
    pub storage: [SocketStorage<'a>; SOCKETS],
    pub rx: [[u8; SOCKET_BUF]; SOCKETS],
    pub tx: [[u8; SOCKET_BUF]; SOCKETS],
}

impl Buffers<'_> {
    pub const fn new() -> Self {
        Buffers {
            storage: [SocketStorage::EMPTY; SOCKETS],
            rx: [[0; SOCKET_BUF]; SOCKETS],
            tx: [[0; SOCKET_BUF]; SOCKETS],
        }
    }
}

struct Inner<'a> {
    iface: Interface,
    nic: Nic<'a>,
    sockets: SocketSet<'a>,
    handles: [SocketHandle; SOCKETS],
    in_use: [bool; SOCKETS],
}

impl<'a> Inner<'a> {
    fn poll(&mut self) {
        let now = Instant::from_micros(board::now_us() as i64);
        self.iface.poll(now, &mut self.nic, &mut self.sockets);
    }

    fn socket(&mut self, slot: usize) -> &mut tcp::Socket<'a> {
        self.sockets.get_mut::<tcp::Socket>(self.handles[slot])
    }

    /// Sleeps until the card has a frame, smoltcp has a timer due, or `deadline_us`.
    fn sleep(&mut self, deadline_us: u64) {
        let now_us = board::now_us();
        let now = Instant::from_micros(now_us as i64);
        let delay = self
            .iface
            .poll_delay(now, &self.sockets)
            .map_or(MAX_SLEEP_US, |d| d.total_micros());
        let until = now_us + delay.min(MAX_SLEEP_US);
        self.nic.sleep_until(until.min(deadline_us));
    }
}

/// An IPv4 interface with a static address and a set of TCP sockets, for one node.
pub struct Stack<'a> {
    inner: RefCell<Inner<'a>>,
    next_port: Cell<u16>,
    read_timeout_us: u64,
}

impl<'a> Stack<'a> {
    /// The interface on `nic` with address `cidr` and default route `gateway`; a read that
    /// waits longer than `read_timeout_ms` returns `TimedOut` (so a blocked `recv` returns to
    /// the application, and the node's heartbeat goes out, at least that often).
    pub fn new(
        mut nic: Nic<'a>,
        cidr: Ipv4Cidr,
        gateway: Option<Ipv4Address>,
        buffers: &'a mut Buffers<'a>,
        read_timeout_ms: u64,
    ) -> Self {
        let mac = HardwareAddress::Ethernet(EthernetAddress(nic.mac()));
        let now = Instant::from_micros(board::now_us() as i64);
        let mut config = Config::new(mac);
        // Ephemeral ports and TCP sequence numbers differ from run to run with the timer.
        config.random_seed = board::now_us();
        let mut iface = Interface::new(config, &mut nic, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        if let Some(gw) = gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        let Buffers { storage, rx, tx } = buffers;
        let mut sockets = SocketSet::new(&mut storage[..]);
        let mut handles = [SocketHandle::default(); SOCKETS];
        for ((handle, rx), tx) in handles.iter_mut().zip(rx.iter_mut()).zip(tx.iter_mut()) {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            );
            // Small ZMTP frames go out at once.
            socket.set_nagle_enabled(false);
            // A peer that stops answering keep-alives (a master that died with its host, so
            // nothing resets the connection) is given up after 5 s of silence.
            socket.set_keep_alive(Some(Duration::from_secs(1)));
            socket.set_timeout(Some(Duration::from_secs(5)));
            *handle = sockets.add(socket);
        }
        Stack {
            inner: RefCell::new(Inner {
                iface,
                nic,
                sockets,
                handles,
                in_use: [false; SOCKETS],
            }),
            next_port: Cell::new(49152 + (board::now_us() % 8192) as u16),
            read_timeout_us: read_timeout_ms * 1000,
        }
    }

    /// Waits `ms` while the interface keeps running.
    pub fn pause_ms(&self, ms: u64) {
        let until = board::now_us() + ms * 1000;
        while board::now_us() < until {
            let mut inner = self.inner.borrow_mut();
            inner.poll();
            inner.sleep(until);
        }
    }

    fn local_port(&self) -> u16 {
        let port = self.next_port.get();
        self.next_port
            .set(if port >= 65000 { 49152 } else { port + 1 });
        port
    }

    /// A socket nobody uses, closed (one in TIME-WAIT is aborted to free it).
    fn take_socket(&self) -> Result<usize, NetError> {
        let mut inner = self.inner.borrow_mut();
        let free = |inner: &mut Inner<'_>, want: tcp::State| {
            (0..SOCKETS).find(|&s| !inner.in_use[s] && inner.socket(s).state() == want)
        };
        let slot = match free(&mut inner, tcp::State::Closed) {
            Some(slot) => slot,
            None => {
                let slot = free(&mut inner, tcp::State::TimeWait).ok_or(NetError::NoSocket)?;
                inner.socket(slot).abort();
                slot
            }
        };
        inner.in_use[slot] = true;
        Ok(slot)
    }

    /// Polls and sleeps until `done` says the socket is ready (`Some`) or `deadline_us`.
    fn wait<T>(
        &self,
        slot: usize,
        deadline_us: u64,
        mut done: impl FnMut(&mut tcp::Socket<'a>) -> Option<T>,
    ) -> Result<T, NetError> {
        loop {
            let mut inner = self.inner.borrow_mut();
            inner.poll();
            if let Some(r) = done(inner.socket(slot)) {
                return Ok(r);
            }
            if board::now_us() >= deadline_us {
                return Err(NetError::TimedOut);
            }
            inner.sleep(deadline_us);
        }
    }
}

impl<'a> zerosmq_embedded::Connect for Stack<'a> {
    type Error = NetError;
    type Connection<'s>
        = TcpStream<'s, 'a>
    where
        Self: 's;

    fn connect(&self, remote: SocketAddr) -> Result<TcpStream<'_, 'a>, NetError> {
        let SocketAddr::V4(remote) = remote else {
            return Err(NetError::Unaddressable);
        };
        let slot = self.take_socket()?;
        // From here the stream owns the socket: dropping it on an error frees it.
        let stream = TcpStream { stack: self, slot };
        {
            let mut inner = self.inner.borrow_mut();
            let Inner {
                iface,
                sockets,
                handles,
                ..
            } = &mut *inner;
            let socket = sockets.get_mut::<tcp::Socket>(handles[slot]);
            socket
                .connect(
                    iface.context(),
                    (Ipv4Address::from(*remote.ip()), remote.port()),
                    self.local_port(),
                )
                .map_err(|_| NetError::Unaddressable)?;
        }
        let deadline = board::now_us() + 2_000_000;
        let opened = self.wait(slot, deadline, |s| match s.state() {
            tcp::State::Established => Some(true),
            tcp::State::Closed => Some(false),
            _ => None,
        })?;
        if opened {
            Ok(stream)
        } else {
            Err(NetError::Closed)
        }
    }
}

/// One TCP connection of the node; closed when dropped.
pub struct TcpStream<'s, 'a> {
    stack: &'s Stack<'a>,
    slot: usize,
}

impl Drop for TcpStream<'_, '_> {
    fn drop(&mut self) {
        let mut inner = self.stack.inner.borrow_mut();
        let socket = inner.socket(self.slot);
        if socket.state() == tcp::State::SynSent {
            socket.abort();
        } else {
            // A FIN after what is still queued; the socket is reused once closed or in TIME-WAIT.
            socket.close();
        }
        inner.in_use[self.slot] = false;
        inner.poll();
    }
}

impl ErrorType for TcpStream<'_, '_> {
    type Error = NetError;
}

impl Read for TcpStream<'_, '_> {
    /// Blocks until bytes arrive (`Ok(0)` once the peer has closed), up to the stack's read
    /// timeout.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = board::now_us() + self.stack.read_timeout_us;
        self.stack.wait(self.slot, deadline, |s| {
            if s.can_recv() {
                s.recv_slice(buf).ok()
            } else if !s.may_recv() {
                Some(0)
            } else {
                None
            }
        })
    }
}

impl ReadReady for TcpStream<'_, '_> {
    fn read_ready(&mut self) -> Result<bool, NetError> {
        let mut inner = self.stack.inner.borrow_mut();
        inner.poll();
        let s = inner.socket(self.slot);
        Ok(s.can_recv() || !s.may_recv())
    }
}

impl<'a> Write for TcpStream<'_, 'a> {
    /// Queues what fits in the socket's buffer, waiting for room if it is full. A connection the
    /// peer has closed (a master that went away) is an error at once, so the publisher
    /// reconnects instead of writing into the void.
    fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Queue without polling when there is room: the parts of a message leave together, in
        // one segment, at `flush`.
        let queue = |s: &mut tcp::Socket<'a>| {
            if s.state() != tcp::State::Established {
                Some(Err(NetError::Closed))
            } else if s.can_send() {
                match s.send_slice(buf) {
                    Ok(0) => None,
                    Ok(n) => Some(Ok(n)),
                    Err(_) => Some(Err(NetError::Closed)),
                }
            } else {
                None
            }
        };
        if let Some(r) = queue(self.stack.inner.borrow_mut().socket(self.slot)) {
            return r;
        }
        let deadline = board::now_us() + 5_000_000;
        self.stack.wait(self.slot, deadline, queue)?
    }

    /// Sends what is queued now; does not wait for the peer's acknowledgement (TCP retransmits,
    /// and waiting would cost a delayed ACK per message).
    fn flush(&mut self) -> Result<(), NetError> {
        let mut inner = self.stack.inner.borrow_mut();
        inner.poll();
        if inner.socket(self.slot).state() == tcp::State::Established {
            Ok(())
        } else {
            Err(NetError::Closed)
        }
    }
}
