//! The master as a process: command-line flags, logging, clean shutdown on SIGTERM and Ctrl+C.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zerosmq_tests::{cargo_bin, WAIT};

/// Starts `zerosmq-master` on a free port and returns it with the port it logged.
fn spawn_master(extra: &[&str]) -> (std::process::Child, u16, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(cargo_bin("zerosmq-master", "zerosmq-master"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("master logs its port");
        if line.contains("control service listening") {
            let port = line
                .rsplit("port=")
                .next()
                .and_then(|p| p.trim().parse().ok())
                .expect("port in log line");
            return (child, port, rx);
        }
    }
}

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
        let (mut child, port, logs) = spawn_master(&["--data-ports", "47000-47099"]);
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
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = wait_exit(&mut child);
        assert!(status.success(), "SIG{signal}: exit status {status}");
        let log: Vec<String> = logs.try_iter().collect();
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
