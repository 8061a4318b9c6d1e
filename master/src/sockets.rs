//! libzmq context and the per-topic socket pair.

use std::ffi::c_void;
use std::os::fd::RawFd;

use zerosmq_core::Topic;

use crate::MasterError;

/// A libzmq context made through `zmq-sys`, because the `zmq` crate cannot set
/// `ZMQ_MAX_SOCKETS` (default 1,023: about 500 topics) and it must be set before the first socket.
///
/// Sockets made here do not keep the context alive: the owner must drop them first (the broker
/// declares its sockets before the context, so they drop first).
pub struct MasterContext {
    raw: *mut c_void,
}

// SAFETY: a libzmq context is thread safe; only sockets are not.
unsafe impl Send for MasterContext {}

impl MasterContext {
    pub fn new(max_sockets: i32, io_threads: i32) -> Result<Self, MasterError> {
        // SAFETY: plain FFI calls on a context we own; checked for null / -1.
        unsafe {
            let raw = zmq_sys::zmq_ctx_new();
            if raw.is_null() {
                return Err(MasterError::zmq(
                    "create context",
                    zmq::Error::from_raw(zmq_sys::zmq_errno()),
                ));
            }
            let ctx = MasterContext { raw };
            for (opt, value) in [
                (zmq_sys::ZMQ_MAX_SOCKETS, max_sockets),
                (zmq_sys::ZMQ_IO_THREADS, io_threads),
            ] {
                if zmq_sys::zmq_ctx_set(raw, opt as _, value) != 0 {
                    return Err(MasterError::zmq(
                        "configure context",
                        zmq::Error::from_raw(zmq_sys::zmq_errno()),
                    ));
                }
            }
            Ok(ctx)
        }
    }

    pub fn socket(&self, kind: zmq::SocketType) -> Result<zmq::Socket, zmq::Error> {
        // SAFETY: `raw` is a live context; the returned pointer is checked and handed to
        // `Socket::from_raw`, which owns and closes it.
        unsafe {
            let sock = zmq_sys::zmq_socket(self.raw, raw_socket_type(kind));
            if sock.is_null() {
                return Err(zmq::Error::from_raw(zmq_sys::zmq_errno()));
            }
            Ok(zmq::Socket::from_raw(sock))
        }
    }
}

/// libzmq's socket type numbers (zmq.h); the `zmq` crate keeps its mapping private.
fn raw_socket_type(kind: zmq::SocketType) -> std::ffi::c_int {
    match kind {
        zmq::PAIR => 0,
        zmq::PUB => 1,
        zmq::SUB => 2,
        zmq::REQ => 3,
        zmq::REP => 4,
        zmq::DEALER => 5,
        zmq::ROUTER => 6,
        zmq::PULL => 7,
        zmq::PUSH => 8,
        zmq::XPUB => 9,
        zmq::XSUB => 10,
        zmq::STREAM => 11,
    }
}

impl Drop for MasterContext {
    fn drop(&mut self) {
        // SAFETY: every socket of this context is closed before (field order in the broker).
        unsafe {
            while zmq_sys::zmq_ctx_term(self.raw) != 0
                && zmq_sys::zmq_errno() == zmq_sys::errno::EINTR
            {}
        }
    }
}

/// Where per-topic sockets bind.
#[derive(Debug, Clone)]
pub struct PortPlan {
    pub bind: String,
    /// Inclusive range; `None` lets the OS choose a free ephemeral port.
    pub range: Option<(u16, u16)>,
    /// Next port of the range to try, so ports are not reused right away.
    cursor: u16,
}

impl PortPlan {
    pub fn new(bind: &str, range: Option<(u16, u16)>) -> Self {
        PortPlan {
            bind: bind.to_owned(),
            cursor: range.map_or(0, |r| r.0),
            range,
        }
    }

    /// The next port of the range to try (the range's low end without a range).
    pub fn next_port(&mut self) -> u16 {
        let port = self.cursor;
        if let Some((low, high)) = self.range {
            self.cursor = if port >= high { low } else { port + 1 };
        }
        port
    }

    /// Binds `socket` on `preferred` when it is free (and in the range, if any), else on any free
    /// port; returns the port.
    pub fn bind_preferred(
        &mut self,
        socket: &zmq::Socket,
        preferred: Option<u16>,
    ) -> Result<u16, zmq::Error> {
        if let Some(port) = preferred.filter(|&p| {
            self.range
                .is_none_or(|(low, high)| (low..=high).contains(&p))
        }) {
            if socket.bind(&format!("tcp://{}:{port}", self.bind)).is_ok() {
                return Ok(port);
            }
        }
        self.bind(socket)
    }

    /// Binds `socket` on a free port and returns the port.
    pub fn bind(&mut self, socket: &zmq::Socket) -> Result<u16, zmq::Error> {
        let Some((low, high)) = self.range else {
            socket.bind(&format!("tcp://{}:*", self.bind))?;
            return bound_port(socket);
        };
        let span = u32::from(high - low) + 1;
        for _ in 0..span {
            let port = self.next_port();
            match socket.bind(&format!("tcp://{}:{port}", self.bind)) {
                Ok(()) => return Ok(port),
                Err(zmq::Error::EADDRINUSE) | Err(zmq::Error::EACCES) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(zmq::Error::EADDRINUSE)
    }
}

/// The port a socket bound to, from its last endpoint (`tcp://0.0.0.0:40123`).
pub fn bound_port(socket: &zmq::Socket) -> Result<u16, zmq::Error> {
    let endpoint = socket
        .get_last_endpoint()?
        .map_err(|_| zmq::Error::EINVAL)?;
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or(zmq::Error::EINVAL)
}

/// Socket options shared by the per-topic sockets.
#[derive(Debug, Clone, Copy)]
pub struct SocketTuning {
    /// High-water mark in messages, per connection.
    pub hwm: i32,
    /// Largest message a peer may send; a peer that sends more is disconnected by libzmq.
    pub max_message_size: i64,
    /// ZMTP PING interval in ms; a connection silent for three intervals after a PING is closed.
    pub heartbeat_ms: i32,
}

impl SocketTuning {
    /// Limits every master socket shares: message size, and timers that drop peers which never
    /// finish the handshake or go silent (half-open TCP), so they cannot hold resources.
    pub fn apply(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        socket.set_maxmsgsize(self.max_message_size)?;
        socket.set_handshake_ivl(HANDSHAKE_MS)?;
        socket.set_heartbeat_ivl(self.heartbeat_ms)?;
        socket.set_heartbeat_timeout(self.heartbeat_ms.saturating_mul(3))?;
        // Kernel keepalive too, for peers that vanish without a FIN (power loss, cable).
        socket.set_tcp_keepalive(1)?;
        socket.set_tcp_keepalive_idle(30)?;
        Ok(())
    }
}

/// A peer must finish the ZMTP handshake within this time (libzmq's default is 30 s).
pub const HANDSHAKE_MS: i32 = 5_000;

/// The two sockets of one topic: publishers connect to `inbound` (SUB), subscribers to
/// `outbound` (XPUB, so the master sees subscriptions and can answer ready probes).
pub struct TopicSockets {
    pub inbound: zmq::Socket,
    pub outbound: zmq::Socket,
    pub publish_port: u16,
    pub subscribe_port: u16,
    /// The sockets' `ZMQ_FD`s, which the broker's poller watches.
    pub inbound_fd: RawFd,
    pub outbound_fd: RawFd,
    /// The poller watches both descriptors.
    pub watched: bool,
    /// The broker's hot list holds this topic.
    pub hot: bool,
    /// Work may be pending on the inbound (messages) or outbound (subscriptions) socket.
    pub pending_in: bool,
    pub pending_out: bool,
}

impl TopicSockets {
    /// Opens both sockets; `preferred` ports (from the state file of a previous run) are tried
    /// first so that peers' automatic reconnects find the topic again.
    pub fn open(
        ctx: &MasterContext,
        ports: &mut PortPlan,
        topic: &Topic,
        tuning: SocketTuning,
        security: &crate::auth::Security,
        preferred: Option<(u16, u16)>,
    ) -> Result<Self, zmq::Error> {
        use crate::auth::{topic_domain, Access};
        let inbound = ctx.socket(zmq::SUB)?;
        tuning.apply(&inbound)?;
        security.protect(&inbound, &topic_domain(topic, Access::Write))?;
        inbound.set_linger(0)?;
        inbound.set_rcvhwm(tuning.hwm)?;
        // As the original: the master's SUB subscribes to the topic's bytes, which is also the
        // subscription a waiting publisher sees arrive.
        inbound.set_subscribe(topic.as_bytes())?;
        let mut outbound = ctx.socket(zmq::XPUB)?;
        tuning.apply(&outbound)?;
        // Sends that would drop for a full subscriber fail instead, so that the forwarder can
        // count the drop and then deliver to the others (see `broker::forward`).
        set_xpub_nodrop(&mut outbound, true)?;
        security.protect(&outbound, &topic_domain(topic, Access::Read))?;
        outbound.set_linger(0)?;
        // Drop policy: a subscriber whose queue holds `hwm` messages misses new ones (libzmq's
        // PUB behaviour); it never stalls the forwarder or the other subscribers.
        outbound.set_sndhwm(tuning.hwm)?;
        let publish_port = ports.bind_preferred(&inbound, preferred.map(|p| p.0))?;
        let subscribe_port = ports.bind_preferred(&outbound, preferred.map(|p| p.1))?;
        Ok(TopicSockets {
            inbound_fd: inbound.get_fd()?,
            outbound_fd: outbound.get_fd()?,
            inbound,
            outbound,
            publish_port,
            subscribe_port,
            watched: false,
            hot: false,
            pending_in: false,
            pending_out: false,
        })
    }

    /// True when `fd` is one of this topic's descriptors.
    pub fn watches(&self, fd: RawFd) -> bool {
        fd == self.inbound_fd || fd == self.outbound_fd
    }
}

/// Sends `msg`, leaving it intact when the send fails (the `zmq` crate's `send` consumes the
/// message, so a failed send would lose it).
pub fn send_keep(
    socket: &mut zmq::Socket,
    msg: &mut zmq::Message,
    flags: i32,
) -> Result<(), zmq::Error> {
    // `zmq::Message` is a struct of one field, a `zmq_msg_t`; equal sizes pin that field at offset
    // 0, which makes the pointer cast below sound.
    const _: () =
        assert!(std::mem::size_of::<zmq::Message>() == std::mem::size_of::<zmq_sys::zmq_msg_t>());
    // SAFETY: see above; `socket` is a live socket and `msg` an initialised message.
    let rc = unsafe {
        zmq_sys::zmq_msg_send(
            (msg as *mut zmq::Message).cast::<zmq_sys::zmq_msg_t>(),
            socket.as_mut_ptr(),
            flags,
        )
    };
    if rc < 0 {
        // SAFETY: plain FFI call.
        return Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }));
    }
    Ok(())
}

/// Sets `ZMQ_XPUB_NODROP` (the `zmq` crate has no setter): with it, a send that would drop
/// for a subscriber at its high-water mark fails with EAGAIN instead, which is how the master
/// counts drops.
pub fn set_xpub_nodrop(socket: &mut zmq::Socket, on: bool) -> Result<(), zmq::Error> {
    let value: std::ffi::c_int = on.into();
    // SAFETY: plain FFI call with a pointer to a local int of the size given.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as _,
            (&value as *const std::ffi::c_int).cast(),
            std::mem::size_of::<std::ffi::c_int>(),
        )
    };
    if rc < 0 {
        // SAFETY: plain FFI call.
        return Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }));
    }
    Ok(())
}
