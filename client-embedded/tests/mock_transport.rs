//! The blocking node against a scripted mock stack: recorded libzmq bytes fed in fragments down
//! to one byte, every byte the node writes checked, writes failed on demand.

mod mock;

use embedded_io::ErrorKind;
use mock::{MockError, MockStack, Shared, MASTER};
use zerosmq_embedded::{Error, Node};

const REP: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-rep.bin");
const SUB_V31: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-sub-v31.bin");
const SUB_V30: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-sub-v30.bin");
const XPUB: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-xpub.bin");
const REQ: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-req.bin");
/// Greeting as this codec sends it.
fn our_greeting() -> [u8; 64] {
    zerosmq_core::zmtp::Greeting::ours().to_bytes()
}

/// What our REQ writes: greeting, READY (REQ, empty Identity), delimiter and request.
fn req_bytes(request: &[u8]) -> Vec<u8> {
    let mut v = our_greeting().to_vec();
    v.extend_from_slice(&REQ[64..104]);
    v.extend_from_slice(&[0x01, 0x00, 0x00, request.len() as u8]);
    v.extend_from_slice(request);
    v
}

fn with_len(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.push(body.len() as u8);
    v.extend_from_slice(body);
    v
}

#[test]
fn publisher_handshake_subscription_and_publish_in_every_fragmentation() {
    for (chunk, sub_stream) in [(1, SUB_V31), (2, SUB_V30), (5, SUB_V31), (4096, SUB_V30)] {
        let stack = MockStack::new(chunk);
        let control = stack.script(REP, None);
        let data = stack.script(sub_stream, None);
        let node = Node::new(&stack, MASTER, "n").unwrap();
        let mut buf = [0u8; 128];
        let mut publisher = node.advertise("imu", &mut buf).unwrap();
        assert!(!publisher.is_ready());
        publisher.wait_ready().unwrap();
        assert!(publisher.is_ready());
        publisher.publish(b"hello").unwrap();

        assert_eq!(control.borrow().written, req_bytes(b"REQUEST_PUB n imu"));
        assert_eq!(data.borrow().remote.unwrap().port(), 6000);
        let mut want = our_greeting().to_vec();
        want.extend_from_slice(&with_len(
            b"\x04",
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB",
        ));
        want.extend_from_slice(b"\x00\x09imu hello");
        assert_eq!(data.borrow().written, want, "chunk {chunk}");
    }
}

#[test]
fn publisher_reconnects_with_a_fresh_grant_when_writes_fail() {
    let stack = MockStack::new(3);
    stack.script(REP, None);
    // Handshake (64 + 27 bytes) succeeds, the data write fails: the master went away.
    let broken = stack.script(SUB_V31, Some(64 + 27));
    let control2 = stack.script(REP, None);
    let data2 = stack.script(SUB_V31, None);
    let node = Node::new(&stack, MASTER, "n").unwrap();
    let mut buf = [0u8; 128];
    let mut publisher = node.advertise("imu", &mut buf).unwrap();
    publisher.wait_ready().unwrap();
    publisher.publish(b"x").unwrap();
    assert_eq!(broken.borrow().written.len(), 64 + 27);
    assert_eq!(control2.borrow().written, req_bytes(b"REQUEST_PUB n imu"));
    assert!(data2.borrow().written.ends_with(b"\x00\x05imu x"));
    // No master at all: the error comes back, and a later call tries again.
    let stack = MockStack::new(64);
    let node = Node::new(&stack, MASTER, "n").unwrap();
    let mut buf = [0u8; 128];
    assert!(matches!(
        node.advertise("imu", &mut buf),
        Err(Error::Transport(MockError(ErrorKind::ConnectionRefused)))
    ));
}

fn sub_opening(stack: &MockStack) -> (Shared, Shared) {
    let control = stack.script(REP, None);
    // XPUB greeting and READY only; messages are appended by the test once the probe is known.
    let data = stack.script(&XPUB[..64 + 28], None);
    (control, data)
}

#[test]
fn subscriber_probe_messages_oversized_frames_in_every_fragmentation() {
    for chunk in [1, 3, 64, 4096] {
        let stack = MockStack::new(chunk);
        let (control, data) = sub_opening(&stack);
        let node = Node::new(&stack, MASTER, "n").unwrap();
        let mut buf = [0u8; 64];
        let mut sub = node.subscribe("imu", &mut buf).unwrap();
        let probe = sub.probe().to_vec();
        assert_eq!(probe.len(), zerosmq_embedded::PROBE_LEN);
        {
            let mut d = data.borrow_mut();
            // A message on the topic before the probe, the probe echo, then traffic.
            d.input.extend(b"\x00\x05imu 0");
            d.input.extend(with_len(b"\x00", &probe));
            d.input.extend(b"\x00\x09imu hello");
            d.input.extend(b"\x00\x05imu2x"); // another topic sharing the prefix: ignored
            d.input.extend([0x01, 0x01, b'x', 0x00, 0x01, b'y']); // multipart: ignored
            d.input.extend([0x00, 100]);
            d.input.extend([b'z'; 100]); // longer than the buffer: skipped, reported
            d.input.extend(b"\x04\x09\x04PING\x00\x01ab"); // answered with PONG
            d.input.extend(b"\x00\x05imu 2");
        }
        sub.wait_ready().unwrap();
        assert!(sub.is_ready());
        assert_eq!(sub.recv().unwrap(), b"hello");
        assert_eq!(
            sub.recv(),
            Err(Error::FrameTooLarge {
                len: 100,
                capacity: 64
            })
        );
        assert_eq!(sub.recv().unwrap(), b"2");

        assert_eq!(control.borrow().written, req_bytes(b"REQUEST_SUB n imu"));
        let mut want = our_greeting().to_vec();
        want.extend_from_slice(&XPUB[..0]);
        want.extend_from_slice(&with_len(
            b"\x04",
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x03SUB",
        ));
        want.extend_from_slice(b"\x04\x0d\x09SUBSCRIBEimu");
        want.extend_from_slice(&with_len(b"\x04", &[b"\x09SUBSCRIBE", &probe[..]].concat()));
        want.extend_from_slice(&with_len(b"\x04", &[b"\x06CANCEL", &probe[..]].concat()));
        want.extend_from_slice(b"\x04\x07\x04PONGab");
        assert_eq!(data.borrow().written, want, "chunk {chunk}");
    }
}

#[test]
fn subscriber_reconnects_when_the_master_restarts() {
    let stack = MockStack::new(7);
    let (_, data) = sub_opening(&stack);
    let (control2, data2) = sub_opening(&stack);
    let node = Node::new(&stack, MASTER, "n").unwrap();
    let mut buf = [0u8; 64];
    let mut sub = node.subscribe("imu", &mut buf).unwrap();
    data.borrow_mut().input.extend(b"\x00\x05imu 1");
    assert_eq!(sub.recv().unwrap(), b"1");
    // The first connection ends (EOF): recv asks for a new grant and subscribes again.
    data2.borrow_mut().input.extend(b"\x00\x05imu 2");
    assert_eq!(sub.recv().unwrap(), b"2");
    assert_eq!(control2.borrow().written, req_bytes(b"REQUEST_SUB n imu"));
    assert!(data2.borrow().written.len() > 64 + 27);
    // Nothing left to connect to: the error surfaces, nothing panics.
    assert!(matches!(sub.recv(), Err(Error::Transport(_))));
}

#[test]
fn control_requests_and_refusals() {
    let stack = MockStack::new(2);
    let mut reply = REP[..91].to_vec();
    reply.extend(b"\x01\x00");
    reply.extend(with_len(b"\x00", b"ERROR unknown-topic: no such topic"));
    stack.script(&reply, None);
    stack.script(&REP[..91], Some(64)); // the READY write fails
    let mut garbage = REP[..91].to_vec();
    garbage.extend(b"\x00\x01x"); // a body without the delimiter
    stack.script(&garbage, None);
    let mut bad_greeting = REP.to_vec();
    bad_greeting[0] = 0;
    stack.script(&bad_greeting, None);

    let node = Node::new(&stack, MASTER, "n").unwrap();
    let mut buf = [0u8; 128];
    let req = zerosmq_embedded::ControlRequest::TopicInfo {
        topic: zerosmq_core::Topic::new("nope").unwrap(),
    };
    assert_eq!(
        node.request(&req, &mut buf),
        Err(Error::Refused(zerosmq_embedded::ErrorCode::UnknownTopic))
    );
    assert!(matches!(
        node.request(&req, &mut buf),
        Err(Error::Transport(MockError(ErrorKind::BrokenPipe)))
    ));
    assert_eq!(node.request(&req, &mut buf), Err(Error::BadReply));
    assert!(matches!(
        node.request(&req, &mut buf),
        Err(Error::Protocol(_))
    ));
    assert!(Node::new(&stack, MASTER, "bad name").is_err());
}

#[test]
fn publisher_poll_answers_pings_without_blocking() {
    for chunk in [1, 64] {
        let stack = MockStack::new(chunk);
        stack.script(REP, None);
        let data = stack.script(SUB_V31, None);
        let node = Node::new(&stack, MASTER, "n").unwrap();
        let mut buf = [0u8; 128];
        let mut publisher = node.advertise("imu", &mut buf).unwrap();
        publisher.wait_ready().unwrap();
        // Nothing to read: returns at once.
        publisher.poll().unwrap();
        // A PING alone (no event follows): answered, and poll returns instead of waiting.
        let ping = b"\x04\x09\x04PING\x00\x14ab";
        data.borrow_mut().input.extend(ping);
        publisher.poll().unwrap();
        assert!(data.borrow().written.ends_with(b"\x04\x07\x04PONGab"));
        assert!(publisher.is_ready());
        data.borrow_mut().input.extend(b"\x04\x0a\x06CANCELimu");
        publisher.poll().unwrap();
        assert!(
            !publisher.is_ready(),
            "the master cancelled its subscription"
        );
    }
}

/// A PLAIN server's side: its greeting (PLAIN, as-server), WELCOME, then `rest` (what a NULL
/// peer sends after its greeting: READY and traffic).
fn plain_server(rest: &[u8]) -> Vec<u8> {
    let mut g = zerosmq_core::zmtp::Greeting::ours_with(b"PLAIN");
    g.as_server = true;
    let mut v = g.to_bytes().to_vec();
    v.extend_from_slice(b"\x04\x08\x07WELCOME");
    v.extend_from_slice(rest);
    v
}

/// What our PLAIN client writes before its traffic: greeting, HELLO, INITIATE.
fn plain_client(socket_type: &[u8]) -> Vec<u8> {
    let mut v = zerosmq_core::zmtp::Greeting::ours_with(b"PLAIN")
        .to_bytes()
        .to_vec();
    v.extend_from_slice(b"\x04\x17\x05HELLO\x05alice\x0awonderland");
    let mut meta = b"\x08INITIATE\x0bSocket-Type\x00\x00\x00".to_vec();
    meta.extend_from_slice(&with_len(b"", socket_type));
    if socket_type == b"REQ" {
        meta.extend_from_slice(b"\x08Identity\x00\x00\x00\x00");
    }
    v.extend_from_slice(&with_len(b"\x04", &meta));
    v
}

#[test]
fn plain_node_authenticates_every_connection_in_every_fragmentation() {
    for chunk in [1, 2, 7, 4096] {
        let stack = MockStack::new(chunk);
        let control = stack.script(&plain_server(&REP[64..]), None);
        let data = stack.script(&plain_server(&SUB_V31[64..]), None);
        let node = Node::new(&stack, MASTER, "n")
            .unwrap()
            .with_plain("alice", "wonderland")
            .unwrap();
        let mut buf = [0u8; 128];
        let mut publisher = node.advertise("imu", &mut buf).unwrap();
        publisher.wait_ready().unwrap();
        publisher.publish(b"hello").unwrap();

        let mut want = plain_client(b"REQ");
        want.extend_from_slice(&req_bytes(b"REQUEST_PUB n imu")[64 + 40..]);
        assert_eq!(control.borrow().written, want, "chunk {chunk}");
        let mut want = plain_client(b"PUB");
        want.extend_from_slice(b"\x00\x09imu hello");
        assert_eq!(data.borrow().written, want, "chunk {chunk}");
    }
}

#[test]
fn plain_refusal_is_auth_failed_once_not_a_hang_or_a_retry_loop() {
    // libzmq 4.3.5's answer to a wrong password (recorded): greeting, then ERROR "400".
    let refused: &[u8] =
        include_bytes!("../../core/src/zmtp/testdata/libzmq-plain-xpub-refused.bin");
    for chunk in [1, 5, 4096] {
        let stack = MockStack::new(chunk);
        let control = stack.script(refused, None);
        let spare = stack.script(REP, None);
        let node = Node::new(&stack, MASTER, "n")
            .unwrap()
            .with_plain("alice", "guess")
            .unwrap();
        let mut buf = [0u8; 128];
        assert_eq!(
            node.subscribe("imu", &mut buf).map(|_| ()),
            Err(Error::AuthFailed { status: 400 })
        );
        assert!(control
            .borrow()
            .written
            .starts_with(&zerosmq_core::zmtp::Greeting::ours_with(b"PLAIN").to_bytes()));
        assert!(spare.borrow().written.is_empty(), "no second connection");
    }
    // Credentials that do not fit PLAIN are refused when configured.
    let long: &'static str = Box::leak("x".repeat(256).into_boxed_str());
    assert!(Node::new(&MockStack::new(1), MASTER, "n")
        .unwrap()
        .with_plain(long, "p")
        .is_err());
}

/// A clock the test moves by hand.
#[cfg(feature = "clock")]
struct TestClock(std::sync::atomic::AtomicU64);

#[cfg(feature = "clock")]
impl zerosmq_embedded::Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(feature = "clock")]
#[test]
fn publisher_with_a_clock_sends_the_heartbeat_when_due_and_only_then() {
    use std::sync::atomic::Ordering;
    static CLOCK: TestClock = TestClock(std::sync::atomic::AtomicU64::new(1_000));
    let stack = MockStack::new(5);
    stack.script(REP, None);
    let data = stack.script(SUB_V31, None);
    let beat = stack.script(REP, None); // the reply is a grant, not ALIVE: logged, not returned
    let node = Node::new(&stack, MASTER, "n")
        .unwrap()
        .with_clock(&CLOCK, 500);
    let mut buf = [0u8; 128];
    let mut publisher = node.advertise("imu", &mut buf).unwrap();
    publisher.wait_ready().unwrap();
    publisher.publish(b"1").unwrap(); // due at once: the first heartbeat
    CLOCK.0.fetch_add(499, Ordering::Relaxed);
    publisher.publish(b"2").unwrap(); // not due: no connection is opened
    assert_eq!(stack.opened.borrow().len(), 3);
    let written = beat.borrow().written.clone();
    assert!(
        written.windows(12).any(|w| w == b"HEARTBEAT n "),
        "no heartbeat request in {written:?}"
    );
    assert!(data.borrow().written.ends_with(b"\x00\x05imu 2"));
    CLOCK.0.fetch_add(1, Ordering::Relaxed);
    // Due again: a fourth connection is asked for, refused (no script), logged; publish goes on.
    publisher.publish(b"3").unwrap();
    assert!(data.borrow().written.ends_with(b"\x00\x05imu 3"));
}
