//! The bytes the firmware's CURVE self-test replays (examples/firmware, feature
//! `curve-recorded`), recorded here from live libzmq: the embedded node (blocking driver over
//! std TCP) with the firmware's fixed keys and its generator seeded as the firmware seeds it
//! (core's `ReplayRng(1)`) gets a publish and a subscribe grant from a pyzmq CURVE REP,
//! publishes to a pyzmq CURVE SUB and receives from a pyzmq CURVE XPUB, which echoes the node's
//! ready probe and forwards what the SUB got, as the master does. A connector wrapping
//! `StdConnect` keeps what libzmq sent on each of the node's four connections (in the order the
//! node opens them: control, publisher, control, subscriber).
//!
//! With the same keys and seed the node's ephemeral keys on the target are these ones, so the
//! recorded WELCOME, READY and MESSAGE boxes open there. `ZEROSMQ_RECORD_CURVE=1` rewrites the
//! recordings (`core/src/zmtp/testdata/libzmq-curve-embedded-*.bin`); without it the test
//! checks that live libzmq still sends what they hold (command names and sizes: libzmq's own
//! keys and nonces differ on every run).

use std::cell::RefCell;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::thread;

use zerosmq_core::control::{decode_request, ControlReply, ControlRequest, Encoding};
use zerosmq_core::zmtp::curve::{CurveKeyPair, ReplayRng};
use zerosmq_core::zmtp::z85;
use zerosmq_embedded::{Connect, Node, StdConnect, StdError, StdStream, CURVE_MIN_BUF_LEN};
use zerosmq_tests::{hex, record_or_compare, unhex, PythonPeer, WAIT};

// What examples/firmware/src/loopback.rs uses: change both together, then re-record.
const CLIENT_SECRET: [u8; 32] = [0x42; 32];
const SERVER_SECRET: [u8; 32] = [0x24; 32];
const SEED: u64 = 1;
const NAME: &str = "mcu";
const TOPIC: &str = "imu";
const MESSAGES: [&[u8]; 2] = [b"hello from the MCU", &[0, 1, 2, 255]];

/// The recordings, one per connection of the node, in the order it opens them.
const FILES: [&str; 4] = [
    "libzmq-curve-embedded-rep-pub.bin",
    "libzmq-curve-embedded-sub.bin",
    "libzmq-curve-embedded-rep-sub.bin",
    "libzmq-curve-embedded-xpub.bin",
];

/// pyzmq CURVE servers standing in for the master: a REP (its replies come from the test, on
/// stdin as `REP hex`), a SUB of everything, an XPUB that echoes ready probes and forwards what
/// the SUB receives. Prints `PORTS rep sub xpub`, then `REQ hex` per request and `GOT hex` per
/// message the SUB received.
const STAND_IN: &str = r#"
import os, sys, threading, queue, zmq
public, secret, probe = sys.argv[1].encode(), sys.argv[2].encode(), bytes.fromhex(sys.argv[3])
ctx = zmq.Context()
def server(kind):
    s = ctx.socket(kind)
    s.curve_server = True
    s.curve_publickey = public
    s.curve_secretkey = secret
    s.linger = 0
    return s, s.bind_to_random_port("tcp://127.0.0.1")
rep, rp = server(zmq.REP)
sub, sp = server(zmq.SUB)
sub.subscribe(b"")
xpub, xp = server(zmq.XPUB)
print("PORTS", rp, sp, xp, flush=True)
replies = queue.Queue()
def read_stdin():
    for line in sys.stdin:
        replies.put(bytes.fromhex(line.split()[1]))
    os._exit(0)  # the test ended (its end of the pipe closed)
threading.Thread(target=read_stdin, daemon=True).start()
poller = zmq.Poller()
for s in (rep, sub, xpub):
    poller.register(s, zmq.POLLIN)
while True:
    for s, _ in poller.poll(20):
        if s is rep:
            print("REQ", b"".join(rep.recv_multipart()).hex(), flush=True)
            rep.send(replies.get())
        elif s is sub:
            parts = sub.recv_multipart()
            print("GOT", b"".join(parts).hex(), flush=True)
            xpub.send_multipart(parts)
        else:
            m = xpub.recv()
            if m[:1] == b"\x01" and m[1:].startswith(probe):
                xpub.send(m[1:])
"#;

/// `StdConnect`, keeping what the far end sent on every connection (what the node read).
struct Recorder {
    inner: StdConnect,
    received: RefCell<Vec<Vec<u8>>>,
}

struct Recorded<'a> {
    stream: StdStream,
    index: usize,
    recorder: &'a Recorder,
}

impl embedded_io::ErrorType for Recorded<'_> {
    type Error = StdError;
}

impl embedded_io::Read for Recorded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StdError> {
        let n = embedded_io::Read::read(&mut self.stream, buf)?;
        self.recorder.received.borrow_mut()[self.index].extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl embedded_io::Write for Recorded<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, StdError> {
        embedded_io::Write::write(&mut self.stream, buf)
    }

    fn flush(&mut self) -> Result<(), StdError> {
        embedded_io::Write::flush(&mut self.stream)
    }
}

impl embedded_io::ReadReady for Recorded<'_> {
    fn read_ready(&mut self) -> Result<bool, StdError> {
        embedded_io::ReadReady::read_ready(&mut self.stream)
    }
}

impl Connect for Recorder {
    type Error = StdError;
    type Connection<'a> = Recorded<'a>;

    fn connect(&self, remote: SocketAddr) -> Result<Recorded<'_>, StdError> {
        let stream = self.inner.connect(remote)?;
        let mut received = self.received.borrow_mut();
        received.push(Vec::new());
        Ok(Recorded {
            stream,
            index: received.len() - 1,
            recorder: self,
        })
    }
}

#[test]
fn the_embedded_nodes_curve_conversation_with_pyzmq_is_recorded_for_the_firmware() {
    let server = CurveKeyPair::from_secret(SERVER_SECRET);
    let client = CurveKeyPair::from_secret(CLIENT_SECRET);
    let text = |k: &[u8; 32]| String::from_utf8(z85::encode_key(k).to_vec()).unwrap();
    let mut py = PythonPeer::start(
        STAND_IN,
        &[
            &text(server.public()),
            &text(server.secret()),
            &hex(zerosmq_core::READY_PROBE_PREFIX),
        ],
    );
    let line = py.line();
    let ports: Vec<u16> = line
        .strip_prefix("PORTS ")
        .unwrap_or_else(|| panic!("the stand-in did not start: {line:?}"))
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    let (rep_port, sub_port, xpub_port) = (ports[0], ports[1], ports[2]);

    // The grants, as a master answers them, with core's encoder in the request's encoding.
    let mut input = py.take_input().unwrap();
    let (got_tx, got) = mpsc::channel();
    let (req_tx, requests) = mpsc::channel();
    thread::spawn(move || loop {
        let line = py.line();
        let Some((kind, body)) = line.split_once(' ') else {
            return;
        };
        let bytes = unhex(body);
        match kind {
            "REQ" => {
                let req = decode_request(&bytes).expect("the node's request decodes");
                let reply = match &req {
                    ControlRequest::Publish { .. } => ControlReply::Granted { port: sub_port },
                    ControlRequest::Subscribe { .. } => ControlReply::Granted { port: xpub_port },
                    _ => ControlReply::Done,
                };
                let mut buf = [0u8; 64];
                let out = reply.encode(Encoding::of(&bytes), &mut buf).unwrap();
                writeln!(input, "REP {}", hex(out)).unwrap();
                input.flush().unwrap();
                let _ = req_tx.send((Encoding::of(&bytes), format!("{req:?}")));
            }
            "GOT" => {
                let _ = got_tx.send(bytes);
            }
            _ => {}
        }
    });

    // The firmware's round trip (examples/firmware/src/loopback.rs, node_round_trip), step for
    // step: the order of the node's connections decides which ephemeral key each one gets.
    let recorder = Recorder {
        inner: StdConnect {
            read_timeout: Some(WAIT),
        },
        received: RefCell::new(Vec::new()),
    };
    let control = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), rep_port);
    let node = Node::new(&recorder, control, NAME)
        .unwrap()
        // The firmware has no text protocol: its grant replies are binary.
        .with_encoding(Encoding::Binary)
        .with_curve(
            *server.public(),
            *client.public(),
            *client.secret(),
            &mut ReplayRng(SEED),
        )
        .unwrap();
    let mut pub_buf = [0u8; CURVE_MIN_BUF_LEN];
    let mut sub_buf = [0u8; CURVE_MIN_BUF_LEN];
    let mut publisher = node
        .advertise(TOPIC, &mut pub_buf)
        .expect("the publish grant over CURVE from libzmq's REP");
    let mut subscriber = node
        .subscribe(TOPIC, &mut sub_buf)
        .expect("the subscribe grant over CURVE from libzmq's REP");
    subscriber
        .wait_ready()
        .expect("libzmq's XPUB echoed the ready probe");
    publisher.wait_ready().expect("libzmq's SUB subscribed");
    for m in MESSAGES {
        publisher.publish(m).unwrap();
        let topic_line = [TOPIC.as_bytes(), b" ", m].concat();
        assert_eq!(
            got.recv_timeout(WAIT).expect("libzmq's SUB got it"),
            topic_line
        );
        assert_eq!(subscriber.recv().expect("libzmq's XPUB forwarded it"), m);
    }
    let asked: Vec<(Encoding, String)> = requests.try_iter().collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked.iter().all(|(e, _)| *e == Encoding::Binary),
        "{asked:?}"
    );
    assert!(asked[0].1.contains("Publish") && asked[1].1.contains("Subscribe"));
    drop((publisher, subscriber));

    let received = recorder.received.into_inner();
    assert_eq!(received.len(), FILES.len(), "the node's connections");
    for (file, live) in FILES.iter().zip(&received) {
        // Boxed end to end: the topic never crosses in clear.
        assert!(!live.windows(3).any(|w| w == TOPIC.as_bytes()), "{file}");
        record_or_compare(file, live);
    }
}
