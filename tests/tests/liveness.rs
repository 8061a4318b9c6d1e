//! Node liveness: a node killed with SIGKILL leaves the node list and the graph after the
//! master's node timeout; a node restarted under the same name takes its place; two live nodes
//! with one name are refused.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zerosmq::{Error, ErrorCode};
use zerosmq_tests::{cargo_bin, node, start_master_with, MasterConfig, WAIT};

const NODE_TIMEOUT: Duration = Duration::from_millis(1500);

fn talker(master: &str) -> Child {
    Command::new(cargo_bin("zerosmq-examples", "talker"))
        .env("ZEROSMQ_MASTER", master)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls the master until `pred` holds for the node list; returns how long it took.
fn until_nodes(n: &zerosmq::Node, what: &str, pred: impl Fn(&[String]) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let nodes = n.nodes().unwrap();
        if pred(&nodes) {
            return start.elapsed();
        }
        assert!(start.elapsed() < WAIT, "{what}: node list still {nodes:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killed_node_is_dropped_and_a_restarted_one_replaces_it() {
    let master = start_master_with(MasterConfig {
        node_timeout: NODE_TIMEOUT,
        ..Default::default()
    });
    let observer = node(&master, "observer");
    let mut first = talker(&master.control_endpoint());
    until_nodes(&observer, "talker registers", |n| {
        n.iter().any(|x| x == "talker")
    });
    assert!(observer.graph().unwrap().contains("\"talker\""));

    first.kill().unwrap(); // SIGKILL: no stop request, no goodbye
    first.wait().unwrap();
    let killed = Instant::now();
    until_nodes(&observer, "dead talker dropped", |n| {
        !n.iter().any(|x| x == "talker")
    });
    let detected = killed.elapsed();
    println!("SIGKILLed node dropped after {detected:?} (node timeout {NODE_TIMEOUT:?})");
    assert!(
        detected >= NODE_TIMEOUT.mul_f32(0.5),
        "dropped before its timeout: {detected:?}"
    );
    assert!(!observer.graph().unwrap().contains("\"talker\""));
    assert!(matches!(
        observer.topic_info("chatter"),
        Err(Error::Refused {
            code: ErrorCode::UnknownTopic,
            ..
        })
    ));

    // Killed again and restarted at once: the new instance waits for the master to time out the
    // dead one, then takes the name over.
    let mut second = talker(&master.control_endpoint());
    until_nodes(&observer, "second talker registers", |n| {
        n.iter().any(|x| x == "talker")
    });
    second.kill().unwrap();
    second.wait().unwrap();
    let mut third = talker(&master.control_endpoint());
    // The dead second instance is dropped after the timeout; the third then holds the name and
    // keeps it, heartbeating: it is still listed, publishing, after two more timeouts.
    std::thread::sleep(NODE_TIMEOUT * 3);
    assert!(
        third.try_wait().unwrap().is_none(),
        "restarted node gave up"
    );
    let info = observer.node_info("talker").unwrap();
    assert_eq!(info.publishes, ["chatter"]);
    third.kill().unwrap();
    third.wait().unwrap();
}

#[test]
fn two_live_nodes_with_one_name_are_refused() {
    let master = start_master_with(MasterConfig {
        node_timeout: NODE_TIMEOUT,
        ..Default::default()
    });
    let first = node(&master, "twin");
    let _p = first.advertise("a").unwrap();
    let second = zerosmq::Node::builder("twin")
        .master(master.control_endpoint())
        .claim_wait(Duration::from_millis(500))
        .connect()
        .unwrap();
    match second.advertise("b") {
        Err(Error::Refused {
            code: ErrorCode::NameInUse,
            detail,
        }) => {
            assert!(detail.contains("used by another live node"), "{detail}");
        }
        other => panic!("a duplicate live node must be refused, got {other:?}"),
    }
    // Nothing merged: the first node's roles are unchanged.
    let info = first.node_info("twin").unwrap();
    assert_eq!(info.publishes, ["a"]);
    // Original-protocol nodes (no heartbeats) are never expired.
    let ctx = zmq::Context::new();
    let req = zerosmq_tests::raw_control(&ctx, &master);
    zerosmq_tests::raw_request(&req, b"REQUEST_SUB legacy.py a");
    std::thread::sleep(NODE_TIMEOUT * 2);
    assert!(first.nodes().unwrap().iter().any(|n| n == "legacy.py"));
}
