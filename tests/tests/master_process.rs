//! The master as a process: command-line flags, logging, clean shutdown on SIGTERM and Ctrl+C.

use std::process::Command;
use std::time::{Duration, Instant};

use zerosmq_tests::{cargo_bin, MasterProcess, WAIT};

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
