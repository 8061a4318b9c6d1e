//! The master's own endpoints (Foxglove, the web page) on a secured master: the master makes
//! each a PLAIN user or a CURVE key under its own name at start, so `--foxglove` and `--web`
//! work beside `--passwords` or `--curve-keys --curve-clients`, and the ACL applies to them by
//! that name (`foxglove`, `web`), as to any other client.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use zerosmq::curve::{generate_keys, key_text};
use zerosmq_tests::foxglove::{endpoint_port, FoxgloveClient};
use zerosmq_tests::web::{http_get, web_port};
use zerosmq_tests::{MasterProcess, WAIT};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "zerosmq-endpoints-secured-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Publishes `payload` on `publisher` until `done` says what it waits for has arrived.
fn publish_until(
    publisher: &mut zerosmq::Publisher,
    payload: &[u8],
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "never arrived");
        publisher.publish(payload).unwrap();
    }
}

#[test]
fn on_a_plain_master_the_endpoints_are_users_the_acl_names() {
    let dir = temp_dir("plain");
    let passwords = dir.join("passwords");
    std::fs::write(&passwords, "alice:wonderland\n").unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user alice\ntopic write sensors/*\ntopic read commands\n\
         user foxglove\ntopic read sensors/*\ntopic write commands\n\
         user web\ntopic read sensors/*\n",
    )
    .unwrap();
    let master = MasterProcess::start(&[
        "--passwords",
        passwords.to_str().unwrap(),
        "--acl",
        acl.to_str().unwrap(),
        "--foxglove",
        "127.0.0.1:0",
        "--foxglove-publish",
        "--web",
        "127.0.0.1:0",
    ]);
    let alice = zerosmq::Node::builder("alice-node")
        .master(master.endpoint())
        .timeout(Duration::from_secs(2))
        .plain("alice", "wonderland")
        .connect()
        .unwrap();
    let mut temp = alice.advertise("sensors/temp").unwrap();
    temp.wait_ready(WAIT).unwrap();

    // Foxglove sees alice's topic and its messages (the endpoint's grants, as user foxglove).
    let mut fox = FoxgloveClient::connect(endpoint_port(&master));
    fox.send(json!({"cmd": "subscribe", "topic": "sensors/temp"}));
    fox.wait_for("the sensors/temp channel", |e| {
        e["ev"] == "advertise" && e["topic"] == "sensors/temp"
    });
    let mut got = None;
    publish_until(&mut temp, b"21.5", || {
        got = fox.next_event(Duration::from_millis(50));
        got.as_ref().is_some_and(|e| e["ev"] == "message")
    });
    assert_eq!(got.unwrap()["data"]["value"], 21.5);

    // Publishing from Foxglove: to a topic the ACL lets foxglove write, alice receives it; to
    // another, a status error names the refusal.
    let mut commands = alice.subscribe("commands").unwrap();
    commands.wait_ready(WAIT).unwrap();
    fox.send(json!({"cmd": "advertise", "topic": "commands"}));
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the command never arrived");
        fox.send(json!({"cmd": "send", "topic": "commands", "json": {"text": "stop"}}));
        if let Some(m) = commands.recv_timeout(Duration::from_millis(100)).unwrap() {
            assert_eq!(m.payload(), b"stop");
            break;
        }
    }
    fox.send(json!({"cmd": "advertise", "topic": "sensors/fake"}));
    let status = fox.wait_for("a refusal", |e| e["ev"] == "status");
    let text = status["message"].as_str().unwrap();
    assert!(
        text.contains("user 'foxglove' may not publish 'sensors/fake'"),
        "{status}"
    );

    // The web page's node reads the topics as user web.
    let web = web_port(&master);
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = http_get(web, "/metrics");
        assert_eq!(code, 200);
        if body.contains("topic=\"sensors/temp\"") {
            break;
        }
        assert!(Instant::now() < deadline, "no sensors/temp series:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn on_a_curve_master_with_listed_clients_the_endpoints_are_admitted() {
    let dir = temp_dir("curve");
    let server = generate_keys();
    let keys = dir.join("master.key");
    std::fs::write(
        &keys,
        format!(
            "{}\n{}\n",
            key_text(server.public()),
            key_text(server.secret())
        ),
    )
    .unwrap();
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let alice = generate_keys();
    std::fs::write(
        clients.join("alice.pub"),
        format!("{}\n", key_text(alice.public())),
    )
    .unwrap();
    let master = MasterProcess::start(&[
        "--curve-keys",
        keys.to_str().unwrap(),
        "--curve-clients",
        clients.to_str().unwrap(),
        "--foxglove",
        "127.0.0.1:0",
        "--web",
        "127.0.0.1:0",
    ]);
    let node = zerosmq::Node::builder("alice-node")
        .master(master.endpoint())
        .timeout(Duration::from_secs(2))
        .curve(key_text(server.public()), Some(alice))
        .connect()
        .unwrap();
    let mut imu = node.advertise("imu").unwrap();
    imu.wait_ready(WAIT).unwrap();

    let mut fox = FoxgloveClient::connect(endpoint_port(&master));
    fox.send(json!({"cmd": "subscribe", "topic": "imu"}));
    fox.wait_for("the imu channel", |e| {
        e["ev"] == "advertise" && e["topic"] == "imu"
    });
    let mut got = None;
    publish_until(&mut imu, b"0.25", || {
        got = fox.next_event(Duration::from_millis(50));
        got.as_ref().is_some_and(|e| e["ev"] == "message")
    });
    assert_eq!(got.unwrap()["data"]["value"], 0.25);

    let web = web_port(&master);
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = http_get(web, "/metrics");
        if body.contains("topic=\"imu\"") {
            assert!(body.contains("mechanism=\"CURVE\""), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "no imu series:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
