//! A subscriber that stops reading: the others on the topic get every message, the master's
//! memory stays bounded by its high-water marks, and the overflow is counted in `topic info`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zerosmq_tests::{MasterProcess, WAIT};

#[test]
fn a_stalled_subscriber_costs_the_others_nothing_and_its_drops_are_counted() {
    let master = MasterProcess::start(&["--hwm", "1000"]);
    let node = |name: &str| {
        zerosmq::Node::builder(name)
            .master(master.endpoint())
            .timeout(WAIT)
            .hwm(1000)
            .connect()
            .unwrap()
    };
    let (pn, fast_node, slow_node) = (node("flooder"), node("keeps-up"), node("stalled"));
    let mut publisher = pn.advertise("flood").unwrap();
    let mut fast = fast_node.subscribe("flood").unwrap();
    let mut slow = slow_node.subscribe("flood").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    fast.wait_ready(WAIT).unwrap();
    slow.wait_ready(WAIT).unwrap(); // ...and from now on never reads again
    let rss_before = master.rss_kib();

    const TOTAL: u64 = 100_000;
    const BURST: u64 = 200;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let reader = std::thread::spawn(move || {
        for expected in 0..TOTAL {
            let m = fast
                .recv_timeout(WAIT)
                .unwrap()
                .expect("the fast subscriber stalled");
            assert_eq!(
                m.payload()[..8],
                expected.to_be_bytes(),
                "the fast subscriber lost a message"
            );
            counter.store(expected + 1, Ordering::Release);
        }
    });
    let mut payload = vec![7u8; 1024];
    for seq in 0..TOTAL {
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        publisher.publish(&payload).unwrap();
        // Pace by what the fast subscriber has received, so that only the stalled one falls
        // behind (its queue is the one that fills).
        if seq % BURST == BURST - 1 {
            let target = seq + 1 - BURST / 2;
            let deadline = std::time::Instant::now() + WAIT;
            while received.load(Ordering::Acquire) < target {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the fast subscriber fell behind"
                );
                std::thread::yield_now();
            }
        }
    }
    reader.join().unwrap();
    let rss_after = master.rss_kib();
    let info = fn_info(&pn);
    println!(
        "100,000 x 1 KiB through the master with one stalled subscriber: fast one got all, \
         overflows counted: {}, master RSS {} KiB -> {} KiB",
        info.overflows, rss_before, rss_after
    );
    assert_eq!(info.messages, TOTAL);
    assert!(
        info.overflows > 0,
        "the stalled subscriber's overflow is counted"
    );
    // ~100 MiB went through; what the master holds for the stalled subscriber is bounded by its
    // high-water mark (1,000 messages) and the socket buffers, not by the traffic.
    assert!(
        rss_after < rss_before + 48 * 1024,
        "master memory grew by {} KiB",
        rss_after - rss_before
    );
    // The stalled subscriber still holds the first messages, in order.
    let first = slow
        .recv_timeout(Duration::from_secs(1))
        .unwrap()
        .expect("queued messages");
    assert_eq!(first.payload()[..8], 0u64.to_be_bytes());
}

fn fn_info(n: &zerosmq::Node) -> zerosmq::TopicInfo {
    n.topic_info("flood").unwrap()
}
