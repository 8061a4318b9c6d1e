//! End to end: a real master, real std nodes, real libzmq sockets over TCP on 127.0.0.1.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use zerosmq::{Error, ErrorCode};
use zerosmq_tests::{node, raw_control, raw_request, start_master, WAIT};

#[test]
fn several_nodes_many_topics_every_message_arrives_in_order() {
    let master = start_master();
    const TOPICS: usize = 24;
    const NODES: usize = 4;
    const PER_TOPIC: u32 = 200;
    let nodes: Vec<_> = (0..NODES)
        .map(|i| node(&master, &format!("node{i}")))
        .collect();
    // Node i publishes topics t with t % NODES == i; node (i+1) % NODES subscribes to them,
    // and node (i+2) % NODES too, so every topic has two subscribers on other nodes.
    let mut publishers = Vec::new();
    let mut subscribers = Vec::new();
    for t in 0..TOPICS {
        let topic = format!("topic{t}");
        let owner = t % NODES;
        subscribers.push((t, nodes[(owner + 1) % NODES].subscribe(&topic).unwrap()));
        publishers.push(nodes[owner].advertise(&topic).unwrap());
        subscribers.push((t, nodes[(owner + 2) % NODES].subscribe(&topic).unwrap()));
    }
    for p in &mut publishers {
        p.wait_ready(WAIT).unwrap();
    }
    for (_, s) in &mut subscribers {
        s.wait_ready(WAIT).unwrap();
    }
    // Interleave topics so the master forwards from many sockets at once.
    for seq in 0..PER_TOPIC {
        for (t, p) in publishers.iter_mut().enumerate() {
            p.publish(format!("{t}:{seq}").as_bytes()).unwrap();
        }
    }
    for (t, s) in &mut subscribers {
        for seq in 0..PER_TOPIC {
            let msg = s
                .recv_timeout(WAIT)
                .unwrap()
                .unwrap_or_else(|| panic!("topic{t} lost message {seq}"));
            assert_eq!(msg.payload(), format!("{t}:{seq}").as_bytes());
        }
        assert!(s.try_recv().unwrap().is_none(), "no duplicates on topic{t}");
    }
    let info = nodes[0].topic_info("topic0").unwrap();
    assert_eq!(info.messages, u64::from(PER_TOPIC));
    assert_eq!(info.publishers, ["node0"]);
    assert_eq!(info.subscribers, ["node1", "node2"]);
    assert!(info.idle.is_some());
}

#[test]
fn subscribing_before_anyone_publishes_works() {
    let master = start_master();
    let early = node(&master, "early-bird");
    let mut sub = early.subscribe("news").unwrap();
    sub.wait_ready(WAIT).unwrap();
    // No publisher yet: the topic exists for the subscriber, but is not listed as published.
    assert_eq!(early.topics().unwrap(), Vec::<String>::new());
    let late = node(&master, "late-publisher");
    let mut publisher = late.advertise("news").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    publisher.publish(b"extra!").unwrap();
    assert_eq!(
        sub.recv_timeout(WAIT)
            .unwrap()
            .expect("delivered")
            .payload(),
        b"extra!"
    );
    assert_eq!(early.topics().unwrap(), ["news"]);
}

#[test]
fn binary_multipart_and_large_payloads_arrive_unchanged() {
    let master = start_master();
    let n = node(&master, "bytes");
    let mut publisher = n.advertise("blob").unwrap();
    let mut sub = n.subscribe("blob").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    sub.wait_ready(WAIT).unwrap();

    let every_byte: Vec<u8> = (0..=255u8).collect();
    publisher.publish(&every_byte).unwrap();
    publisher.publish(b"").unwrap();
    publisher
        .publish_parts(b"head", &[b"\x00middle\xff", b"", b"tail"])
        .unwrap();
    let mib: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    publisher.publish(&mib).unwrap();
    publisher
        .publish_value(&(42u32, "serde", [1.5f64, -2.0]))
        .unwrap();

    assert_eq!(
        sub.recv_timeout(WAIT).unwrap().unwrap().payload(),
        &every_byte[..]
    );
    assert_eq!(sub.recv_timeout(WAIT).unwrap().unwrap().payload(), b"");
    let multi = sub.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(multi.payload(), b"head");
    assert_eq!(
        multi.parts().collect::<Vec<_>>(),
        [&b"\x00middle\xff"[..], b"", b"tail"]
    );
    let big = sub.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(big.payload().len(), 1 << 20);
    assert!(
        big.payload() == &mib[..],
        "1 MiB payload changed in transit"
    );
    let value: (u32, String, [f64; 2]) = sub.recv_timeout(WAIT).unwrap().unwrap().decode().unwrap();
    assert_eq!(value, (42, "serde".to_owned(), [1.5, -2.0]));
    let info = n.topic_info("blob").unwrap();
    assert_eq!(info.messages, 5);
    assert!(info.bytes > 1 << 20);
}

#[test]
fn stop_requests_are_answered_and_update_listings() {
    let master = start_master();
    let a = node(&master, "alpha");
    let b = node(&master, "beta");
    let pa = a.advertise("shared").unwrap();
    let pa2 = a.advertise("alpha-only").unwrap();
    let sb = b.subscribe("shared").unwrap();
    assert_eq!(a.topics().unwrap(), ["alpha-only", "shared"]);
    assert_eq!(a.nodes().unwrap(), ["alpha", "beta"]);
    let info = a.node_info("alpha").unwrap();
    assert_eq!(info.publishes, ["alpha-only", "shared"]);
    assert!(info.subscribes.is_empty());
    assert_eq!(b.node_info("beta").unwrap().subscribes, ["shared"]);
    let shared_port = a.topic_info("shared").unwrap().publish_port;

    pa.stop().unwrap();
    assert_eq!(a.topics().unwrap(), ["alpha-only"]);
    // Still subscribed by beta: the topic and its sockets stay.
    assert_eq!(a.topic_info("shared").unwrap().publish_port, shared_port);
    sb.stop().unwrap();
    match a.topic_info("shared") {
        Err(Error::Refused {
            code: ErrorCode::UnknownTopic,
            ..
        }) => {}
        other => panic!("topic without users must be closed, got {other:?}"),
    }
    assert_eq!(a.nodes().unwrap(), ["alpha"], "beta has no role left");
    drop(pa2); // dropping stops too
    assert!(a.nodes().unwrap().is_empty());
    assert!(a.topics().unwrap().is_empty());
    assert!(matches!(
        a.node_info("alpha"),
        Err(Error::Refused {
            code: ErrorCode::UnknownNode,
            ..
        })
    ));
}

#[test]
fn stop_requests_from_original_nodes_get_request_grant() {
    let master = start_master();
    let ctx = zmq::Context::new();
    let req = raw_control(&ctx, &master);
    assert!(raw_request(&req, b"REQUEST_PUB pub1.py temp").starts_with(b"REQUEST GRANT "));
    assert_eq!(
        raw_request(&req, b"REQUEST_STOP_PUB pub1.py temp"),
        b"REQUEST GRANT"
    );
    // Idempotent, like MQTT's unsubscribe: stopping twice is granted too, and the socket is not wedged.
    assert_eq!(
        raw_request(&req, b"REQUEST_STOP_SUB pub1.py temp"),
        b"REQUEST GRANT"
    );
    assert_eq!(raw_request(&req, b"LIST_ALL_TOPICS pub1.py null"), b"");
}

/// Parses DOT with Graphviz itself (`dot -Tjson`) and returns node names and labelled edges.
fn parse_dot(dot: &str) -> (Vec<String>, Vec<(String, String, String)>) {
    use std::io::Write as _;
    let mut child = Command::new("dot")
        .arg("-Tjson")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz 'dot' is installed (apt-get install graphviz)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Graphviz refused the DOT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = json["objects"].as_array().cloned().unwrap_or_default();
    let names: BTreeMap<u64, String> = objects
        .iter()
        .map(|o| {
            (
                o["_gvid"].as_u64().unwrap(),
                o["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let edges = json["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                names[&e["tail"].as_u64().unwrap()].clone(),
                names[&e["head"].as_u64().unwrap()].clone(),
                e["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (names.into_values().collect(), edges)
}

#[test]
fn graph_is_valid_dot_with_every_node_and_topic() {
    let master = start_master();
    let p = node(&master, "pub1.py");
    let s = node(&master, "sub{1}->x");
    let lonely_sub = node(&master, "only-sub");
    let _a = p.advertise("temp").unwrap();
    let _b = p.advertise("no-subscribers").unwrap();
    let _c = s.subscribe("temp").unwrap();
    let _d = lonely_sub.subscribe("nobody-publishes").unwrap();
    let (nodes, mut edges) = parse_dot(&p.graph().unwrap());
    for expected in [
        "pub1.py",
        "sub{1}->x",
        "only-sub",
        "topic no-subscribers",
        "topic nobody-publishes",
    ] {
        assert!(
            nodes.iter().any(|n| n == expected),
            "{expected} missing from {nodes:?}"
        );
    }
    edges.sort();
    let e = |a: &str, b: &str, l: &str| (a.to_owned(), b.to_owned(), l.to_owned());
    assert_eq!(
        edges,
        [
            e("pub1.py", "sub{1}->x", "temp"),
            e("pub1.py", "topic no-subscribers", "no-subscribers"),
            e("topic nobody-publishes", "only-sub", "nobody-publishes"),
        ]
    );
}

#[test]
fn master_shutdown_releases_port_and_clients_time_out_cleanly() {
    let master = start_master();
    let port = master.control_port();
    let endpoint = master.control_endpoint();
    let n = node(&master, "survivor");
    let _p = n.advertise("x").unwrap();
    master.shutdown().unwrap();
    let quick = zerosmq::Node::builder("asker")
        .master(endpoint.clone())
        .timeout(std::time::Duration::from_millis(300))
        .connect()
        .unwrap();
    assert!(matches!(quick.topics(), Err(Error::Timeout { .. })));
    // The port is free again: a new master binds the same address.
    let again = zerosmq_master::Master::spawn(zerosmq_master::MasterConfig {
        bind: "127.0.0.1".into(),
        port,
        ..Default::default()
    })
    .expect("control port is released on shutdown");
    assert_eq!(
        node(&again, "asker2").topics().unwrap(),
        Vec::<String>::new()
    );
}
