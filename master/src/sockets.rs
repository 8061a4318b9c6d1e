//! The libzmq context and the options of the control socket (the one libzmq socket left: the
//! topics' ports are the engine's own, see `engine/`).

use crate::MasterError;

/// The libzmq context of the control socket (and of the ZAP handler, with PLAIN). With the
/// topics on the engine's own connections, libzmq's default socket limit is plenty.
pub struct MasterContext(zmq::Context);

impl MasterContext {
    pub fn new(io_threads: i32) -> Result<Self, MasterError> {
        let ctx = zmq::Context::new();
        ctx.set_io_threads(io_threads)
            .map_err(|e| MasterError::zmq("configure context", e))?;
        Ok(MasterContext(ctx))
    }

    pub fn socket(&self, kind: zmq::SocketType) -> Result<zmq::Socket, zmq::Error> {
        self.0.socket(kind)
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

/// The control socket's limits: message size, and timers that drop peers which never finish
/// the handshake or go silent (half-open TCP), so they cannot hold resources; the same as the
/// engine's on the topics' ports (`engine::HANDSHAKE`, `engine::KEEPALIVE_IDLE`).
pub fn tune_control(
    socket: &zmq::Socket,
    max_message_size: i64,
    heartbeat: std::time::Duration,
) -> Result<(), zmq::Error> {
    let ms = |d: std::time::Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1);
    socket.set_maxmsgsize(max_message_size)?;
    socket.set_handshake_ivl(ms(crate::engine::HANDSHAKE))?;
    socket.set_heartbeat_ivl(ms(heartbeat))?;
    socket.set_heartbeat_timeout(ms(heartbeat).saturating_mul(3))?;
    // Kernel keepalive too, for peers that vanish without a FIN (power loss, cable).
    socket.set_tcp_keepalive(1)?;
    socket.set_tcp_keepalive_idle(
        i32::try_from(crate::engine::KEEPALIVE_IDLE.as_secs()).unwrap_or(i32::MAX),
    )?;
    Ok(())
}
