//! Compatibility: a Python node written like an original ZeROSMQ node (pyzmq, text protocol,
//! `TOPIC payload` frames) exchanges messages with a Rust node through our master.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zerosmq_tests::{node, start_master, WAIT};

#[test]
fn original_python_node_talks_to_rust_nodes() {
    let master = start_master();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/original_node.py");
    let python = Command::new("python3")
        .arg(script)
        .arg(master.control_endpoint())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (pyzmq: pip install pyzmq)");

    let rust = node(&master, "rustNode");
    let mut from_python = rust.subscribe("from_python").unwrap();
    let mut to_python = rust.advertise("from_rust").unwrap();
    from_python.wait_ready(WAIT).unwrap();
    to_python.wait_ready(WAIT).unwrap();

    // Acknowledge hellos until the data starts; then every message must arrive in order.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut data = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "python node never got through (got {data:?})"
        );
        let Some(msg) = from_python.recv_timeout(Duration::from_millis(50)).unwrap() else {
            continue;
        };
        let text = msg.text().expect("original nodes send text").to_owned();
        match text.as_str() {
            "hello" if data.is_empty() => to_python.publish(b"ack").unwrap(),
            "hello" => panic!("hello after data"),
            "END" => break,
            _ => data.push(text),
        }
    }
    let expected: Vec<String> = (0..100)
        .map(|i| format!("data {i} ünïcödé, commas and spaces"))
        .collect();
    assert_eq!(data, expected);
    for i in 0..100 {
        to_python.publish(format!("reply {i}").as_bytes()).unwrap();
    }
    let out = python.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "python node failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
