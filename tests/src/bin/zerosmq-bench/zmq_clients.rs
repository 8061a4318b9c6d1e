//! Plain libzmq peers, as an original node (or any ZeroMQ program) would be: one PUB socket that
//! connects to every topic's port, one SUB socket per subscriber that connects to every topic's
//! port and subscribes to everything (each port carries one topic).

use std::time::Duration;

use zerosmq_core::control::ReplyKind;
use zerosmq_core::{decode_reply, ControlReply};

use crate::harness::{head, Publish, Receive};

/// High-water mark of the bench's own libzmq clients: none, so only the broker under test
/// (and the credit window) decides what is queued.
pub const HWM: i32 = 0;

pub struct ZmqPub {
    /// One socket connected to every topic's port, or (the floor) one bound socket per topic.
    sockets: Vec<zmq::Socket>,
    /// `TOPIC SP` of each topic.
    prefixes: Vec<Vec<u8>>,
    frame: Vec<u8>,
    _ctx: zmq::Context,
}

impl Publish for ZmqPub {
    fn send(&mut self, topic: usize, payload: &[u8]) -> Result<(), String> {
        self.frame.clear();
        self.frame.extend_from_slice(&self.prefixes[topic]);
        self.frame.extend_from_slice(payload);
        self.sockets[topic % self.sockets.len()]
            .send(&self.frame[..], 0)
            .map_err(|e| format!("send: {e}"))
    }
}

pub struct ZmqSub {
    socket: zmq::Socket,
    msg: zmq::Message,
    timeout_ms: i32,
    _ctx: zmq::Context,
}

impl Receive for ZmqSub {
    fn recv(&mut self, timeout: Duration) -> Result<Option<[u8; 8]>, String> {
        let ms = timeout.as_millis() as i32;
        if ms != self.timeout_ms {
            self.socket.set_rcvtimeo(ms).map_err(|e| e.to_string())?;
            self.timeout_ms = ms;
        }
        match self.socket.recv(&mut self.msg, 0) {
            Ok(()) => {
                let frame: &[u8] = &self.msg;
                let at = frame.iter().position(|&b| b == b' ').unwrap_or(frame.len());
                Ok(Some(head(frame.get(at + 1..).unwrap_or_default())))
            }
            Err(zmq::Error::EAGAIN) => Ok(None),
            Err(e) => Err(format!("recv: {e}")),
        }
    }
}

fn zerr(what: &str) -> impl Fn(zmq::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

pub fn prefixes(topics: &[String]) -> Vec<Vec<u8>> {
    topics
        .iter()
        .map(|t| {
            let mut p = t.as_bytes().to_vec();
            p.push(b' ');
            p
        })
        .collect()
}

/// A PUB socket connected to each endpoint (one per topic, as a broker hands them out).
pub fn publisher(topics: &[String], endpoints: &[String]) -> Result<ZmqPub, String> {
    let ctx = zmq::Context::new();
    let socket = pub_socket(&ctx)?;
    for e in endpoints {
        socket.connect(e).map_err(zerr("connect"))?;
    }
    Ok(ZmqPub {
        sockets: vec![socket],
        prefixes: prefixes(topics),
        frame: Vec::with_capacity(1024),
        _ctx: ctx,
    })
}

/// The floor: a PUB socket per topic, bound at `endpoints[i]`, no broker. Like the brokered
/// systems, every topic has a connection of its own.
pub fn direct_publisher(topics: &[String], endpoints: &[String]) -> Result<ZmqPub, String> {
    let ctx = zmq::Context::new();
    let mut sockets = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let socket = pub_socket(&ctx)?;
        socket.bind(e).map_err(zerr("bind"))?;
        sockets.push(socket);
    }
    Ok(ZmqPub {
        sockets,
        prefixes: prefixes(topics),
        frame: Vec::with_capacity(1024),
        _ctx: ctx,
    })
}

fn pub_socket(ctx: &zmq::Context) -> Result<zmq::Socket, String> {
    let socket = ctx.socket(zmq::PUB).map_err(zerr("pub socket"))?;
    socket.set_sndhwm(HWM).map_err(zerr("sndhwm"))?;
    socket.set_linger(0).map_err(zerr("linger"))?;
    Ok(socket)
}

/// `n` free loopback endpoints for the floor's PUB sockets to bind.
pub fn free_endpoints(n: usize) -> Result<Vec<String>, String> {
    // Hold every listener until all ports are chosen, so no port is handed out twice.
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| format!("tcp://127.0.0.1:{}", a.port()))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// A SUB socket connected to each endpoint, subscribed to everything.
pub fn subscriber(endpoints: &[String]) -> Result<ZmqSub, String> {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::SUB).map_err(zerr("sub socket"))?;
    socket.set_rcvhwm(HWM).map_err(zerr("rcvhwm"))?;
    socket.set_linger(0).map_err(zerr("linger"))?;
    socket.set_subscribe(b"").map_err(zerr("subscribe"))?;
    for e in endpoints {
        socket.connect(e).map_err(zerr("connect"))?;
    }
    Ok(ZmqSub {
        socket,
        msg: zmq::Message::new(),
        timeout_ms: -2,
        _ctx: ctx,
    })
}

/// Asks a master (ours or the reference) for a topic's port with the original's text protocol,
/// as an original node does.
pub struct Control {
    req: zmq::Socket,
    _ctx: zmq::Context,
}

impl Control {
    pub fn connect(endpoint: &str) -> Result<Self, String> {
        let ctx = zmq::Context::new();
        let req = ctx.socket(zmq::REQ).map_err(zerr("req socket"))?;
        req.set_linger(0).map_err(zerr("linger"))?;
        req.set_rcvtimeo(10_000).map_err(zerr("rcvtimeo"))?;
        req.connect(endpoint).map_err(zerr("connect control"))?;
        Ok(Control { req, _ctx: ctx })
    }

    /// `REQUEST_PUB` / `REQUEST_SUB` -> port.
    pub fn grant(&self, publish: bool, node: &str, topic: &str) -> Result<u16, String> {
        let word = if publish {
            "REQUEST_PUB"
        } else {
            "REQUEST_SUB"
        };
        self.req
            .send(format!("{word} {node} {topic}").as_bytes(), 0)
            .map_err(zerr("control send"))?;
        let reply = self.req.recv_bytes(0).map_err(zerr("control reply"))?;
        match decode_reply(ReplyKind::Granted, &reply) {
            Ok(ControlReply::Granted { port }) => Ok(port),
            other => Err(format!("control: {word} {topic}: {other:?}")),
        }
    }

    /// Endpoints for publishing (or subscribing) every topic.
    pub fn endpoints(
        &self,
        publish: bool,
        node: &str,
        topics: &[String],
    ) -> Result<Vec<String>, String> {
        topics
            .iter()
            .map(|t| {
                self.grant(publish, node, t)
                    .map(|p| format!("tcp://127.0.0.1:{p}"))
            })
            .collect()
    }
}
