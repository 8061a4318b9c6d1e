//! libzmq context and the per-topic socket pair.

use std::ffi::c_void;

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

    /// Binds `socket` on a free port and returns the port.
    pub fn bind(&mut self, socket: &zmq::Socket) -> Result<u16, zmq::Error> {
        let Some((low, high)) = self.range else {
            socket.bind(&format!("tcp://{}:*", self.bind))?;
            return bound_port(socket);
        };
        let span = u32::from(high - low) + 1;
        for _ in 0..span {
            let port = self.cursor;
            self.cursor = if port >= high { low } else { port + 1 };
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
}

/// The two sockets of one topic: publishers connect to `inbound` (SUB), subscribers to
/// `outbound` (XPUB, so the master sees subscriptions and can answer ready probes).
pub struct TopicSockets {
    pub inbound: zmq::Socket,
    pub outbound: zmq::Socket,
    pub publish_port: u16,
    pub subscribe_port: u16,
}

impl TopicSockets {
    pub fn open(
        ctx: &MasterContext,
        ports: &mut PortPlan,
        topic: &Topic,
        tuning: SocketTuning,
    ) -> Result<Self, zmq::Error> {
        let inbound = ctx.socket(zmq::SUB)?;
        inbound.set_linger(0)?;
        inbound.set_rcvhwm(tuning.hwm)?;
        // As the original: the master's SUB subscribes to the topic's bytes, which is also the
        // subscription a waiting publisher sees arrive.
        inbound.set_subscribe(topic.as_bytes())?;
        let outbound = ctx.socket(zmq::XPUB)?;
        outbound.set_linger(0)?;
        // Drop policy: a subscriber whose queue holds `hwm` messages misses new ones (libzmq's
        // PUB behaviour); it never stalls the forwarder or the other subscribers.
        outbound.set_sndhwm(tuning.hwm)?;
        let publish_port = ports.bind(&inbound)?;
        let subscribe_port = ports.bind(&outbound)?;
        Ok(TopicSockets {
            inbound,
            outbound,
            publish_port,
            subscribe_port,
        })
    }
}
