//! The async node's own timers (feature `embassy-time`, with embassy-time's std driver): the
//! heartbeat is sent from publisher and subscriber calls when due and only then, a subscriber
//! waiting in `recv` sends it too, and `publish` answers the PINGs that have arrived first.
#![cfg(feature = "embassy-time")]

mod mock;

use embassy_time::{Duration, Instant};
use mock::{block_on, MockStack, MASTER};
use zerosmq_embedded::asynch::Node;

const REP: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-rep.bin");
const SUB_V31: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-sub-v31.bin");
const XPUB: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-xpub.bin");

fn has_heartbeat(written: &[u8]) -> bool {
    written.windows(12).any(|w| w == b"HEARTBEAT n ")
}

#[test]
fn publish_sends_the_heartbeat_when_due_and_answers_pings_first() {
    for chunk in [1, 7, 4096] {
        let stack = MockStack::new(chunk);
        stack.script(REP, None);
        let data = stack.script(SUB_V31, None);
        let beat = stack.script(REP, None); // the reply is a grant, not ALIVE: logged, not returned
        let node = Node::new(&stack, MASTER, "n")
            .unwrap()
            .with_heartbeat(Duration::from_secs(3600));
        let mut buf = [0u8; 128];
        block_on(async {
            let mut publisher = node.advertise("imu", &mut buf).await.unwrap();
            publisher.wait_ready().await.unwrap();
            // wait_ready was the first call: the heartbeat went out then, on its own connection.
            assert_eq!(stack.opened.borrow().len(), 3);
            assert!(has_heartbeat(&beat.borrow().written));
            // A PING has arrived: publish answers it before the message, and opens nothing.
            data.borrow_mut()
                .input
                .extend(b"\x04\x09\x04PING\x00\x14ab");
            publisher.publish(b"1").await.unwrap();
            publisher.publish(b"2").await.unwrap();
            assert_eq!(
                stack.opened.borrow().len(),
                3,
                "a heartbeat before it was due"
            );
        });
        let written = data.borrow().written.clone();
        let pong = written
            .windows(9)
            .position(|w| w == b"\x04\x07\x04PONGab")
            .expect("no PONG");
        let first = written
            .windows(7)
            .position(|w| w == b"\x00\x05imu 1")
            .expect("no message");
        assert!(pong < first, "PONG after the message");
        assert!(written.ends_with(b"\x00\x05imu 2"));
    }
}

#[test]
fn publish_notices_a_closed_connection_and_reconnects_before_sending() {
    let stack = MockStack::new(4096);
    stack.script(REP, None);
    let closed = stack.script(SUB_V31, None);
    stack.script(REP, None);
    let data = stack.script(SUB_V31, None);
    let node = Node::new(&stack, MASTER, "n").unwrap();
    let mut buf = [0u8; 128];
    block_on(async {
        let mut publisher = node.advertise("imu", &mut buf).await.unwrap();
        publisher.wait_ready().await.unwrap();
        closed.borrow_mut().closed = true;
        // The master closed the connection (EOF once the script is read): the drain sees it,
        // so the message goes to the new connection instead of into a dead socket.
        publisher.publish(b"1").await.unwrap();
    });
    assert!(!closed.borrow().written.ends_with(b"\x00\x05imu 1"));
    assert!(data.borrow().written.ends_with(b"\x00\x05imu 1"));
}

#[test]
fn a_subscriber_waiting_in_recv_sends_the_heartbeat_on_time() {
    let stack = MockStack::new(4096);
    stack.script(REP, None);
    let sub = stack.script(&XPUB[..64 + 28], None);
    sub.borrow_mut().hold_open = true;
    let beats: Vec<_> = (0..3).map(|_| stack.script(REP, None)).collect();
    let node = Node::new(&stack, MASTER, "n")
        .unwrap()
        .with_heartbeat(Duration::from_millis(50));
    let mut buf = [0u8; 64];
    let started = Instant::now();
    block_on(async {
        let mut subscriber = node.subscribe("imu", &mut buf).await.unwrap();
        // Nothing arrives: recv waits, and sends a heartbeat every 50 ms meanwhile (three
        // fall due within 120 ms: at once, at 50 and at 100 ms).
        let waited =
            embassy_time::with_timeout(Duration::from_millis(120), subscriber.recv()).await;
        assert!(waited.is_err(), "recv returned {waited:?}");
    });
    assert!(started.elapsed() >= Duration::from_millis(120));
    for (i, beat) in beats.iter().enumerate() {
        assert!(
            has_heartbeat(&beat.borrow().written),
            "heartbeat {i} missing"
        );
    }
}
