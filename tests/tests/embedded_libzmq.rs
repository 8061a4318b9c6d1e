//! The embedded node over std `TcpStream` (through embedded-io-adapters) against real libzmq
//! sockets (libzmq 4.3.4 via the `zmq` crate) in every role: REQ against REP, PUB against SUB,
//! SUB against XPUB (answering ready probes as the master does).

use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::Duration;

use zerosmq_core::control::{decode_request, ControlReply, ControlRequest, Encoding};
use zerosmq_core::READY_PROBE_PREFIX;
use zerosmq_embedded::{Error, Node, StdConnect};

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A stand-in master control service on a libzmq REP socket: answers `count` requests with the
/// given ports, in the encoding each request came in.
fn fake_control(
    ctx: &zmq::Context,
    pub_port: u16,
    sub_port: u16,
    count: usize,
) -> (u16, thread::JoinHandle<Vec<ControlRequest>>) {
    let rep = ctx.socket(zmq::REP).unwrap();
    rep.bind("tcp://127.0.0.1:*").unwrap();
    let port = port_of(&rep);
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..count {
            let bytes = rep.recv_bytes(0).unwrap();
            let req = decode_request(&bytes).unwrap();
            let reply = match &req {
                ControlRequest::Publish { .. } => ControlReply::Granted { port: pub_port },
                ControlRequest::Subscribe { .. } => ControlReply::Granted { port: sub_port },
                ControlRequest::Graph => ControlReply::Graph("digraph { \"n\" -> \"imu\" }"),
                _ => ControlReply::Done,
            };
            let mut buf = [0u8; 256];
            let out = reply.encode(Encoding::of(&bytes), &mut buf).unwrap();
            rep.send(out, 0).unwrap();
            seen.push(req);
        }
        seen
    });
    (port, handle)
}

fn port_of(s: &zmq::Socket) -> u16 {
    let ep = s.get_last_endpoint().unwrap().unwrap();
    ep.rsplit(':').next().unwrap().parse().unwrap()
}

fn stack() -> StdConnect {
    StdConnect {
        read_timeout: Some(Duration::from_secs(10)),
    }
}

#[test]
fn control_requests_text_and_binary_against_libzmq_rep() {
    let ctx = zmq::Context::new();
    let (port, control) = fake_control(&ctx, 0, 0, 2);
    let stack = stack();
    let master = SocketAddr::new(LOCALHOST.into(), port);
    let mut buf = [0u8; 256];
    let node = Node::new(&stack, master, "mcu").unwrap();
    assert_eq!(
        node.graph(&mut buf).unwrap(),
        "digraph { \"n\" -> \"imu\" }"
    );
    let node = Node::new(&stack, master, "mcu")
        .unwrap()
        .with_encoding(Encoding::Binary);
    assert_eq!(
        node.graph(&mut buf).unwrap(),
        "digraph { \"n\" -> \"imu\" }"
    );
    assert_eq!(control.join().unwrap(), vec![ControlRequest::Graph; 2]);
}

#[test]
fn publisher_against_libzmq_sub_short_and_long_frames() {
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.bind("tcp://127.0.0.1:*").unwrap();
    sub.set_subscribe(b"imu").unwrap();
    sub.set_rcvtimeo(10_000).unwrap();
    let (port, control) = fake_control(&ctx, port_of(&sub), 0, 1);
    // A bound libzmq socket attaches a new peer only while its own thread is inside a libzmq
    // call, so the embedded publisher runs in a thread of its own while this one receives.
    let long = vec![0xA5u8; 1000];
    let to_send = long.clone();
    let embedded = thread::spawn(move || {
        let stack = stack();
        let node = Node::new(&stack, SocketAddr::new(LOCALHOST.into(), port), "mcu").unwrap();
        let mut buf = [0u8; 128];
        let mut publisher = node.advertise("imu", &mut buf).unwrap();
        // libzmq's SUB subscription (a SUBSCRIBE command in 3.1) makes the publisher ready.
        publisher.wait_ready().unwrap();
        publisher.publish(b"hello").unwrap();
        publisher.publish(&to_send).unwrap();
    });
    assert_eq!(sub.recv_bytes(0).unwrap(), b"imu hello");
    let mut want = b"imu ".to_vec();
    want.extend_from_slice(&long);
    assert_eq!(sub.recv_bytes(0).unwrap(), want);
    embedded.join().unwrap();
    assert!(matches!(
        &control.join().unwrap()[..],
        [ControlRequest::Publish { node, topic }] if node.as_str() == "mcu" && topic.as_str() == "imu"
    ));
}

#[test]
fn subscriber_against_libzmq_xpub_with_ready_probe() {
    let ctx = zmq::Context::new();
    let xpub = ctx.socket(zmq::XPUB).unwrap();
    xpub.bind("tcp://127.0.0.1:*").unwrap();
    xpub.set_rcvtimeo(10_000).unwrap();
    let (port, _control) = fake_control(&ctx, 0, port_of(&xpub), 1);
    // The master's part: on a probe subscription, send the probe's bytes back; then traffic.
    let master_side = thread::spawn(move || {
        let mut subs = Vec::new();
        loop {
            let s = xpub.recv_bytes(0).unwrap();
            if s[0] == 1 && s[1..].starts_with(READY_PROBE_PREFIX) {
                xpub.send(&s[1..], 0).unwrap();
                for m in [&b"imu hello"[..], b"other x", b"imu world"] {
                    xpub.send(m, 0).unwrap();
                }
                let mut big = b"imu ".to_vec();
                big.extend(vec![7u8; 300]);
                xpub.send(big, 0).unwrap(); // longer than the node's buffer: skipped
                xpub.send(&b"imu after"[..], 0).unwrap();
            }
            let cancel = s[0] == 0;
            subs.push(s);
            if cancel {
                return subs;
            }
        }
    });
    let stack = stack();
    let node = Node::new(&stack, SocketAddr::new(LOCALHOST.into(), port), "mcu").unwrap();
    let mut buf = [0u8; 128];
    let mut sub = node.subscribe("imu", &mut buf).unwrap();
    sub.wait_ready().unwrap();
    let probe = sub.probe().to_vec();
    assert_eq!(sub.recv().unwrap(), b"hello");
    assert_eq!(sub.recv().unwrap(), b"world");
    assert!(matches!(
        sub.recv(),
        Err(Error::FrameTooLarge {
            len: 304,
            capacity: 128
        })
    ));
    assert_eq!(sub.recv().unwrap(), b"after");
    let subs = master_side.join().unwrap();
    assert_eq!(subs[0], b"\x01imu");
    assert_eq!(subs[1], [&[1u8][..], &probe].concat());
    assert_eq!(
        subs[2],
        [&[0u8][..], &probe].concat(),
        "probe cancelled once echoed"
    );
}

#[test]
fn subscriber_against_plain_libzmq_pub_receives_without_probe() {
    // A PUB (not the master) never echoes probes; recv works without wait_ready.
    let ctx = zmq::Context::new();
    let publisher = ctx.socket(zmq::XPUB).unwrap();
    publisher.bind("tcp://127.0.0.1:*").unwrap();
    publisher.set_rcvtimeo(10_000).unwrap();
    let (port, _control) = fake_control(&ctx, 0, port_of(&publisher), 1);
    let stack = stack();
    let node = Node::new(&stack, SocketAddr::new(LOCALHOST.into(), port), "mcu").unwrap();
    let mut buf = [0u8; 64];
    let mut sub = node.subscribe("imu", &mut buf).unwrap();
    // XPUB tells when the topic subscription arrived: no sleep needed.
    assert_eq!(publisher.recv_bytes(0).unwrap(), b"\x01imu");
    publisher.send(&b"imu 42"[..], 0).unwrap();
    assert_eq!(sub.recv().unwrap(), b"42");
    assert!(!sub.is_ready());
}

#[test]
fn read_timeout_keeps_the_connection() {
    let ctx = zmq::Context::new();
    let xpub = ctx.socket(zmq::XPUB).unwrap();
    xpub.bind("tcp://127.0.0.1:*").unwrap();
    xpub.set_rcvtimeo(10_000).unwrap();
    let (port, control) = fake_control(&ctx, 0, port_of(&xpub), 1);
    let stack = StdConnect {
        read_timeout: Some(Duration::from_millis(50)),
    };
    let node = Node::new(&stack, SocketAddr::new(LOCALHOST.into(), port), "mcu").unwrap();
    let mut buf = [0u8; 64];
    let mut sub = node.subscribe("imu", &mut buf).unwrap();
    assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01imu");
    assert!(matches!(sub.recv(), Err(Error::TimedOut)));
    xpub.send(&b"imu 1"[..], 0).unwrap();
    assert_eq!(sub.recv().unwrap(), b"1");
    // One grant only: the timeout did not cost a reconnect.
    assert_eq!(control.join().unwrap().len(), 1);
}

/// What libzmq 4.3.4 sends to a raw ZMTP 3.1 peer that has sent greeting and READY as `peer`,
/// after `act` ran, read until `expected_len` bytes arrived.
fn live_libzmq_bytes(
    kind: zmq::SocketType,
    peer: &str,
    act: impl FnOnce(&zmq::Socket, &mut std::net::TcpStream),
    expected_len: usize,
) -> Vec<u8> {
    use std::io::{Read, Write};
    let ctx = zmq::Context::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = ctx.socket(kind).unwrap();
    socket
        .connect(&format!("tcp://{}", listener.local_addr().unwrap()))
        .unwrap();
    let (mut tcp, _) = listener.accept().unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = zerosmq_core::zmtp::Greeting::ours().to_bytes().to_vec();
    let mut ready = [0u8; 64];
    let st = zerosmq_core::zmtp::SocketType::parse(peer.as_bytes()).unwrap();
    let n = zerosmq_core::zmtp::command::encode_ready(st, b"", &mut ready).unwrap();
    hello.extend_from_slice(&ready[..n]);
    tcp.write_all(&hello).unwrap();
    // libzmq's greeting and READY first: libzmq 4.3.4 drops a connection whose first command
    // after READY arrives before it finished the handshake (the embedded node waits too).
    let mut got = vec![0u8; 66];
    tcp.read_exact(&mut got).unwrap();
    let ready_len = usize::from(got[65]);
    let mut rest = vec![0u8; expected_len - 66];
    tcp.read_exact(&mut rest[..ready_len]).unwrap();
    act(&socket, &mut tcp);
    tcp.read_exact(&mut rest[ready_len..]).unwrap();
    got.extend_from_slice(&rest);
    got
}

#[test]
fn recorded_libzmq_bytes_match_live_libzmq() {
    // The fixtures under core/src/zmtp/testdata (used by unit tests, QEMU self-tests and fuzz
    // seeds) are what libzmq really sends.
    let sub = live_libzmq_bytes(
        zmq::SUB,
        "PUB",
        |s, _| s.set_subscribe(b"imu").unwrap(),
        106,
    );
    assert_eq!(
        sub,
        include_bytes!("../../core/src/zmtp/testdata/libzmq-sub-v31.bin")
    );
    let req = live_libzmq_bytes(
        zmq::REQ,
        "REP",
        |s, _| s.send("REQUEST_PUB n imu", 0).unwrap(),
        125,
    );
    assert_eq!(
        req,
        include_bytes!("../../core/src/zmtp/testdata/libzmq-req.bin")
    );
    let publish = |s: &zmq::Socket, tcp: &mut std::net::TcpStream| {
        use std::io::Write;
        tcp.write_all(b"\x04\x0d\x09SUBSCRIBEimu").unwrap();
        // libzmq applies the subscription on its I/O thread and the PUB drops until then:
        // publish until the first frame is on the wire (a non-blocking peek tells).
        tcp.set_nonblocking(true).unwrap();
        for _ in 0..500 {
            s.send("imu hello", 0).unwrap();
            if tcp.peek(&mut [0u8; 2]).is_ok_and(|n| n > 0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tcp.set_nonblocking(false).unwrap();
    };
    let pub_bytes = live_libzmq_bytes(zmq::PUB, "SUB", publish, 102);
    assert_eq!(
        pub_bytes,
        include_bytes!("../../core/src/zmtp/testdata/libzmq-pub.bin")
    );
}

/// A ZAP handler (RFC 27) on `ctx` that accepts only alice / wonderland, as the master's does.
fn zap_handler(ctx: &zmq::Context) -> thread::JoinHandle<()> {
    let zap = ctx.socket(zmq::REP).unwrap();
    zap.bind("inproc://zeromq.zap.01").unwrap();
    thread::spawn(move || {
        while let Ok(f) = zap.recv_multipart(0) {
            let ok = f.get(5).map(Vec::as_slice) == Some(b"PLAIN")
                && f.get(6).map(Vec::as_slice) == Some(b"alice")
                && f.get(7).map(Vec::as_slice) == Some(b"wonderland");
            let status: &[u8] = if ok { b"200" } else { b"400" };
            let user: &[u8] = if ok { b"alice" } else { b"" };
            let reply: Vec<&[u8]> = vec![b"1.0", &f[1], status, b"", user, b""];
            if zap.send_multipart(reply, 0).is_err() {
                return;
            }
        }
    })
}

#[test]
fn plain_against_libzmq_plain_servers_rep_xpub_and_sub() {
    let ctx = zmq::Context::new();
    let _zap = zap_handler(&ctx);
    let plain_server = |kind, domain: &str| {
        let s = ctx.socket(kind).unwrap();
        s.set_plain_server(true).unwrap();
        s.set_zap_domain(domain).unwrap();
        s.bind("tcp://127.0.0.1:*").unwrap();
        s.set_rcvtimeo(10_000).unwrap();
        s
    };
    // PLAIN servers standing in for the master: control (REP), subscriber port (XPUB) and
    // publisher port (SUB).
    let xpub = plain_server(zmq::XPUB, "sub:imu");
    let sub_server = plain_server(zmq::SUB, "pub:imu");
    sub_server.set_subscribe(b"imu").unwrap();
    let rep = plain_server(zmq::REP, "zerosmq");
    let (xpub_port, sub_port, rep_port) = (port_of(&xpub), port_of(&sub_server), port_of(&rep));
    let control = thread::spawn(move || {
        // Only authenticated requests reach the socket: the wrong password never gets here.
        let mut seen = Vec::new();
        for _ in 0..2 {
            let bytes = rep.recv_bytes(0).unwrap();
            let req = decode_request(&bytes).unwrap();
            let port = match req {
                ControlRequest::Subscribe { .. } => xpub_port,
                _ => sub_port,
            };
            let mut buf = [0u8; 64];
            let reply = ControlReply::Granted { port };
            rep.send(reply.encode(Encoding::of(&bytes), &mut buf).unwrap(), 0)
                .unwrap();
            seen.push(req);
        }
        seen
    });
    let tcp = stack();
    let master = SocketAddr::new(LOCALHOST.into(), rep_port);

    // A wrong password: the clear error, at once, from the control connection.
    let intruder = Node::new(&tcp, master, "mcu")
        .unwrap()
        .with_plain("alice", "guess")
        .unwrap();
    let mut buf = [0u8; 128];
    let started = std::time::Instant::now();
    assert!(matches!(
        intruder.subscribe("imu", &mut buf).map(|_| ()),
        Err(Error::AuthFailed { status: 400 })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));

    // The right one: grant, PLAIN subscriber connection, subscription, traffic.
    let node = Node::new(&tcp, master, "mcu")
        .unwrap()
        .with_plain("alice", "wonderland")
        .unwrap();
    let mut sub = node.subscribe("imu", &mut buf).unwrap();
    assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01imu");
    assert!(xpub.recv_bytes(0).unwrap()[1..].starts_with(READY_PROBE_PREFIX));
    xpub.send(&b"imu secret"[..], 0).unwrap();
    assert_eq!(sub.recv().unwrap(), b"secret");

    // A PLAIN publisher against the PLAIN SUB (in a thread: see the publisher test above).
    let embedded = thread::spawn(move || {
        let tcp = stack();
        let node = Node::new(&tcp, master, "mcu")
            .unwrap()
            .with_plain("alice", "wonderland")
            .unwrap();
        let mut buf = [0u8; 128];
        let mut publisher = node.advertise("imu", &mut buf).unwrap();
        publisher.wait_ready().unwrap();
        publisher.publish(b"signed").unwrap();
    });
    assert_eq!(sub_server.recv_bytes(0).unwrap(), b"imu signed");
    embedded.join().unwrap();
    assert!(matches!(
        &control.join().unwrap()[..],
        [
            ControlRequest::Subscribe { .. },
            ControlRequest::Publish { .. }
        ]
    ));
}

#[test]
fn recorded_plain_bytes_match_live_libzmq() {
    // The PLAIN fixtures (recorded from libzmq 4.3.5 by testdata/record-plain.py) are what this
    // libzmq (4.3.4) sends too: a PLAIN XPUB server accepting and refusing, a PLAIN REQ client.
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let mut client_greeting = [0u8; 64];
    client_greeting[..10].copy_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f]);
    client_greeting[10..17].copy_from_slice(b"\x03\x01PLAIN");
    let ctx = zmq::Context::new();
    let _zap = zap_handler(&ctx);
    let xpub = ctx.socket(zmq::XPUB).unwrap();
    xpub.set_plain_server(true).unwrap();
    xpub.set_zap_domain("test").unwrap();
    xpub.bind("tcp://127.0.0.1:*").unwrap();
    let port = port_of(&xpub);
    let server_side = |password: &[u8], len: usize| {
        let mut tcp = TcpStream::connect((LOCALHOST, port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(&client_greeting).unwrap();
        let mut got = vec![0u8; 64];
        tcp.read_exact(&mut got).unwrap();
        let mut hello = b"\x04\x00\x05HELLO\x05alice".to_vec();
        hello.push(password.len() as u8);
        hello.extend_from_slice(password);
        hello[1] = (hello.len() - 2) as u8;
        tcp.write_all(&hello).unwrap();
        let mut rest = vec![0u8; len - 64];
        if len > 75 {
            tcp.read_exact(&mut rest[..10]).unwrap(); // WELCOME
            tcp.write_all(b"\x04\x1c\x08INITIATE\x0bSocket-Type\x00\x00\x00\x03SUB")
                .unwrap();
            tcp.read_exact(&mut rest[10..]).unwrap();
        } else {
            tcp.read_exact(&mut rest).unwrap();
        }
        got.extend_from_slice(&rest);
        got
    };
    assert_eq!(
        server_side(b"wonderland", 102),
        include_bytes!("../../core/src/zmtp/testdata/libzmq-plain-xpub.bin")
    );
    assert_eq!(
        server_side(b"guess", 75),
        include_bytes!("../../core/src/zmtp/testdata/libzmq-plain-xpub-refused.bin")
    );

    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let req = ctx.socket(zmq::REQ).unwrap();
    req.set_plain_username(Some("alice")).unwrap();
    req.set_plain_password(Some("wonderland")).unwrap();
    req.connect(&format!(
        "tcp://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    ))
    .unwrap();
    let (mut tcp, _) = listener.accept().unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut server_greeting = client_greeting;
    server_greeting[32] = 1;
    tcp.write_all(&server_greeting).unwrap();
    let mut got = vec![0u8; 64 + 25];
    tcp.read_exact(&mut got).unwrap();
    tcp.write_all(b"\x04\x08\x07WELCOME").unwrap();
    let mut initiate = vec![0u8; 43];
    tcp.read_exact(&mut initiate).unwrap();
    got.extend_from_slice(&initiate);
    assert_eq!(
        got,
        include_bytes!("../../core/src/zmtp/testdata/libzmq-plain-req-client.bin")
    );
}
