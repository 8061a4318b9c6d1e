//! The slow-joiner fix: after `wait_ready` on both ends, the very first message arrives.

use zerosmq_tests::{node, start_master, WAIT};

#[test]
fn hundred_fresh_pairs_lose_nothing() {
    let master = start_master();
    for i in 0..100 {
        let publisher_node = node(&master, &format!("pub{i}"));
        let subscriber_node = node(&master, &format!("sub{i}"));
        let topic = format!("pair{i}");
        // Alternate the order: subscribing first must be as safe as publishing first.
        let (mut publisher, mut subscriber) = if i % 2 == 0 {
            let p = publisher_node.advertise(&topic).unwrap();
            (p, subscriber_node.subscribe(&topic).unwrap())
        } else {
            let s = subscriber_node.subscribe(&topic).unwrap();
            (publisher_node.advertise(&topic).unwrap(), s)
        };
        publisher.wait_ready(WAIT).unwrap();
        subscriber.wait_ready(WAIT).unwrap();
        publisher.publish(format!("first {i}").as_bytes()).unwrap();
        let msg = subscriber
            .recv_timeout(WAIT)
            .unwrap()
            .unwrap_or_else(|| panic!("pair {i} lost its first message"));
        assert_eq!(msg.payload(), format!("first {i}").as_bytes());
        assert_eq!(msg.topic(), topic);
    }
}
