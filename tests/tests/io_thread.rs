//! The std node's I/O thread (issue 15): its timers run while the application is away, and
//! dropping a publisher from another thread while messages are in flight neither hangs nor
//! tears the stream. (Its PING answers for an idle publisher: `std_native_path.rs`; reconnect
//! after a master restart: `master_restart.rs`.)

use std::time::{Duration, Instant};

use zerosmq_master::MasterConfig;
use zerosmq_tests::{node, start_master_with, WAIT};

/// Heartbeats come from the node's I/O thread: a node whose application thread sleeps in a
/// long computation (three node timeouts) stays listed, and its publisher stays registered.
#[test]
fn heartbeats_keep_a_node_alive_while_its_application_sleeps() {
    let master = start_master_with(MasterConfig {
        node_timeout: Duration::from_millis(1500),
        ..Default::default()
    });
    let busy = node(&master, "busy");
    let mut out = busy.advertise("work").unwrap();
    out.wait_ready(WAIT).unwrap();
    let observer = node(&master, "observer");
    assert!(observer.nodes().unwrap().contains(&"busy".to_owned()));
    // The application is away: no call into the library for 4.5 s.
    std::thread::sleep(Duration::from_millis(4500));
    let nodes = observer.nodes().unwrap();
    assert!(nodes.contains(&"busy".to_owned()), "{nodes:?}");
    let info = observer.topic_info("work").unwrap();
    assert_eq!(info.publishers, vec!["busy".to_owned()]);
    // And the path still works without a new wait.
    let mut sub = observer.subscribe("work").unwrap();
    sub.wait_ready(WAIT).unwrap();
    out.publish(b"done").unwrap();
    let msg = sub.recv_timeout(WAIT).unwrap().expect("the message");
    assert_eq!(msg.payload(), b"done");
}

/// A publisher dropped on another thread while a burst is still being written: the drop
/// returns within its linger, the subscriber sees an in-order prefix of whole messages (no torn
/// frame), and the master forgets the publisher.
#[test]
fn dropping_a_publisher_from_another_thread_mid_burst_neither_hangs_nor_tears() {
    let master = start_master_with(MasterConfig::default());
    let talker = node(&master, "burst");
    let listener = node(&master, "sink");
    let mut sub = listener.subscribe("burst").unwrap();
    let mut publisher = talker.advertise("burst").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    sub.wait_ready(WAIT).unwrap();
    let payload = vec![7u8; 16 * 1024];
    for i in 0u32..2_000 {
        let mut m = i.to_be_bytes().to_vec();
        m.extend_from_slice(&payload);
        publisher.publish(&m).unwrap();
    }
    let dropper = std::thread::spawn(move || {
        let started = Instant::now();
        drop(publisher);
        started.elapsed()
    });
    let mut expected = 0u32;
    while let Some(msg) = sub.recv_timeout(Duration::from_millis(1500)).unwrap() {
        let p = msg.payload();
        assert_eq!(p.len(), 4 + payload.len(), "a whole message");
        let seq = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        assert_eq!(seq, expected, "in order, none skipped inside the prefix");
        expected += 1;
    }
    let took = dropper.join().unwrap();
    assert!(took < Duration::from_millis(2500), "drop took {took:?}");
    println!(
        "figures: dropped mid-burst after {expected} of 2000 messages arrived; drop took {took:?}"
    );
    let info = listener.topic_info("burst").unwrap();
    assert!(info.publishers.is_empty(), "{info:?}");
    // The node is dropped on another thread too, while its subscriber's node lives on.
    let t = std::thread::spawn(move || drop(talker));
    t.join().unwrap();
}
