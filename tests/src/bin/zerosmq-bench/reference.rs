//! The reference broker: answers the same control protocol as the master, and forwards each topic
//! with libzmq's own `zmq_proxy` (SUB -> PUB) in a thread of its own. This is what the same
//! sockets do out of the box; the master has to be at least as fast.

use std::ffi::c_void;
use std::thread::JoinHandle;

use zerosmq_core::control::{ControlReply, ControlRequest, Encoding, ErrorCode, ErrorReply};
use zerosmq_core::decode_request;

/// High-water mark of the broker's sockets: the master's default.
const HWM: i32 = 10_000;

/// A libzmq context that allows more than 1,023 sockets (two per topic), as the master's.
struct RawContext(*mut c_void);

// SAFETY: a libzmq context is thread safe.
unsafe impl Send for RawContext {}
unsafe impl Sync for RawContext {}

impl RawContext {
    fn new() -> Result<Self, String> {
        // SAFETY: plain FFI on a context we own, checked for null.
        unsafe {
            let raw = zmq_sys::zmq_ctx_new();
            if raw.is_null() {
                return Err("zmq_ctx_new failed".into());
            }
            zmq_sys::zmq_ctx_set(raw, zmq_sys::ZMQ_MAX_SOCKETS as _, 8192);
            Ok(RawContext(raw))
        }
    }

    fn socket(&self, kind: std::ffi::c_int) -> Result<zmq::Socket, String> {
        // SAFETY: live context; the pointer is checked and owned by the returned Socket.
        unsafe {
            let s = zmq_sys::zmq_socket(self.0, kind);
            if s.is_null() {
                return Err(format!(
                    "zmq_socket: {}",
                    zmq::Error::from_raw(zmq_sys::zmq_errno())
                ));
            }
            Ok(zmq::Socket::from_raw(s))
        }
    }
}

/// The broker: a control thread, and a proxy thread per topic.
pub struct Reference {
    ctx: Option<std::sync::Arc<RawContext>>,
    control: Option<JoinHandle<()>>,
    pub control_port: u16,
}

impl Reference {
    pub fn spawn() -> Result<Self, String> {
        let ctx = std::sync::Arc::new(RawContext::new()?);
        let rep = ctx.socket(zmq_sys::ZMQ_REP as _)?;
        rep.set_linger(0).map_err(|e| e.to_string())?;
        rep.bind("tcp://127.0.0.1:*").map_err(|e| e.to_string())?;
        let control_port = port_of(&rep)?;
        let thread_ctx = ctx.clone();
        let control = std::thread::Builder::new()
            .name("reference-control".into())
            .spawn(move || serve(&thread_ctx, rep))
            .map_err(|e| e.to_string())?;
        Ok(Reference {
            ctx: Some(ctx),
            control: Some(control),
            control_port,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.control_port)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            // Shutdown makes every blocking call (recv, zmq_proxy) return ETERM; the threads then
            // close their sockets and the last Arc terminates the context.
            // SAFETY: live context.
            unsafe {
                zmq_sys::zmq_ctx_shutdown(ctx.0);
            }
        }
        if let Some(t) = self.control.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RawContext {
    fn drop(&mut self) {
        // SAFETY: every socket of this context was closed (each thread holds an Arc).
        unsafe {
            zmq_sys::zmq_ctx_term(self.0);
        }
    }
}

fn port_of(s: &zmq::Socket) -> Result<u16, String> {
    let ep = s
        .get_last_endpoint()
        .map_err(|e| e.to_string())?
        .map_err(|_| "endpoint".to_string())?;
    ep.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no port in {ep}"))
}

struct Topic {
    publish_port: u16,
    subscribe_port: u16,
}

fn serve(ctx: &std::sync::Arc<RawContext>, rep: zmq::Socket) {
    let mut topics = std::collections::HashMap::<String, Topic>::new();
    let mut proxies = Vec::new();
    let mut buf = vec![0u8; 1024];
    // Until ETERM: the bench is shutting the broker down.
    while let Ok(request) = rep.recv_bytes(0) {
        let enc = Encoding::of(&request);
        let reply = match decode_request(&request) {
            Ok(ControlRequest::Publish { topic, .. }) => {
                grant(ctx, &mut topics, &mut proxies, topic.as_str(), true)
            }
            Ok(ControlRequest::Subscribe { topic, .. }) => {
                grant(ctx, &mut topics, &mut proxies, topic.as_str(), false)
            }
            Ok(ControlRequest::StopPublish { .. }) | Ok(ControlRequest::StopSubscribe { .. }) => {
                ControlReply::Done
            }
            Ok(_) => ControlReply::Error(ErrorReply {
                code: ErrorCode::UnknownCommand,
                detail: "the reference broker only brokers topics",
            }),
            Err(e) => ControlReply::Error(ErrorReply {
                code: e.code(),
                detail: "bad request",
            }),
        };
        let bytes = match reply.encode(enc, &mut buf) {
            Ok(b) => b.to_vec(),
            Err(_) => b"ERROR internal: encode".to_vec(),
        };
        if rep.send(&bytes[..], 0).is_err() {
            break;
        }
    }
    drop(rep);
    for p in proxies {
        let _ = p.join();
    }
}

/// The topic's port for publishers or subscribers, opening the topic on first use.
fn grant(
    ctx: &std::sync::Arc<RawContext>,
    topics: &mut std::collections::HashMap<String, Topic>,
    proxies: &mut Vec<JoinHandle<()>>,
    topic: &str,
    publish: bool,
) -> ControlReply<'static> {
    if !topics.contains_key(topic) {
        match open(ctx, topic) {
            Ok((t, handle)) => {
                topics.insert(topic.to_owned(), t);
                proxies.push(handle);
            }
            Err(_) => {
                return ControlReply::Error(ErrorReply {
                    code: ErrorCode::Internal,
                    detail: "could not open the topic's sockets",
                })
            }
        }
    }
    let t = &topics[topic];
    ControlReply::Granted {
        port: if publish {
            t.publish_port
        } else {
            t.subscribe_port
        },
    }
}

/// Binds the topic's SUB (publishers connect) and PUB (subscribers connect) and starts
/// `zmq_proxy` between them in a new thread.
fn open(ctx: &std::sync::Arc<RawContext>, topic: &str) -> Result<(Topic, JoinHandle<()>), String> {
    let sub = ctx.socket(zmq_sys::ZMQ_SUB as _)?;
    let publ = ctx.socket(zmq_sys::ZMQ_PUB as _)?;
    let e = |e: zmq::Error| e.to_string();
    sub.set_linger(0).map_err(e)?;
    sub.set_rcvhwm(HWM).map_err(e)?;
    sub.set_subscribe(topic.as_bytes()).map_err(e)?;
    publ.set_linger(0).map_err(e)?;
    publ.set_sndhwm(HWM).map_err(e)?;
    sub.bind("tcp://127.0.0.1:*").map_err(e)?;
    publ.bind("tcp://127.0.0.1:*").map_err(e)?;
    let t = Topic {
        publish_port: port_of(&sub)?,
        subscribe_port: port_of(&publ)?,
    };
    let keep = ctx.clone();
    let handle = std::thread::Builder::new()
        .name("reference-proxy".into())
        .stack_size(256 << 10)
        .spawn(move || {
            let _ = zmq::proxy(&sub, &publ);
            drop((sub, publ));
            drop(keep);
        })
        .map_err(|e| e.to_string())?;
    Ok((t, handle))
}
