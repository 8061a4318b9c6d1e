//! The master's topic ports against real libzmq sockets and raw ZMTP 3.0 peers over 127.0.0.1:
//! they must behave as libzmq's SUB and XPUB on the wire (versions, subscriptions and cancels,
//! multipart, PLAIN and the ACL on data ports, socket types). Every wait is on a message or a
//! monitor event, never a sleep; a ready probe (`zerosmq_core::message::READY_PROBE_PREFIX`)
//! proves a connection's earlier subscriptions have reached the master.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use zerosmq_tests::{raw_control, start_master, start_master_with, MasterConfig, WAIT};

/// The port a text grant (`REQUEST_PUB` / `REQUEST_SUB`) hands out.
fn grant(req: &zmq::Socket, request: &str) -> u16 {
    req.send(request.as_bytes(), 0).unwrap();
    let reply = String::from_utf8(req.recv_bytes(0).unwrap()).unwrap();
    assert!(reply.starts_with("REQUEST GRANT "), "{request}: {reply}");
    reply.rsplit(' ').next().unwrap().trim().parse().unwrap()
}

/// Publish and subscribe ports of `topic`, granted over `req` (nodes `p` and `s`).
fn grant_both(req: &zmq::Socket, topic: &str) -> (u16, u16) {
    (
        grant(req, &format!("REQUEST_PUB p {topic}")),
        grant(req, &format!("REQUEST_SUB s {topic}")),
    )
}

fn socket(ctx: &zmq::Context, kind: zmq::SocketType, port: u16) -> zmq::Socket {
    let s = ctx.socket(kind).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(WAIT.as_millis() as i32).unwrap();
    s.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    s
}

fn probe_bytes(nonce: &str) -> Vec<u8> {
    let mut p = zerosmq_core::message::READY_PROBE_PREFIX.to_vec();
    p.extend(nonce.as_bytes());
    p
}

/// Sends a ready probe from an XSUB (subscription message) and waits for its answer: the master
/// has then applied every subscription this connection sent before.
fn xsub_probe(xsub: &zmq::Socket, nonce: &str) {
    let probe = probe_bytes(nonce);
    let mut sub = vec![1u8];
    sub.extend(&probe);
    xsub.send(sub, 0).unwrap();
    loop {
        let m = xsub.recv_multipart(0).expect("probe answered");
        if m == [probe.clone()] {
            return;
        }
    }
}

/// The next message (all frames) as text.
fn next(s: &zmq::Socket) -> Vec<String> {
    s.recv_multipart(0)
        .expect("a message")
        .into_iter()
        .map(|f| String::from_utf8(f).unwrap())
        .collect()
}

/// A hand-written ZMTP peer that speaks 3.0 (libzmq always speaks 3.1).
struct Zmtp30 {
    s: TcpStream,
}

impl Zmtp30 {
    fn connect(port: u16, socket_type: &str) -> Zmtp30 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut greeting = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
        greeting.extend(b"NULL");
        greeting.resize(64, 0);
        s.write_all(&greeting).unwrap();
        let mut peer = Zmtp30 { s };
        let mut body = b"\x05READY\x0bSocket-Type".to_vec();
        body.extend((socket_type.len() as u32).to_be_bytes());
        body.extend(socket_type.as_bytes());
        peer.send(0x04, &body);
        let mut theirs = [0u8; 64];
        peer.s.read_exact(&mut theirs).unwrap();
        assert_eq!((theirs[0], theirs[10]), (0xff, 3), "a ZMTP 3 greeting");
        let (flags, ready) = peer.frame();
        assert_eq!(flags, 0x04);
        assert!(ready.starts_with(b"\x05READY"), "READY comes first");
        peer
    }

    fn send(&mut self, flags: u8, body: &[u8]) {
        let mut f = vec![flags, body.len() as u8];
        f.extend(body);
        self.s.write_all(&f).unwrap();
    }

    fn frame(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).unwrap();
        let len = if h[0] & 0x02 != 0 {
            let mut l = [0u8; 8];
            l[0] = h[1];
            self.s.read_exact(&mut l[1..]).unwrap();
            u64::from_be_bytes(l) as usize
        } else {
            usize::from(h[1])
        };
        let mut body = vec![0u8; len];
        self.s.read_exact(&mut body).unwrap();
        (h[0], body)
    }

    /// The next message, commands skipped.
    fn message(&mut self) -> Vec<String> {
        let mut frames = Vec::new();
        loop {
            let (flags, body) = self.frame();
            if flags & 0x04 != 0 {
                continue;
            }
            frames.push(String::from_utf8(body).unwrap());
            if flags & 0x01 == 0 {
                return frames;
            }
        }
    }
}

#[test]
fn zmtp_30_and_31_peers_interoperate_on_both_ports() {
    let master = start_master();
    let ctx = zmq::Context::new();
    let req = raw_control(&ctx, &master);
    let (pub_port, sub_port) = grant_both(&req, "t");

    // 3.1 subscriber (libzmq) and 3.0 subscriber (raw, subscription as a message).
    let sub31 = socket(&ctx, zmq::XSUB, sub_port);
    sub31.send(&b"\x01t"[..], 0).unwrap();
    xsub_probe(&sub31, "31");
    let mut sub30 = Zmtp30::connect(sub_port, "SUB");
    sub30.send(0, b"\x01t");
    let mut probe = vec![1u8];
    probe.extend(probe_bytes("30"));
    sub30.send(0, &probe);
    assert_eq!(
        sub30.message(),
        [String::from_utf8(probe_bytes("30")).unwrap()]
    );

    // 3.0 publisher: the master subscribes with the message form, 0x01 + topic.
    let mut pub30 = Zmtp30::connect(pub_port, "PUB");
    assert_eq!(pub30.frame(), (0, b"\x01t".to_vec()));
    pub30.send(0, b"x not this topic");
    pub30.send(0x01, b"t from 3.0");
    pub30.send(0, b"second part");
    // 3.1 publisher: an XPUB sees the master's subscription arrive.
    let pub31 = socket(&ctx, zmq::XPUB, pub_port);
    assert_eq!(pub31.recv_bytes(0).unwrap(), b"\x01t");
    pub31.send(&b"t from 3.1"[..], 0).unwrap();

    let expected = vec![
        vec!["t from 3.0".to_owned(), "second part".to_owned()],
        vec!["t from 3.1".to_owned()],
    ];
    let mut got31 = vec![next(&sub31), next(&sub31)];
    let mut got30 = vec![sub30.message(), sub30.message()];
    got31.sort();
    got30.sort();
    assert_eq!(got31, expected, "libzmq subscriber");
    assert_eq!(got30, expected, "ZMTP 3.0 subscriber");
}

#[test]
fn subscriptions_and_cancels_filter_each_connection() {
    let master = start_master();
    let ctx = zmq::Context::new();
    let req = raw_control(&ctx, &master);
    let (pub_port, sub_port) = grant_both(&req, "news");
    let publisher = socket(&ctx, zmq::XPUB, pub_port);
    assert_eq!(publisher.recv_bytes(0).unwrap(), b"\x01news");
    // XSUBs do no filtering of their own: what they get is the master's filtering.
    let a = socket(&ctx, zmq::XSUB, sub_port);
    let b = socket(&ctx, zmq::XSUB, sub_port);
    for s in ["\x01news/a", "\x01news/z"] {
        a.send(s.as_bytes(), 0).unwrap();
    }
    b.send(&b"\x01news/b"[..], 0).unwrap();
    xsub_probe(&a, "a1");
    xsub_probe(&b, "b1");
    let publish = |frames: &[&str]| publisher.send_multipart(frames.iter(), 0).unwrap();
    publish(&["news/a 1"]);
    publish(&["news/b 1"]);
    publish(&["news/c 1"]);
    publish(&["news/z 1", "tail"]);
    publish(&["news/b 2"]);
    assert_eq!(next(&a), ["news/a 1"]);
    assert_eq!(next(&a), ["news/z 1", "tail"]);
    assert_eq!(next(&b), ["news/b 1"]);
    assert_eq!(next(&b), ["news/b 2"]);

    // A libzmq XSUB counts its own subscriptions and only sends the last cancel.
    a.send(&b"\x01news/a"[..], 0).unwrap();
    a.send(&b"\x00news/a"[..], 0).unwrap();
    a.send(&b"\x00news/q"[..], 0).unwrap();
    xsub_probe(&a, "a2");
    publish(&["news/a 2"]);
    assert_eq!(next(&a), ["news/a 2"], "one subscription is left");
    a.send(&b"\x00news/a"[..], 0).unwrap();
    xsub_probe(&a, "a3");
    publish(&["news/a 3"]);
    publish(&["news/z 3"]);
    assert_eq!(next(&a), ["news/z 3"], "news/a was cancelled");

    // What reaches the master as is (a raw peer): a prefix subscribed twice on one
    // connection is one subscription there, as in libzmq's XPUB, and one cancel ends it.
    let mut raw = Zmtp30::connect(sub_port, "SUB");
    for change in [
        &b"\x01news/a"[..],
        b"\x01news/a",
        b"\x01news/z",
        b"\x00news/a",
    ] {
        raw.send(0, change);
    }
    let mut probe = vec![1u8];
    probe.extend(probe_bytes("raw"));
    raw.send(0, &probe);
    assert_eq!(
        raw.message(),
        [String::from_utf8(probe_bytes("raw")).unwrap()]
    );
    publish(&["news/a 4"]);
    publish(&["news/z 4"]);
    assert_eq!(
        raw.message(),
        ["news/z 4"],
        "duplicates are one subscription"
    );
}

fn security_files() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("zerosmq-data-ports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwords = dir.join("passwords");
    std::fs::write(&passwords, "alice:wonderland\nbob:builder\n").unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user alice\ntopic readwrite t\nuser bob\ntopic read t\n",
    )
    .unwrap();
    (passwords, acl)
}

/// How a connection's handshake ended, from the socket monitor: 0 for success, else the
/// failure event (`ZMQ_EVENT_HANDSHAKE_FAILED_*`, or `ZMQ_EVENT_DISCONNECTED` when the master
/// closed the connection without a word, as libzmq does for a wrong socket type).
fn handshake_outcome(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    port: u16,
    credentials: Option<(&str, &str)>,
    tag: &str,
) -> u16 {
    let s = ctx.socket(kind).unwrap();
    s.set_linger(0).unwrap();
    if let Some((user, password)) = credentials {
        s.set_plain_username(Some(user)).unwrap();
        s.set_plain_password(Some(password)).unwrap();
    }
    let endpoint = format!("inproc://monitor-{tag}");
    let succeeded = zmq::SocketEvent::HANDSHAKE_SUCCEEDED.to_raw();
    let failed = [
        zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL.to_raw(),
        zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL.to_raw(),
        zmq::SocketEvent::HANDSHAKE_FAILED_AUTH.to_raw(),
        zmq::SocketEvent::DISCONNECTED.to_raw(),
    ];
    s.monitor(&endpoint, zmq::SocketEvent::ALL.to_raw() as i32)
        .unwrap();
    let monitor = ctx.socket(zmq::PAIR).unwrap();
    monitor.set_rcvtimeo(WAIT.as_millis() as i32).unwrap();
    monitor.connect(&endpoint).unwrap();
    s.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    loop {
        let event = monitor
            .recv_multipart(0)
            .unwrap_or_else(|e| panic!("{tag}: no handshake outcome: {e}"));
        let id = u16::from_ne_bytes([event[0][0], event[0][1]]);
        if id == succeeded {
            return 0;
        }
        if failed.contains(&id) {
            return id;
        }
    }
}

#[test]
fn plain_and_the_acl_guard_the_data_ports() {
    let auth = zmq::SocketEvent::HANDSHAKE_FAILED_AUTH.to_raw();
    let (passwords, acl) = security_files();
    let master = start_master_with(MasterConfig {
        passwords: Some(passwords),
        acl: Some(acl),
        ..Default::default()
    });
    let ctx = zmq::Context::new();
    let req = ctx.socket(zmq::REQ).unwrap();
    req.set_linger(0).unwrap();
    req.set_rcvtimeo(WAIT.as_millis() as i32).unwrap();
    req.set_plain_username(Some("alice")).unwrap();
    req.set_plain_password(Some("wonderland")).unwrap();
    req.connect(&master.control_endpoint()).unwrap();
    let (pub_port, sub_port) = grant_both(&req, "t");
    let alice = Some(("alice", "wonderland"));
    let bob = Some(("bob", "builder"));
    assert_eq!(
        handshake_outcome(&ctx, zmq::PUB, pub_port, alice, "alice-pub"),
        0,
    );
    assert_eq!(
        handshake_outcome(&ctx, zmq::SUB, sub_port, bob, "bob-sub"),
        0,
    );
    assert_eq!(
        handshake_outcome(&ctx, zmq::PUB, pub_port, bob, "bob-pub"),
        auth,
        "bob may not publish"
    );
    assert_eq!(
        handshake_outcome(
            &ctx,
            zmq::SUB,
            sub_port,
            Some(("bob", "wrong")),
            "bob-wrong"
        ),
        auth,
        "wrong password"
    );
    assert_ne!(
        handshake_outcome(&ctx, zmq::SUB, sub_port, None, "null"),
        0,
        "no credentials (NULL) on a PLAIN port"
    );
}

#[test]
fn peers_of_the_wrong_socket_type_are_refused() {
    let master = start_master();
    let ctx = zmq::Context::new();
    let req = raw_control(&ctx, &master);
    let (pub_port, sub_port) = grant_both(&req, "t");
    let tag = |t: &str| format!("type-{t}");
    for (kind, port, name) in [
        (zmq::PUB, sub_port, "pub-on-sub-port"),
        (zmq::SUB, pub_port, "sub-on-pub-port"),
        (zmq::PUSH, pub_port, "push"),
    ] {
        assert_ne!(
            handshake_outcome(&ctx, kind, port, None, &tag(name)),
            0,
            "{name}"
        );
    }
    assert_eq!(
        handshake_outcome(&ctx, zmq::XPUB, pub_port, None, &tag("xpub")),
        0
    );
    assert_eq!(
        handshake_outcome(&ctx, zmq::XSUB, sub_port, None, &tag("xsub")),
        0
    );
}
