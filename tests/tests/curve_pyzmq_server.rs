//! Our clients' CURVE against libzmq as the server (issue 13: "our std and embedded clients
//! talk to a pyzmq CURVE server"): a stand-in master made of pyzmq CURVE sockets (a REP for
//! control, a SUB that publishers connect to, an XPUB that subscribers connect to), written only
//! from the ZeroMQ API. The test answers the control requests it relays with core's encoder, so
//! what is proven here is each node's CURVE (handshake, boxes, nonces) on all three kinds of
//! connection against an independent implementation, not our master. The std node and the
//! embedded node (blocking driver over std TCP) each publish and receive.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ChildStdin;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use zerosmq::curve::{generate_keys, key_text};
use zerosmq_core::control::{decode_request, ControlReply, ControlRequest, Encoding};
use zerosmq_tests::{hex, unhex, PythonPeer, Urandom, WAIT};

/// The stand-in: prints `PORTS control sub xpub`, then a line per event (`REQ hex`, `GOT hex`,
/// `SUBSCRIBED hex`); reads `REP hex` (the reply to the last request) and `SEND hex` (a message
/// for the XPUB) on stdin.
const STAND_IN: &str = r#"
import os, sys, threading, queue, zmq
public, secret = sys.argv[1].encode(), sys.argv[2].encode()
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
commands = queue.Queue()
def read_stdin():
    for line in sys.stdin:
        commands.put(line.split())
    commands.put(["QUIT"])
threading.Thread(target=read_stdin, daemon=True).start()
poller = zmq.Poller()
for s in (rep, sub, xpub):
    poller.register(s, zmq.POLLIN)
waiting = False
parent = os.getppid()
while True:
    # The test is gone (a panic before QUIT): do not outlive it.
    if os.getppid() != parent:
        os._exit(0)
    for s, _ in poller.poll(20):
        if s is rep:
            print("REQ", b"".join(rep.recv_multipart()).hex(), flush=True)
            waiting = True
        elif s is sub:
            print("GOT", b"|".join(sub.recv_multipart()).hex(), flush=True)
        else:
            print("SUBSCRIBED", xpub.recv().hex(), flush=True)
    while not commands.empty():
        cmd = commands.get()
        if cmd[0] == "REP" and waiting:
            rep.send(bytes.fromhex(cmd[1]))
            waiting = False
        elif cmd[0] == "SEND":
            xpub.send(bytes.fromhex(cmd[1]))
        elif cmd[0] == "QUIT":
            os._exit(0)
"#;

/// What the stand-in told the test, and how to make it send.
struct StandIn {
    ports: (u16, u16, u16),
    got: mpsc::Receiver<Vec<u8>>,
    subscribed: mpsc::Receiver<Vec<u8>>,
    input: Arc<Mutex<ChildStdin>>,
    requests: mpsc::Receiver<String>,
}

/// Starts the stand-in and a thread that answers its control requests as a master would:
/// claims and heartbeats are alive, a publish grant is the SUB's port, a subscribe grant the
/// XPUB's; anything else is answered `Done`.
fn start(public: &str, secret: &str) -> StandIn {
    let mut py = PythonPeer::start(STAND_IN, &[public, secret]);
    let line = py.line();
    let p: Vec<u16> = line
        .strip_prefix("PORTS ")
        .unwrap_or_else(|| panic!("the stand-in did not start: {line:?}"))
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    let ports = (p[0], p[1], p[2]);
    let (got_tx, got) = mpsc::channel();
    let (sub_tx, subscribed) = mpsc::channel();
    let (req_tx, requests) = mpsc::channel();
    let input = Arc::new(Mutex::new(py.take_input().unwrap()));
    let say = input.clone();
    thread::spawn(move || loop {
        let line = py.line();
        let Some((kind, body)) = line.split_once(' ') else {
            if line.is_empty() {
                return; // exited
            }
            continue;
        };
        let bytes = unhex(body);
        match kind {
            "GOT" => {
                let _ = got_tx.send(bytes);
            }
            "SUBSCRIBED" => {
                let _ = sub_tx.send(bytes);
            }
            "REQ" => {
                let req = decode_request(&bytes).expect("the node's request decodes");
                let reply = match &req {
                    ControlRequest::Heartbeat { .. } => ControlReply::Alive { epoch: 7 },
                    ControlRequest::Publish { .. } => ControlReply::Granted { port: ports.1 },
                    ControlRequest::Subscribe { .. } => ControlReply::Granted { port: ports.2 },
                    _ => ControlReply::Done,
                };
                let _ = req_tx.send(format!("{req:?}"));
                let mut buf = [0u8; 256];
                let out = reply.encode(Encoding::of(&bytes), &mut buf).unwrap();
                tell(&say, &format!("REP {}", hex(out)));
            }
            _ => {}
        }
    });
    StandIn {
        ports,
        got,
        subscribed,
        input,
        requests,
    }
}

fn tell(input: &Mutex<ChildStdin>, line: &str) {
    let mut input = input.lock().unwrap();
    let _ = writeln!(input, "{line}");
    let _ = input.flush();
}

#[test]
fn a_std_node_publishes_and_receives_through_pyzmq_curve_servers() {
    let server = generate_keys();
    let (public, secret) = (key_text(server.public()), key_text(server.secret()));
    let stand_in = start(&public, &secret);
    let node = zerosmq::Node::builder("curve-std-node")
        .master(format!("tcp://127.0.0.1:{}", stand_in.ports.0))
        .timeout(WAIT)
        .curve(public.as_str(), Some(generate_keys()))
        .connect()
        .unwrap();

    // Publishing: the claim and the grant are answered over CURVE by libzmq's REP; libzmq's
    // CURVE SUB subscribes (everything), the node becomes ready, and the messages arrive
    // opened by libzmq, in order.
    let mut publisher = node
        .advertise("imu")
        .expect("the claim and the grant, answered over CURVE by libzmq's REP");
    let asked: Vec<String> = stand_in.requests.try_iter().collect();
    assert!(
        asked.iter().any(|r| r.contains("Heartbeat"))
            && asked.iter().any(|r| r.contains("Publish")),
        "{asked:?}"
    );
    publisher.wait_ready(WAIT).expect("libzmq's SUB subscribed");
    for i in 0..50 {
        publisher
            .publish(format!("reading {i}").as_bytes())
            .unwrap();
    }
    for i in 0..50 {
        let m = stand_in.got.recv_timeout(WAIT).expect("libzmq received it");
        assert_eq!(m, format!("imu reading {i}").into_bytes());
    }

    // Subscribing: the node's SUBSCRIBE reaches libzmq's XPUB (opened), and what the XPUB
    // sends reaches the node.
    let mut subscriber = node.subscribe("cmd").unwrap();
    let sub = stand_in.subscribed.recv_timeout(WAIT).expect("a SUBSCRIBE");
    assert_eq!(sub[0], 1, "a subscription, not a cancel: {sub:?}");
    assert!(
        b"cmd ".starts_with(&sub[1..]) || sub[1..].starts_with(b"cmd"),
        "{sub:?}"
    );
    // Until the node receives one, resend: libzmq's XPUB may see the SUBSCRIBE before the
    // node's link counts as ready, and a PUB drops what nobody subscribed to yet.
    let mut received = None;
    for _ in 0..50 {
        tell(&stand_in.input, &format!("SEND {}", hex(b"cmd go")));
        if let Some(m) = subscriber.recv_timeout(Duration::from_millis(200)).unwrap() {
            received = Some(m);
            break;
        }
    }
    let m = received.expect("a message from libzmq's CURVE XPUB");
    assert_eq!(m.topic(), "cmd");
    assert_eq!(m.payload(), b"go");
    tell(&stand_in.input, "QUIT");
}

#[test]
fn a_std_node_with_the_wrong_server_key_is_refused_by_pyzmq_clearly() {
    let server = generate_keys();
    let stand_in = start(&key_text(server.public()), &key_text(server.secret()));
    let wrong = key_text(generate_keys().public());
    let node = zerosmq::Node::builder("curve-wrong-key")
        .master(format!("tcp://127.0.0.1:{}", stand_in.ports.0))
        .timeout(Duration::from_secs(2))
        .curve(wrong.as_str(), None)
        .connect()
        .unwrap();
    let err = node
        .advertise("imu")
        .expect_err("libzmq cannot open our HELLO");
    assert!(
        matches!(err, zerosmq::Error::WrongServerKey { .. }),
        "a clear error naming the key: {err:?} ({err})"
    );
    tell(&stand_in.input, "QUIT");
}

#[test]
fn an_embedded_node_publishes_and_receives_through_pyzmq_curve_servers() {
    let server = generate_keys();
    let stand_in = start(&key_text(server.public()), &key_text(server.secret()));
    let keys = generate_keys();
    let stack = zerosmq_embedded::StdConnect {
        read_timeout: Some(WAIT),
    };
    let control = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), stand_in.ports.0);
    let node = zerosmq_embedded::Node::new(&stack, control, "curve-mcu")
        .unwrap()
        .with_curve(
            *server.public(),
            *keys.public(),
            *keys.secret(),
            &mut Urandom::new(),
        )
        .unwrap();

    // Publishing: the grant over libzmq's CURVE REP, readiness from libzmq's SUB, messages
    // opened by libzmq in order.
    let mut pub_buf = [0u8; 512];
    let mut publisher = node
        .advertise("imu", &mut pub_buf)
        .expect("the grant, answered over CURVE by libzmq's REP");
    publisher.wait_ready().expect("libzmq's SUB subscribed");
    for i in 0..20u8 {
        publisher.publish(&[b'r', i]).unwrap();
    }
    for i in 0..20u8 {
        let m = stand_in.got.recv_timeout(WAIT).expect("libzmq received it");
        assert_eq!(m, [&b"imu r"[..], &[i]].concat());
    }
    let asked: Vec<String> = stand_in.requests.try_iter().collect();
    assert!(asked.iter().any(|r| r.contains("Publish")), "{asked:?}");

    // Subscribing: libzmq's XPUB opens the node's SUBSCRIBE; once it has, what it sends
    // reaches the node (no ready-wait: that needs our master's probe echo).
    let mut sub_buf = [0u8; 512];
    let mut subscriber = node.subscribe("cmd", &mut sub_buf).unwrap();
    let sub = stand_in.subscribed.recv_timeout(WAIT).expect("a SUBSCRIBE");
    assert_eq!(sub[0], 1, "a subscription: {sub:?}");
    tell(&stand_in.input, &format!("SEND {}", hex(b"cmd go left")));
    assert_eq!(subscriber.recv().unwrap(), b"go left");
    tell(&stand_in.input, "QUIT");
}
