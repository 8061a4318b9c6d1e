//! An in-memory "TCP stack" whose far ends behave like the master's sockets: the control REP
//! answers with a recorded libzmq reply, the publisher's peer is a recorded libzmq SUB, the
//! subscriber's peer a recorded libzmq XPUB greeting that echoes ready probes, and whatever the
//! publisher sends is forwarded to the subscriber, as the master forwards a topic. The control
//! reply is in the binary encoding (the firmware has no text protocol). With feature `plain`,
//! every far end is a PLAIN server: its greeting says PLAIN and a WELCOME precedes its READY.
//! With feature `curve-recorded`, every far end plays what libzmq's CURVE servers sent to this
//! node (same keys, same seed) in tests/tests/embedded_curve_record.rs, and the node's writes
//! are taken and dropped: the recorded boxes open only if the node's ephemeral keys on the
//! target are the ones it had on the host.

use core::cell::RefCell;
use core::net::SocketAddr;

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write};
use zerosmq_core::zmtp::{Command, FrameHeader, FrameKind};
use zerosmq_core::READY_PROBE_PREFIX;
use zerosmq_embedded::Connect;

pub const REP: &[u8] = include_bytes!("../../../core/src/zmtp/testdata/libzmq-rep.bin");
pub const PUB: &[u8] = include_bytes!("../../../core/src/zmtp/testdata/libzmq-pub.bin");
pub const XPUB: &[u8] = include_bytes!("../../../core/src/zmtp/testdata/libzmq-xpub.bin");
pub const SUB_V31: &[u8] = include_bytes!("../../../core/src/zmtp/testdata/libzmq-sub-v31.bin");
pub const SUB_V30: &[u8] = include_bytes!("../../../core/src/zmtp/testdata/libzmq-sub-v30.bin");

#[cfg(all(
    feature = "curve-recorded",
    any(feature = "curve-loopback", feature = "plain")
))]
compile_error!(
    "feature curve-recorded replays libzmq's CURVE servers: not with curve-loopback or plain"
);

/// What libzmq's CURVE servers sent on each of the node's connections, in the order it opens
/// them: the publish grant's REP, the SUB, the subscribe grant's REP, the XPUB.
#[cfg(feature = "curve-recorded")]
const CURVE_RECORDED: [&[u8]; LINKS] = [
    include_bytes!("../../../core/src/zmtp/testdata/libzmq-curve-embedded-rep-pub.bin"),
    include_bytes!("../../../core/src/zmtp/testdata/libzmq-curve-embedded-sub.bin"),
    include_bytes!("../../../core/src/zmtp/testdata/libzmq-curve-embedded-rep-sub.bin"),
    include_bytes!("../../../core/src/zmtp/testdata/libzmq-curve-embedded-xpub.bin"),
];

/// Greeting and READY that our PUB or SUB writes before anything else.
#[cfg(not(feature = "plain"))]
const HANDSHAKE_LEN: usize = 64 + 27;
/// Greeting, HELLO (`mcu` / `s3cret`) and INITIATE that our PUB or SUB writes first with PLAIN.
#[cfg(feature = "plain")]
const HANDSHAKE_LEN: usize = 64 + 19 + 30;

/// The PLAIN credentials of the `plain` build.
pub const PLAIN_USER: &str = "mcu";
/// See [`PLAIN_USER`].
pub const PLAIN_PASSWORD: &str = "s3cret";

/// The role buffers: CURVE writes its HELLO and INITIATE from them.
#[cfg(not(feature = "curve"))]
const BUF_LEN: usize = 128;
#[cfg(feature = "curve")]
const BUF_LEN: usize = zerosmq_embedded::CURVE_MIN_BUF_LEN;

/// The `curve` build's fixed keys (not secret: test key pairs).
#[cfg(feature = "curve")]
pub const CURVE_CLIENT_SECRET: [u8; 32] = [0x42; 32];
/// See [`CURVE_CLIENT_SECRET`].
#[cfg(feature = "curve")]
pub const CURVE_SERVER_SECRET: [u8; 32] = [0x24; 32];

/// The control reply: libzmq REP's greeting and READY (recorded), the delimiter, and the binary
/// `Granted { port: 6000 }` (`ff 01 00 f0 2e`).
const REP_BINARY: [u8; 91 + 2 + 2 + 5] = {
    let mut r = [0u8; 100];
    let mut i = 0;
    while i < 91 {
        r[i] = REP[i];
        i += 1;
    }
    let tail = [0x01, 0x00, 0x00, 0x05, 0xff, 0x01, 0x00, 0xf0, 0x2e];
    let mut j = 0;
    while j < tail.len() {
        r[91 + j] = tail[j];
        j += 1;
    }
    r
};
#[cfg(not(feature = "curve-loopback"))]
const QUEUE: usize = 384;
/// Greeting, WELCOME, READY and a box or two.
#[cfg(feature = "curve-loopback")]
const QUEUE: usize = 512;
const LINKS: usize = 4;

/// Bytes waiting to be read, or written bytes waiting to be parsed.
struct Queue {
    buf: [u8; QUEUE],
    len: usize,
}

impl Queue {
    const fn new() -> Self {
        Queue {
            buf: [0; QUEUE],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> bool {
        let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        self.len += bytes.len();
        true
    }

    fn pop(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        out[..n].copy_from_slice(&self.buf[..n]);
        self.consume(n);
        n
    }

    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Control,
    Publisher,
    Subscriber,
}

struct State {
    opened: usize,
    roles: [Role; LINKS],
    input: [Queue; LINKS],
    /// Bytes written after the handshake, not yet parsed.
    output: [Queue; LINKS],
    written: [usize; LINKS],
    /// Chunk size reads are cut to (1 exercises every fragmentation).
    chunk: usize,
    /// With `curve-loopback`: each far end is a CURVE server.
    #[cfg(feature = "curve-loopback")]
    far: [Option<far::Far>; LINKS],
    /// With `curve-recorded`: what each far end has still to send (read straight from the
    /// recording: the XPUB's is longer than a queue).
    #[cfg(feature = "curve-recorded")]
    recorded: [&'static [u8]; LINKS],
}

/// The link; connections are handed out in the order control, publisher, control, subscriber.
pub struct Loopback {
    state: RefCell<State>,
}

impl Loopback {
    pub const fn new(chunk: usize) -> Self {
        Loopback {
            state: RefCell::new(State {
                opened: 0,
                roles: [
                    Role::Control,
                    Role::Publisher,
                    Role::Control,
                    Role::Subscriber,
                ],
                input: [Queue::new(), Queue::new(), Queue::new(), Queue::new()],
                output: [Queue::new(), Queue::new(), Queue::new(), Queue::new()],
                written: [0; LINKS],
                chunk,
                #[cfg(feature = "curve-loopback")]
                far: [None, None, None, None],
                #[cfg(feature = "curve-recorded")]
                recorded: [&[]; LINKS],
            }),
        }
    }
}

#[derive(Debug)]
pub struct LinkError;

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("loopback link error")
    }
}

impl core::error::Error for LinkError {}

impl embedded_io::Error for LinkError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

pub struct LinkConn<'a> {
    link: &'a Loopback,
    index: usize,
}

impl ErrorType for LinkConn<'_> {
    type Error = LinkError;
}

impl Read for LinkConn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, LinkError> {
        let mut s = self.link.state.borrow_mut();
        let n = buf.len().min(s.chunk);
        #[cfg(feature = "curve-recorded")]
        {
            let rest = s.recorded[self.index];
            let n = n.min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            s.recorded[self.index] = &rest[n..];
            return Ok(n);
        }
        // 0 when nothing is queued: the peer closed, as a real stack would report.
        #[allow(unreachable_code)]
        Ok(s.input[self.index].pop(&mut buf[..n]))
    }
}

impl ReadReady for LinkConn<'_> {
    fn read_ready(&mut self) -> Result<bool, LinkError> {
        #[cfg(feature = "curve-recorded")]
        return Ok(!self.link.state.borrow().recorded[self.index].is_empty());
        #[allow(unreachable_code)]
        Ok(self.link.state.borrow().input[self.index].len > 0)
    }
}

impl Write for LinkConn<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, LinkError> {
        // The recorded far ends heard the node on the host; here its bytes have no reader.
        #[cfg(feature = "curve-recorded")]
        return Ok(buf.len());
        #[allow(unreachable_code)]
        let mut s = self.link.state.borrow_mut();
        let i = self.index;
        #[cfg(feature = "curve-loopback")]
        {
            let mut far = s.far[i].take().ok_or(LinkError)?;
            let fed = far::feed(&mut far, &mut s, i, buf);
            s.far[i] = Some(far);
            return fed.map(|()| buf.len());
        }
        #[allow(unreachable_code)]
        let skip = HANDSHAKE_LEN.saturating_sub(s.written[i]).min(buf.len());
        s.written[i] += buf.len();
        let after = &buf[skip..];
        match s.roles[i] {
            Role::Control => {}
            // The master forwards the publisher's frames to the subscriber unchanged.
            Role::Publisher => {
                if !s.input[3].push(after) {
                    return Err(LinkError);
                }
            }
            Role::Subscriber => {
                if !s.output[i].push(after) {
                    return Err(LinkError);
                }
                echo_probes(&mut s, i);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), LinkError> {
        Ok(())
    }
}

/// Parses the subscriber's commands; answers a probe subscription with the probe's bytes.
fn echo_probes(s: &mut State, i: usize) {
    loop {
        let out = &s.output[i];
        let Ok((h, at)) = FrameHeader::parse(&out.buf[..out.len]) else {
            return;
        };
        let end = at + h.len as usize;
        if end > out.len {
            return;
        }
        let mut probe = [0u8; 64];
        let mut probe_len = 0;
        if h.kind == FrameKind::Command {
            if let Ok(Command::Subscribe(p)) = Command::parse(&out.buf[at..end]) {
                if p.starts_with(READY_PROBE_PREFIX) && p.len() <= probe.len() {
                    probe[..p.len()].copy_from_slice(p);
                    probe_len = p.len();
                }
            }
        }
        s.output[i].consume(end);
        if probe_len > 0 {
            let (header, n) = FrameHeader::message(probe_len, false).to_bytes();
            s.input[i].push(&header[..n]);
            s.input[i].push(&probe[..probe_len]);
        }
    }
}

impl Connect for Loopback {
    type Error = LinkError;
    type Connection<'a> = LinkConn<'a>;

    fn connect(&self, _remote: SocketAddr) -> Result<LinkConn<'_>, LinkError> {
        let mut s = self.state.borrow_mut();
        let index = s.opened;
        if index >= LINKS {
            return Err(LinkError);
        }
        s.opened += 1;
        #[cfg(feature = "curve-loopback")]
        {
            use zerosmq_core::zmtp::SocketType;
            let socket_type = match s.roles[index] {
                Role::Control => SocketType::Rep,
                Role::Publisher => SocketType::Sub,
                Role::Subscriber => SocketType::XPub,
            };
            let mut far = far::Far::new(socket_type, index as u64);
            far::transmit(&mut far, &mut s.input[index])?;
            s.far[index] = Some(far);
            return Ok(LinkConn { link: self, index });
        }
        #[cfg(feature = "curve-recorded")]
        {
            s.recorded[index] = CURVE_RECORDED[index];
            return Ok(LinkConn { link: self, index });
        }
        #[allow(unreachable_code)]
        let script = match s.roles[index] {
            Role::Control => &REP_BINARY[..],
            Role::Publisher => SUB_V31,
            // Greeting and READY only; probes and messages arrive as the node causes them.
            Role::Subscriber => &XPUB[..64 + 28],
        };
        #[cfg(feature = "plain")]
        let script = {
            let mut g = zerosmq_core::zmtp::Greeting::ours_with(b"PLAIN");
            g.as_server = true;
            s.input[index].push(&g.to_bytes());
            s.input[index].push(b"\x04\x08\x07WELCOME");
            &script[64..]
        };
        s.input[index].push(script);
        Ok(LinkConn { link: self, index })
    }
}

/// A node with a publisher and a subscriber on topic `imu`, through the loopback master:
/// grants, handshakes, the master's subscription, the ready probe, and one message each way
/// round. Returns the number of failed checks.
pub fn node_round_trip(link: &Loopback) -> u32 {
    let master = SocketAddr::new(core::net::Ipv4Addr::new(192, 168, 69, 100).into(), 5555);
    let Ok(node) = zerosmq_embedded::Node::new(link, master, "mcu") else {
        return 1;
    };
    #[cfg(feature = "plain")]
    let Ok(node) = node.with_plain(PLAIN_USER, PLAIN_PASSWORD) else {
        return 1;
    };
    #[cfg(feature = "curve")]
    let ours = zerosmq_core::zmtp::curve::CurveKeyPair::from_secret(CURVE_CLIENT_SECRET);
    #[cfg(feature = "curve")]
    let server = zerosmq_core::zmtp::curve::CurveKeyPair::from_secret(CURVE_SERVER_SECRET);
    #[cfg(feature = "curve")]
    let Ok(node) = node.with_curve(
        *server.public(),
        *ours.public(),
        *ours.secret(),
        &mut zerosmq_core::zmtp::curve::ReplayRng(1),
    ) else {
        return 1;
    };
    let mut pub_buf = [0u8; BUF_LEN];
    let mut sub_buf = [0u8; BUF_LEN];
    let Ok(mut publisher) = node.advertise("imu", &mut pub_buf) else {
        return 1;
    };
    let Ok(mut subscriber) = node.subscribe("imu", &mut sub_buf) else {
        return 1;
    };
    let mut failures = 0;
    failures += u32::from(subscriber.wait_ready().is_err());
    failures += u32::from(publisher.wait_ready().is_err());
    failures += u32::from(publisher.publish(b"hello from the MCU").is_err());
    failures += u32::from(subscriber.recv().ok() != Some(&b"hello from the MCU"[..]));
    failures += u32::from(publisher.publish(&[0u8, 1, 2, 255]).is_err());
    failures += u32::from(subscriber.recv().ok() != Some(&[0u8, 1, 2, 255][..]));
    failures
}

/// The far ends as core's CURVE servers (the master's side of each connection): they open
/// the node's boxes, answer the grant requests, subscribe the publisher, echo the subscriber's
/// probes and forward the publisher's messages to the subscriber, boxed again for it.
#[cfg(feature = "curve-loopback")]
mod far {
    use super::{LinkError, Queue, Role, State, REP_BINARY};
    use zerosmq_core::zmtp::curve::{CurveKeyPair, ReplayRng};
    use zerosmq_core::zmtp::{Connection, Event, SocketType};
    use zerosmq_core::READY_PROBE_PREFIX;

    pub struct Far {
        conn: Connection<'static>,
        rx: [u8; 320],
    }

    impl Far {
        pub fn new(socket_type: SocketType, seed: u64) -> Far {
            let keys = CurveKeyPair::from_secret(super::CURVE_SERVER_SECRET);
            Far {
                conn: Connection::curve_server(socket_type, keys, &mut ReplayRng(seed)),
                rx: [0; 320],
            }
        }
    }

    /// What the far end has to send (greeting, WELCOME, READY), into the node's input.
    pub fn transmit(far: &mut Far, input: &mut Queue) -> Result<(), LinkError> {
        let mut tx = [0u8; 320];
        while let Some(n) = far.conn.poll_transmit(&mut tx).map_err(|_| LinkError)? {
            if !input.push(&tx[..n]) {
                return Err(LinkError);
            }
        }
        Ok(())
    }

    fn boxed(
        conn: &mut Connection<'_>,
        input: &mut Queue,
        parts: &[&[u8]],
        more: bool,
    ) -> Result<(), LinkError> {
        let mut tx = [0u8; 128];
        let n = conn
            .write_message(parts, more, &mut tx)
            .map_err(|_| LinkError)?;
        if input.push(&tx[..n]) {
            Ok(())
        } else {
            Err(LinkError)
        }
    }

    /// The node wrote `bytes` to link `i`, whose far end is `far` (taken out of `s`).
    pub fn feed(far: &mut Far, s: &mut State, i: usize, mut bytes: &[u8]) -> Result<(), LinkError> {
        while !bytes.is_empty() {
            let dst = far.conn.read_buffer(&mut far.rx);
            let n = dst.len().min(bytes.len());
            if n == 0 {
                return Err(LinkError);
            }
            dst[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            let mut ev = far
                .conn
                .commit_in_place(n, &mut far.rx)
                .map_err(|_| LinkError)?;
            if far.conn.awaits_admission() {
                ev = Some(far.conn.admit(true).map_err(|_| LinkError)?);
            }
            transmit(far, &mut s.input[i])?;
            let Some(ev) = ev else { continue };
            match (s.roles[i], ev) {
                // The grant: the delimiter, then the binary `Granted { port: 6000 }`.
                (Role::Control, Event::Message { more: false, .. }) => {
                    let granted = &REP_BINARY[REP_BINARY.len() - 5..];
                    boxed(&mut far.conn, &mut s.input[i], &[], true)?;
                    boxed(&mut far.conn, &mut s.input[i], &[granted], false)?;
                }
                (Role::Publisher, Event::Ready { .. }) => {
                    let mut tx = [0u8; 64];
                    let n = far
                        .conn
                        .write_subscribe(b"imu", &mut tx)
                        .map_err(|_| LinkError)?;
                    if !s.input[i].push(&tx[..n]) {
                        return Err(LinkError);
                    }
                }
                (Role::Publisher, Event::Message { len, more: false }) => {
                    let sub = s.far[3].as_mut().ok_or(LinkError)?;
                    boxed(&mut sub.conn, &mut s.input[3], &[&far.rx[..len]], false)?;
                }
                (Role::Subscriber, Event::Subscribe { start, len }) => {
                    let prefix = far.rx.get(start..start + len).ok_or(LinkError)?;
                    if prefix.starts_with(READY_PROBE_PREFIX) {
                        let mut probe = [0u8; 64];
                        let probe = probe.get_mut(..len).ok_or(LinkError)?;
                        probe.copy_from_slice(prefix);
                        boxed(&mut far.conn, &mut s.input[i], &[probe], false)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
