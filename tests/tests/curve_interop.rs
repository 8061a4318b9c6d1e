//! CURVE interop: core's sans-IO `Connection` (feature `curve`), driven over a std `TcpStream`,
//! against live libzmq 4.3 peers (pyzmq's wheel ships a libzmq with CURVE). Our client against
//! pyzmq CURVE servers (REP, XPUB), our server against pyzmq CURVE clients (REQ, SUB), a wrong
//! server key on each side, and a client key refused by the server's admission hook.
//!
//! Two runs are recorded in `core/src/zmtp/testdata` (bytes libzmq sent, our side seeded with a
//! fixed generator so the replay in core's unit tests reproduces its keys): set
//! `ZEROSMQ_RECORD_CURVE=1` to rewrite them. Without it, the tests check that live libzmq still
//! sends what was recorded (command names and sizes).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use zerosmq_core::zmtp::curve::{CurveError, CurveKeyPair};
use zerosmq_core::zmtp::{z85, Connection, Event, SocketType, ZmtpError};
use zerosmq_tests::{
    record_or_compare, wait_until, zmtp_structure as structure, PythonPeer, Urandom, WAIT,
};

const SERVER_PUBLIC: &[u8] = b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
const SERVER_SECRET: &[u8] = b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
const CLIENT_PUBLIC: &[u8] = b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
const CLIENT_SECRET: &[u8] = b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";
/// The seed of our side's generator in the recorded runs (core's replay tests use it too).
const RECORD_SEED: u64 = 0x5eed_c0de;

const PEER: &str = r#"
import sys, zmq
from zmq.utils.monitor import recv_monitor_message
SERVER_PUBLIC = b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
SERVER_SECRET = b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
CLIENT_PUBLIC = b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
CLIENT_SECRET = b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
ctx = zmq.Context()
mode = sys.argv[1]

def server(kind):
    s = ctx.socket(kind)
    s.curve_server = True
    s.curve_secretkey = SERVER_SECRET
    s.curve_publickey = SERVER_PUBLIC
    s.linger = 2000
    print("PORT", s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    return s

def client(kind):
    s = ctx.socket(kind)
    s.curve_serverkey = sys.argv[3].encode()
    s.curve_publickey = CLIENT_PUBLIC
    s.curve_secretkey = CLIENT_SECRET
    s.linger = 2000
    s.reconnect_ivl = 60000
    m = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                             | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_DISCONNECTED)
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    ev = recv_monitor_message(m)
    print("EVENT", ev["event"], ev["value"], flush=True)
    return s, ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED

if mode == "rep-server":
    s = server(zmq.REP)
    for i in range(3):
        s.send_multipart([b"re:" + b"|".join(s.recv_multipart())])
    print("OK", flush=True)
elif mode == "xpub-server":
    s = server(zmq.XPUB)
    print("SUB", s.recv().hex(), flush=True)
    for i in range(3):
        s.send(b"imu %d" % i)
    print("OK", flush=True)
elif mode == "req-client":
    s, ok = client(zmq.REQ)
    if ok:
        s.send_multipart([b"hello", b"world"])
        print("REPLY", b"+".join(s.recv_multipart()).decode(), flush=True)
elif mode == "sub-client":
    s, ok = client(zmq.SUB)
    if ok:
        s.subscribe(b"imu")
        for i in range(3):
            print("MSG", s.recv().decode(), flush=True)
"#;

fn key(text: &[u8]) -> [u8; 32] {
    z85::decode_key(text).unwrap()
}

fn urandom() -> Urandom {
    Urandom::new()
}

// The fixed generator of the recorded runs (core's replay tests use the same one).
use zerosmq_core::zmtp::curve::ReplayRng as Seeded;

/// The pyzmq peer script above.
struct Python;

impl Python {
    fn start(args: &[&str]) -> PythonPeer {
        PythonPeer::start(PEER, args)
    }
}

/// The port a server script announced.
fn port_of(py: &mut PythonPeer) -> u16 {
    let l = py.line();
    l.strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("python server did not start: {l:?}"))
}

enum Step {
    Event(Event, Vec<u8>),
    Admission,
    Eof,
}

/// Our side: a `Connection` over a blocking `TcpStream`, keeping every byte it received.
struct Peer {
    conn: Connection<'static>,
    stream: TcpStream,
    rx: Vec<u8>,
    tx: Vec<u8>,
    received: Vec<u8>,
}

impl Peer {
    fn new(conn: Connection<'static>, stream: TcpStream) -> Peer {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Peer {
            conn,
            stream,
            rx: vec![0; 4096],
            tx: vec![0; 4096],
            received: Vec::new(),
        }
    }

    fn flush(&mut self) {
        while let Some(n) = self.conn.poll_transmit(&mut self.tx).unwrap() {
            // A peer that already closed is seen by the next read.
            let _ = self.stream.write_all(&self.tx[..n]);
        }
    }

    fn step(&mut self) -> Result<Step, ZmtpError> {
        loop {
            self.flush();
            if self.conn.awaits_admission() {
                return Ok(Step::Admission);
            }
            let buf = self.conn.read_buffer(&mut self.rx);
            let n = match self.stream.read(buf) {
                Ok(0) => return Ok(Step::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(Step::Eof),
                Err(e) => panic!(
                    "read: {e}; received so far: {:?}",
                    structure(&self.received)
                ),
            };
            self.received.extend_from_slice(&buf[..n]);
            if let Some(ev) = self.conn.commit_in_place(n, &mut self.rx)? {
                let body = match ev {
                    Event::Message { len, .. } => self.rx[..len].to_vec(),
                    Event::Subscribe { start, len } | Event::Cancel { start, len } => {
                        self.rx[start..start + len].to_vec()
                    }
                    Event::Ready { .. } => Vec::new(),
                };
                return Ok(Step::Event(ev, body));
            }
        }
    }

    fn event(&mut self) -> (Event, Vec<u8>) {
        match self.step() {
            Ok(Step::Event(e, b)) => (e, b),
            Ok(Step::Admission) => panic!("admission asked"),
            Ok(Step::Eof) => panic!("peer closed"),
            Err(e) => panic!("{e}"),
        }
    }

    fn send(&mut self, parts: &[&[u8]]) {
        let mut tx = vec![0; 4096];
        let mut at = 0;
        for (i, p) in parts.iter().enumerate() {
            at += self
                .conn
                .write_message(&[p], i + 1 < parts.len(), &mut tx[at..])
                .unwrap();
        }
        self.stream.write_all(&tx[..at]).unwrap();
    }
}

fn client_keys() -> CurveKeyPair {
    CurveKeyPair::from_secret(key(CLIENT_SECRET))
}

fn server_keys() -> CurveKeyPair {
    CurveKeyPair::from_secret(key(SERVER_SECRET))
}

#[test]
fn our_client_talks_to_a_pyzmq_curve_rep_server_both_ways() {
    let mut py = Python::start(&["rep-server"]);
    let port = port_of(&mut py);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let conn = Connection::curve_client(
        SocketType::Req,
        key(SERVER_PUBLIC),
        client_keys(),
        &mut urandom(),
    );
    let mut peer = Peer::new(conn, stream);
    let (ev, _) = peer.event();
    assert_eq!(
        ev,
        Event::Ready {
            peer: SocketType::Rep,
            minor: 1
        }
    );
    for i in 0..3 {
        let body = format!("ping {i}");
        peer.send(&[b"", body.as_bytes(), b"tail"]);
        let (ev, delimiter) = peer.event();
        assert_eq!(
            (ev, delimiter.len()),
            (Event::Message { len: 0, more: true }, 0)
        );
        let (ev, reply) = peer.event();
        assert!(matches!(ev, Event::Message { more: false, .. }));
        assert_eq!(reply, format!("re:ping {i}|tail").as_bytes());
    }
    assert_eq!(py.line(), "OK");
    // Nothing readable went over the wire in clear.
    assert!(!peer.received.windows(4).any(|w| w == b"ping"));
}

#[test]
fn our_sub_client_gets_data_from_a_pyzmq_curve_xpub_server_recorded() {
    let mut py = Python::start(&["xpub-server"]);
    let port = port_of(&mut py);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let conn = Connection::curve_client(
        SocketType::Sub,
        key(SERVER_PUBLIC),
        client_keys(),
        &mut Seeded(RECORD_SEED),
    );
    let mut peer = Peer::new(conn, stream);
    let (ev, _) = peer.event();
    assert_eq!(
        ev,
        Event::Ready {
            peer: SocketType::XPub,
            minor: 1
        }
    );
    let mut tx = [0u8; 128];
    let n = peer.conn.write_subscribe(b"imu", &mut tx).unwrap();
    peer.stream.write_all(&tx[..n]).unwrap();
    // libzmq's XPUB hands the subscription up as `01 imu`: our boxed SUBSCRIBE was understood.
    assert_eq!(py.line(), "SUB 01696d75");
    for i in 0..3 {
        let (ev, body) = peer.event();
        assert!(matches!(ev, Event::Message { more: false, .. }));
        assert_eq!(body, format!("imu {i}").as_bytes());
    }
    assert_eq!(py.line(), "OK");
    record_or_compare("libzmq-curve-xpub-server.bin", &peer.received);
}

/// Accepts one connection from a pyzmq client started with `mode` and `server_key`.
fn serve(
    mode: &str,
    server_key: &[u8],
    socket_type: SocketType,
    rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
) -> (PythonPeer, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut py = Python::start(&[mode, &port, std::str::from_utf8(server_key).unwrap()]);
    // A script that fails (pyzmq missing, say) never connects: fail then, not hang.
    listener.set_nonblocking(true).unwrap();
    let mut accepted = None;
    wait_until(WAIT, || {
        if let Some(status) = py.exited() {
            panic!("the pyzmq client exited before connecting: {status}");
        }
        accepted = listener.accept().ok();
        accepted.is_some()
    })
    .expect("the pyzmq client connects");
    let (stream, _) = accepted.unwrap();
    stream.set_nonblocking(false).unwrap();
    let conn = Connection::curve_server(socket_type, server_keys(), rng);
    (py, Peer::new(conn, stream))
}

#[test]
fn our_server_serves_a_pyzmq_curve_req_client_both_ways() {
    let (mut py, mut peer) = serve("req-client", SERVER_PUBLIC, SocketType::Rep, &mut urandom());
    assert!(matches!(peer.step(), Ok(Step::Admission)));
    assert_eq!(peer.conn.curve_client_key(), Some(&key(CLIENT_PUBLIC)));
    assert_eq!(
        peer.conn.admit(true),
        Ok(Event::Ready {
            peer: SocketType::Req,
            minor: 1
        })
    );
    peer.flush();
    let mut parts = Vec::new();
    loop {
        let (ev, body) = peer.event();
        parts.push(body);
        if ev
            == (Event::Message {
                len: parts.last().unwrap().len(),
                more: false,
            })
        {
            break;
        }
    }
    assert_eq!(parts, [&b""[..], b"hello", b"world"]);
    peer.send(&[b"", b"hi", b"there"]);
    assert_eq!(
        py.line(),
        format!("EVENT {} 0", zmq::SocketEvent::HANDSHAKE_SUCCEEDED.to_raw())
    );
    assert_eq!(py.line(), "REPLY hi+there");
}

#[test]
fn our_xpub_server_feeds_a_pyzmq_curve_sub_client_recorded() {
    let (mut py, mut peer) = serve(
        "sub-client",
        SERVER_PUBLIC,
        SocketType::XPub,
        &mut Seeded(RECORD_SEED),
    );
    assert!(matches!(peer.step(), Ok(Step::Admission)));
    peer.conn.admit(true).unwrap();
    let (ev, prefix) = peer.event();
    assert!(matches!(ev, Event::Subscribe { .. }), "{ev:?}");
    assert_eq!(prefix, b"imu");
    for i in 0..3 {
        peer.send(&[format!("imu {i}").as_bytes()]);
    }
    py.line(); // handshake event
    for i in 0..3 {
        assert_eq!(py.line(), format!("MSG imu {i}"));
    }
    record_or_compare("libzmq-curve-sub-client.bin", &peer.received);
}

#[test]
fn a_wrong_server_key_is_refused_on_both_sides() {
    // Our client with another server's key: libzmq's server cannot open HELLO and hangs up.
    let mut py = Python::start(&["rep-server"]);
    let port = port_of(&mut py);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let wrong = CurveKeyPair::generate(&mut urandom());
    let conn = Connection::curve_client(
        SocketType::Req,
        *wrong.public(),
        client_keys(),
        &mut urandom(),
    );
    let mut peer = Peer::new(conn, stream);
    assert!(matches!(peer.step(), Ok(Step::Eof)));
    assert!(!peer.conn.is_open());
    drop(py);
    // A pyzmq client with another server's key: our server cannot open its HELLO.
    let other = z85::encode_key(wrong.public());
    let (mut py, mut peer) = serve("req-client", &other, SocketType::Rep, &mut urandom());
    assert!(matches!(
        peer.step(),
        Err(ZmtpError::Curve(CurveError::Crypto))
    ));
    drop(peer);
    let line = py.line();
    assert!(
        line.starts_with("EVENT ")
            && !line.starts_with(&format!(
                "EVENT {} ",
                zmq::SocketEvent::HANDSHAKE_SUCCEEDED.to_raw()
            )),
        "{line}"
    );
}

#[test]
fn a_client_key_refused_by_the_hook_gets_error_400() {
    let (mut py, mut peer) = serve("req-client", SERVER_PUBLIC, SocketType::Rep, &mut urandom());
    assert!(matches!(peer.step(), Ok(Step::Admission)));
    assert_eq!(peer.conn.curve_client_key(), Some(&key(CLIENT_PUBLIC)));
    assert_eq!(
        peer.conn.admit(false),
        Err(ZmtpError::Curve(CurveError::Refused))
    );
    peer.flush();
    // libzmq reports the ERROR's status as an authentication failure.
    assert_eq!(
        py.line(),
        format!(
            "EVENT {} 400",
            zmq::SocketEvent::HANDSHAKE_FAILED_AUTH.to_raw()
        )
    );
}
