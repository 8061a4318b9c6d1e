//! Bad input on every socket of the master: each gets an error reply (or is dropped with a log
//! line), and a real publisher/subscriber pair keeps exchanging messages throughout, none lost.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use zerosmq_tests::{node, raw_control, raw_request, start_master, MasterHandle, WAIT};

/// A publisher/subscriber pair that proves the master still forwards, message by message.
struct Witness {
    publisher: zerosmq::Publisher,
    subscriber: zerosmq::Subscriber,
    seq: u32,
}

impl Witness {
    fn new(master: &MasterHandle) -> (Witness, zerosmq::Node) {
        let n = node(master, "witness");
        let mut publisher = n.advertise("heartbeat").unwrap();
        let mut subscriber = n.subscribe("heartbeat").unwrap();
        publisher.wait_ready(WAIT).unwrap();
        subscriber.wait_ready(WAIT).unwrap();
        (
            Witness {
                publisher,
                subscriber,
                seq: 0,
            },
            n,
        )
    }

    /// One message through the master, which must arrive unchanged and in order.
    fn check(&mut self, after: &str) {
        self.seq += 1;
        let payload = format!("beat {}", self.seq);
        self.publisher.publish(payload.as_bytes()).unwrap();
        let got = self.subscriber.recv_timeout(WAIT).unwrap();
        let got = got.unwrap_or_else(|| panic!("message lost after {after}"));
        assert_eq!(got.payload(), payload.as_bytes(), "after {after}");
    }
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

#[test]
fn malformed_control_requests_get_error_replies() {
    let master = start_master();
    let (mut witness, _n) = Witness::new(&master);
    let ctx = zmq::Context::new();
    let req = raw_control(&ctx, &master);
    let long_topic = format!("REQUEST_PUB n {}", "t".repeat(1000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage bytes",
            b"\x01\x02\x03garbage\x00\x7f".to_vec(),
            "ERROR bad-request: expected 3 words",
        ),
        (
            "empty frame",
            Vec::new(),
            "ERROR bad-request: empty message",
        ),
        (
            "one word",
            b"REQUEST_PUB".to_vec(),
            "ERROR bad-request: expected 3 words",
        ),
        (
            "four words",
            b"REQUEST_PUB node my topic".to_vec(),
            "ERROR bad-request: expected 3 words",
        ),
        (
            "unknown command",
            b"HELLO node topic".to_vec(),
            "ERROR unknown-command: unknown command 'HELLO'",
        ),
        (
            "10 MB request",
            vec![b'A'; 10_000_000],
            "ERROR too-large: message is 10000000 bytes",
        ),
        (
            "invalid UTF-8",
            b"REQUEST_PUB n\xc3\x28 t".to_vec(),
            "ERROR bad-request: text is not valid UTF-8",
        ),
        (
            "topic with a tab",
            b"REQUEST_SUB n a\tb".to_vec(),
            "ERROR invalid-name: invalid topic name",
        ),
        (
            "topic with a comma",
            b"REQUEST_PUB n a,b".to_vec(),
            "ERROR invalid-name: invalid topic name",
        ),
        (
            "1,000-byte topic",
            long_topic.into_bytes(),
            "ERROR too-large: message is 1014 bytes",
        ),
        (
            "70-byte topic",
            format!("REQUEST_PUB n {}", "t".repeat(70)).into_bytes(),
            "ERROR invalid-name: invalid topic name: name is 70 bytes long, the limit is 64",
        ),
        (
            "node name with a quote",
            b"REQUEST_PUB a\"b t".to_vec(),
            "ERROR invalid-name: invalid node name",
        ),
        (
            "lower-case command",
            b"request_pub n t".to_vec(),
            "ERROR unknown-command",
        ),
        (
            "trailing newline",
            b"REQUEST_PUB n t\n".to_vec(),
            "ERROR invalid-name: invalid topic name",
        ),
    ];
    for (what, bytes, expected) in cases {
        let reply = text(&raw_request(&req, &bytes));
        assert!(reply.starts_with(expected), "{what}: got {reply:?}");
        witness.check(what);
    }
    // A multipart request: the REP socket must read it whole and still answer once.
    req.send_multipart([&b"REQUEST_PUB"[..], b"n t"], 0)
        .unwrap();
    let reply = text(&req.recv_bytes(0).unwrap());
    assert_eq!(
        reply,
        "ERROR bad-request: a control request is one frame, this one had 2"
    );
    witness.check("multipart request");
    // Binary garbage is answered in binary: marker byte first, then an error the client decodes.
    for (what, bytes) in [
        ("bad version", &b"\xff\x09"[..]),
        ("bad body", b"\xff\x01\x63\x00\x00"),
        ("marker only", b"\xff"),
    ] {
        let reply = raw_request(&req, bytes);
        assert_eq!(reply.first(), Some(&0xff), "{what}");
        let decoded = zerosmq_core::decode_reply(zerosmq_core::ReplyKind::Granted, &reply).unwrap();
        assert!(
            matches!(decoded, zerosmq_core::ControlReply::Error(_)),
            "{what}: {decoded:?}"
        );
        witness.check(what);
    }
    println!(
        "{} malformed control requests answered with errors, witness lost nothing",
        witness.seq
    );
    // The control socket is not wedged: a valid request still works.
    assert!(text(&raw_request(&req, b"REQUEST_PUB n t")).starts_with("REQUEST GRANT "));
}

/// The ZMTP 3.0 greeting of a NULL-mechanism client.
fn zmtp_greeting() -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    let mut mechanism = b"NULL".to_vec();
    mechanism.resize(20, 0);
    g.extend(mechanism);
    g.push(0);
    g.resize(64, 0);
    g
}

/// A READY command announcing `socket_type`.
fn zmtp_ready(socket_type: &str) -> Vec<u8> {
    let mut body = b"\x05READY\x0bSocket-Type".to_vec();
    body.extend((socket_type.len() as u32).to_be_bytes());
    body.extend(socket_type.as_bytes());
    let mut cmd = vec![0x04, body.len() as u8];
    cmd.extend(body);
    cmd
}

/// Raw TCP peers that stop, lie or babble, on the control port and on a topic's data ports.
#[test]
fn peers_that_disconnect_mid_request_or_send_garbage_do_no_harm() {
    let master = start_master();
    let (mut witness, n) = Witness::new(&master);
    let info = n.topic_info("heartbeat").unwrap();
    let ports = [
        ("control", master.control_port()),
        ("publish", info.publish_port),
        ("subscribe", info.subscribe_port),
    ];
    for (name, port) in ports {
        // Sends `bytes`; with `refused`, waits until the master drops the connection, which
        // proves it has read and rejected them. Otherwise dropping closes it mid-stream.
        let raw_peer = |bytes: &[u8], refused: bool| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(bytes).unwrap();
            if refused {
                s.set_read_timeout(Some(WAIT)).unwrap();
                let mut sink = [0u8; 256];
                loop {
                    match s.read(&mut sink) {
                        Ok(0) => break,
                        Ok(_) => continue, // the master's own greeting
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                        Err(e) => panic!("{name}: the master kept a garbage peer: {e}"),
                    }
                }
            }
        };
        let raw = |bytes: &[u8]| raw_peer(bytes, false);
        raw(b"");
        witness.check(&format!("{name}: connect and close"));
        raw(&zmtp_greeting()[..30]);
        witness.check(&format!("{name}: half a greeting"));
        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        raw_peer(&random, true);
        witness.check(&format!("{name}: random bytes"));
        let mut greeting_then_garbage = zmtp_greeting();
        greeting_then_garbage.extend(&random[..512]);
        raw_peer(&greeting_then_garbage, true);
        witness.check(&format!("{name}: greeting then garbage"));
        let mut mid_frame = zmtp_greeting();
        mid_frame.extend(zmtp_ready(if name == "control" {
            "REQ"
        } else if name == "publish" {
            "PUB"
        } else {
            "SUB"
        }));
        mid_frame.extend([0x00, 100]); // a 100-byte frame...
        mid_frame.extend(b"REQUEST_PU"); // ...of which 10 bytes arrive
        raw(&mid_frame);
        witness.check(&format!("{name}: disconnect mid-frame"));
        let mut oversize = zmtp_greeting();
        oversize.extend(zmtp_ready(if name == "control" { "REQ" } else { "PUB" }));
        oversize.extend([0x02]);
        oversize.extend(u64::MAX.to_be_bytes()); // a frame claiming 2^64-1 bytes
        raw_peer(&oversize, true);
        witness.check(&format!("{name}: absurd frame length"));
    }
    // A control client that vanishes after sending a request: its reply is dropped and the
    // socket serves the next client.
    {
        let ctx = zmq::Context::new();
        let gone = raw_control(&ctx, &master);
        gone.send(&b"REQUEST_MAP null null"[..], 0).unwrap();
    }
    let ctx = zmq::Context::new();
    let req = raw_control(&ctx, &master);
    assert!(text(&raw_request(&req, b"LIST_ALL_TOPICS n null")).contains("heartbeat"));
    witness.check("vanished control client");
    println!(
        "{} raw peers (garbage, cut greetings and frames, absurd lengths) on 3 ports, witness lost nothing",
        witness.seq
    );
}
