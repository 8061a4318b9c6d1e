//! The example system of the original: sensors, a processor that doubles, a monitor whose STOP
//! the sensors obey; and the talker/listener pair. Real master, real nodes in threads.

use std::time::Duration;

use zerosmq_examples as ex;
use zerosmq_tests::start_master;

#[test]
fn sensors_obey_the_monitors_stop_and_values_arrive_doubled() {
    let master = start_master();
    let url = master.control_endpoint();
    let sensors: Vec<_> = [1u8, 2]
        .into_iter()
        .map(|id| {
            let url = url.clone();
            std::thread::spawn(move || ex::sensor(Some(&url), id, Duration::from_millis(5)))
        })
        .collect();
    let purl = url.clone();
    let processor = std::thread::spawn(move || ex::processor(Some(&purl)));
    let seen = ex::monitor(Some(&url), 30, |_| {}).unwrap();
    assert_eq!(seen.len(), 30);
    for r in &seen {
        let original = f64::from(r.sensor) * 100.0 + f64::from(r.seq % 50);
        assert_eq!(r.value, original * 2.0, "reading {r:?} is not doubled");
    }
    for id in [1u8, 2] {
        assert!(
            seen.iter().any(|r| r.sensor == id),
            "nothing from sensor{id}"
        );
    }
    // Every node returns once STOP arrives; a node that missed it would hang here.
    for s in sensors {
        let sent = s.join().unwrap().unwrap();
        assert!(sent > 0);
    }
    assert!(processor.join().unwrap().unwrap() >= 30);
}

#[test]
fn listener_hears_the_talker() {
    let master = start_master();
    let url = master.control_endpoint();
    let lurl = url.clone();
    let listener = std::thread::spawn(move || {
        let mut heard = Vec::new();
        ex::listener(Some(&lurl), Some(3), |t| heard.push(t.to_owned())).map(|()| heard)
    });
    // The talker keeps talking until the listener has heard three messages.
    let turl = url.clone();
    std::thread::spawn(move || ex::talker(Some(&turl), Duration::from_millis(2), Some(100_000)));
    let heard = listener.join().unwrap().unwrap();
    assert_eq!(heard.len(), 3);
    for t in &heard {
        assert!(t.starts_with("hello world "), "{t}");
    }
}

/// Issue 15: the demo stops its own example nodes cleanly (no "node stopped sending heartbeats"
/// warning when they are done, even after the master's 5 s node timeout) and writes no ANSI
/// colour codes to logs that are not a terminal.
#[test]
fn demo_finishes_without_warnings_or_colour_codes_in_a_log() {
    let out = std::process::Command::new(zerosmq_tests::cargo_bin("zerosmq-examples", "demo"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--readings", "6"])
        // Longer than the master's node timeout after the sensor system finished.
        .args(["--duration", "7"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("monitor: sent STOP after 6 readings"),
        "{stdout}"
    );
    assert!(stdout.contains("demo stopped"), "{stdout}");
    assert!(
        !stderr.contains("stopped sending heartbeats") && !stderr.contains("WARN"),
        "{stderr}"
    );
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "{stderr}"
    );
}
