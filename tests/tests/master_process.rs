//! The master as a process: command-line flags, logging, clean shutdown on SIGTERM and Ctrl+C.

use std::process::Command;
use std::time::{Duration, Instant};

use zerosmq_tests::{cargo_bin, raw_control_at, raw_request, MasterProcess, WAIT};

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "master did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_and_sigint_shut_the_master_down_cleanly() {
    for signal in ["TERM", "INT"] {
        let mut master = MasterProcess::start(&["--data-ports", "47000-47099"]);
        let port = master.port;
        let node = zerosmq::Node::builder("n")
            .master(format!("tcp://127.0.0.1:{port}"))
            .timeout(WAIT)
            .connect()
            .unwrap();
        let publisher = node.advertise("t").unwrap();
        let info = node.topic_info("t").unwrap();
        assert!(
            (47000..=47099).contains(&info.publish_port),
            "data port {} outside the range",
            info.publish_port
        );
        assert!((47000..=47099).contains(&info.subscribe_port));
        std::mem::forget(publisher); // no stop request: the master goes away under it
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &master.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = wait_exit(&mut master.child);
        assert!(status.success(), "SIG{signal}: exit status {status}");
        let log: Vec<String> = master.log.try_iter().collect();
        assert!(
            log.iter().any(|l| l.contains("master shutting down")),
            "SIG{signal}: {log:?}"
        );
    }
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    let out = Command::new(cargo_bin("zerosmq-master", "zerosmq-master"))
        .args(["--data-ports", "5000-4000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a port range"));
}

#[test]
fn max_grants_per_node_caps_one_nodes_grants_with_a_clear_error() {
    let master = MasterProcess::start(&["--max-grants-per-node", "3"]);
    let ctx = zmq::Context::new();
    let req = raw_control_at(&ctx, &master.endpoint());
    for request in ["REQUEST_PUB n a", "REQUEST_SUB n b", "REQUEST_PUB n c"] {
        let reply = String::from_utf8(raw_request(&req, request.as_bytes())).unwrap();
        assert!(reply.starts_with("REQUEST GRANT "), "{request}: {reply}");
    }
    let reply = String::from_utf8(raw_request(&req, b"REQUEST_SUB n d")).unwrap();
    assert!(
        reply.starts_with("ERROR limit-reached")
            && reply.contains("node 'n'")
            && reply.contains("at most 3 publish and subscribe grants"),
        "the fourth grant: {reply}"
    );
    // A grant the node already holds is no new grant; other nodes are not limited by n's.
    let again = String::from_utf8(raw_request(&req, b"REQUEST_PUB n a")).unwrap();
    assert!(again.starts_with("REQUEST GRANT "), "{again}");
    let other = String::from_utf8(raw_request(&req, b"REQUEST_SUB m d")).unwrap();
    assert!(other.starts_with("REQUEST GRANT "), "{other}");
}

#[test]
fn the_removed_engine_flag_accepts_native_and_refuses_libzmq() {
    let master = MasterProcess::start(&["--engine", "native"]);
    let ctx = zmq::Context::new();
    let req = raw_control_at(&ctx, &master.endpoint());
    let reply = String::from_utf8(raw_request(&req, b"REQUEST_PUB n t")).unwrap();
    assert!(reply.starts_with("REQUEST GRANT "), "{reply}");
    let out = Command::new(cargo_bin("zerosmq-master", "zerosmq-master"))
        .args(["--port", "0", "--engine", "libzmq"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the libzmq engine was removed"), "{stderr}");
}
