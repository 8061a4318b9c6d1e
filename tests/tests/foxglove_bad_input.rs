//! Bad input on the master's Foxglove endpoint, each answered with a status error or a closed
//! WebSocket, while a std publisher -> subscriber stream through the master (also watched by a
//! Foxglove client) loses nothing: malformed JSON, an unknown op, a subscription to a channel
//! that does not exist, binary garbage, an oversized frame, 200 clients connecting and dropping.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zerosmq::Node;
use zerosmq_tests::foxglove::{endpoint_port, FoxgloveClient};
use zerosmq_tests::{MasterProcess, WAIT};

/// Past tungstenite's largest frame (16 MiB), which the SDK keeps.
const OVERSIZED: usize = 17 << 20;

#[test]
fn bad_foxglove_input_is_refused_and_forwarding_loses_nothing() {
    let master = MasterProcess::start(&["--foxglove", "127.0.0.1:0"]);
    let port = endpoint_port(&master);
    let node = Node::builder("streamer")
        .master(master.endpoint())
        .connect()
        .unwrap();
    let mut subscriber = node.subscribe("stream").unwrap();
    let mut publisher = node.advertise("stream").unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    publisher.wait_ready(WAIT).unwrap();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let m = subscriber
                .recv_timeout(WAIT)
                .unwrap()
                .expect("the stream stalled");
            if m.payload() == b"end" {
                return got;
            }
            got.push(String::from_utf8(m.payload().to_vec()).unwrap());
        }
    });

    let mut fox = FoxgloveClient::connect(port);
    fox.send(json!({"cmd": "subscribe", "topic": "stream"}));
    let cases: Vec<(&str, Value)> = vec![
        (
            "malformed JSON",
            json!({"cmd": "raw", "text": "{\"op\": \"subscribe\", "}),
        ),
        (
            "an unknown op",
            json!({"cmd": "raw", "text": "{\"op\":\"explode\"}"}),
        ),
        (
            "an unknown channel",
            json!({"cmd": "raw", "text": "{\"op\":\"subscribe\",\"subscriptions\":[{\"id\":1,\"channelId\":4242}]}"}),
        ),
        (
            "binary garbage",
            json!({"cmd": "raw", "hex": "ff00deadbeef00"}),
        ),
        (
            "an oversized frame",
            json!({"cmd": "raw", "bytes": OVERSIZED}),
        ),
    ];
    let mut i = 0u64;
    let mut publish_some = |n: u64| {
        for _ in 0..n {
            publisher.publish(i.to_string().as_bytes()).unwrap();
            i += 1;
        }
        i
    };
    publish_some(100);
    for (what, case) in cases {
        fox.send(case);
        let answer = fox.wait_for(what, |e| e["ev"] == "raw");
        assert!(
            answer["status"] == 2 || answer["closed"].is_number(),
            "{what}: neither a status error nor a close: {answer}"
        );
        publish_some(100);
    }
    fox.send(json!({"cmd": "churn", "clients": 200}));
    let churn = fox.wait_for("200 clients connecting and dropping", |e| {
        e["ev"] == "churn"
    });
    assert_eq!(churn["greeted"], 200, "{churn}");
    let mut sent = publish_some(100);

    // The endpoint still serves its client: a message published from now on reaches it
    // (published one at a time until one does, since the endpoint subscribed on its own time).
    let first_after = sent as f64;
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the Foxglove client gets nothing after the bad input"
        );
        sent = publish_some(1);
        if let Some(e) = fox.next_event(Duration::from_millis(100)) {
            if e["ev"] == "message" && e["data"]["value"].as_f64() >= Some(first_after) {
                break;
            }
        }
    }
    publisher.publish(b"end").unwrap();
    let got = receiver.join().unwrap();
    let expected: Vec<String> = (0..sent).map(|n| n.to_string()).collect();
    assert_eq!(got.len(), expected.len(), "messages lost on the stream");
    assert_eq!(got, expected);
    // A second client connects as the first did: nothing is left broken.
    let second = FoxgloveClient::connect(port);
    assert!(second.server_info["capabilities"].is_array());
}
