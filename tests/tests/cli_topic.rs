//! `zerosmq topic ...` against a real master and real nodes: listings, echo, pub, hz, bw, and
//! bad input (unknown topic, master not running).

mod cli_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli_support::*;

#[test]
fn topic_list_and_info_show_users_ports_and_counters() {
    let master = start_master();
    let talker = node(&master, "talker");
    let listener = node(&master, "listener");
    let lonely = node(&master, "lonely");
    let mut publisher = talker.advertise("chatter").unwrap();
    let mut subscriber = listener.subscribe("chatter").unwrap();
    let _only_subscribed = lonely.subscribe("sub_only").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    for _ in 0..3 {
        publisher.publish(b"hi").unwrap();
        subscriber.recv_timeout(WAIT).unwrap().expect("message");
    }
    let expected = talker.topic_info("chatter").unwrap();
    assert_eq!(expected.messages, 3);

    let out = run_ok(zerosmq(&master).args(["topic", "list"]));
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["TOPIC", "PUBLISHERS", "SUBSCRIBERS", "MESSAGES", "BYTES"],
            vec!["chatter", "1", "1", "3", &expected.bytes.to_string()],
            vec!["sub_only", "0", "1", "0", "0"],
        ],
        "{}",
        out.stdout
    );

    let out = run_ok(zerosmq(&master).args(["topic", "info", "chatter"]));
    let want = format!(
        "Topic: chatter\nPublish port: {}\nSubscribe port: {}\nPublishers:\n * talker\n\
         Subscribers:\n * listener\nMessages forwarded: 3\nBytes forwarded: {}\n",
        expected.publish_port, expected.subscribe_port, expected.bytes
    );
    assert!(out.stdout.starts_with(&want), "{}", out.stdout);
    assert!(out.stdout.contains("Last message: "), "{}", out.stdout);
}

#[test]
fn unknown_and_invalid_topics_are_refused_with_a_message() {
    let master = start_master();
    let talker = node(&master, "talker");
    let _p = talker.advertise("known").unwrap();
    for args in [
        &["topic", "info", "nope"][..],
        &["topic", "echo", "nope"],
        &["topic", "hz", "nope"],
        &["topic", "bw", "nope"],
        &["plot", "nope", "--png", "/tmp/never.png", "--duration", "1"],
    ] {
        let out = run(zerosmq(&master).args(args), WAIT);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            out.stderr
                .contains("unknown topic 'nope' (topics with a publisher: known)"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = run(zerosmq(&master).args(["topic", "info", "a,b"]), WAIT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("invalid name"), "{}", out.stderr);
}

#[test]
fn master_not_running_fails_within_the_timeout() {
    let endpoint = format!("tcp://127.0.0.1:{}", dead_port());
    let dir = temp_dir("dead-master");
    let recording = dir.join("one.txt");
    std::fs::write(&recording, "0,a,1\r\n").unwrap();
    let recording = recording.to_str().unwrap();
    let png = dir.join("p.png");
    for args in [
        &["topic", "list"][..],
        &["topic", "info", "a"],
        &["topic", "echo", "a"],
        &["topic", "pub", "a", "x"],
        &["topic", "hz", "a"],
        &["topic", "bw", "a"],
        &["node", "list"],
        &["node", "info", "n"],
        &["graph"],
        &["record", "-o", dir.join("r.mcap").to_str().unwrap()],
        &["replay", recording],
        &[
            "plot",
            "a",
            "--png",
            png.to_str().unwrap(),
            "--duration",
            "1",
        ],
    ] {
        let out = run(
            std::process::Command::new(zerosmq_bin())
                .args(["--master", &endpoint, "--timeout", "1"])
                .args(args),
            Duration::from_secs(10),
        );
        assert!(!out.status.success(), "{args:?}");
        assert!(
            out.stderr.contains(&format!(
                "the master at {endpoint} did not answer within 1s"
            )),
            "{args:?}: {}",
            out.stderr
        );
        // One request timeout, plus start-up and best-effort clean-up.
        assert!(
            out.took < Duration::from_secs(5),
            "{args:?} took {:?}",
            out.took
        );
    }
    assert!(
        !dir.join("r.mcap").exists(),
        "no empty recording is left behind"
    );
}

#[test]
fn echo_prints_text_or_hex_and_stops_after_count() {
    let master = start_master();
    let talker = node(&master, "talker");
    let mut publisher = talker.advertise("data").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    let mut echo = spawn(zerosmq(&master).args(["topic", "echo", "data", "--count", "3"]));
    echo.wait_stderr("subscribed to 'data'");
    publisher.publish(b"hello, world").unwrap();
    publisher.publish(&[0x00, 0xff, 0x10]).unwrap();
    publisher.publish("grüße".as_bytes()).unwrap();
    let (status, out, _) = echo.finish();
    assert!(status.success());
    assert_eq!(out, vec!["hello, world", "0x00ff10", "grüße"]);

    let mut echo =
        spawn(zerosmq(&master).args(["topic", "echo", "data", "-n", "1", "-v", "--hex"]));
    echo.wait_stderr("subscribed to 'data'");
    publisher.publish(b"AB").unwrap();
    let (status, out, _) = echo.finish();
    assert!(status.success());
    assert_eq!(out, vec!["data: 0x4142"]);
}

#[test]
fn pub_sends_once_or_count_messages_at_a_rate() {
    let master = start_master();
    let listener = node(&master, "listener");
    let mut sub = listener.subscribe("cmd").unwrap();
    sub.wait_ready(WAIT).unwrap();

    let out = run_ok(zerosmq(&master).args(["topic", "pub", "cmd", "go, now"]));
    assert!(
        out.stderr.contains("published 1 message(s) on 'cmd'"),
        "{}",
        out.stderr
    );
    let msg = sub.recv_timeout(WAIT).unwrap().expect("the message");
    assert_eq!(msg.payload(), b"go, now");

    let out = run_ok(zerosmq(&master).args(["topic", "pub", "cmd", "tick", "-r", "20", "-n", "5"]));
    // Five messages at 20 Hz: four periods of 50 ms.
    assert!(out.took >= Duration::from_millis(200), "{:?}", out.took);
    for _ in 0..5 {
        let msg = sub.recv_timeout(WAIT).unwrap().expect("tick");
        assert_eq!(msg.payload(), b"tick");
    }
    assert!(sub
        .recv_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());

    // --wait-subscribers: published only once a second subscriber is there. (Only the first
    // subscriber's receipt is checked: the master counts a subscriber when it registers, a moment
    // before its connection is live, so the new one may miss a message sent at once.)
    let mut publishing =
        spawn(zerosmq(&master).args(["topic", "pub", "cmd", "for two", "--wait-subscribers", "2"]));
    publishing.wait_stderr("waiting for 2 subscriber(s) of 'cmd'");
    assert!(
        sub.recv_timeout(Duration::from_millis(300))
            .unwrap()
            .is_none(),
        "nothing is published while one subscriber is missing"
    );
    let second = node(&master, "second");
    let _sub2 = second.subscribe("cmd").unwrap();
    let (status, _, err) = publishing.finish();
    assert!(status.success(), "{err:#?}");
    let msg = sub.recv_timeout(WAIT).unwrap().expect("the message");
    assert_eq!(msg.payload(), b"for two");

    let out = run(
        zerosmq(&master).args(["topic", "pub", "cmd", "x", "-r", "0"]),
        WAIT,
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("the rate must be above 0 Hz"),
        "{}",
        out.stderr
    );
}

/// Publishes `payload` on `topic` every `period` (deadline-based) until the flag is set.
fn publish_steadily(
    master: &MasterHandle,
    topic: &str,
    payload: Vec<u8>,
    period: Duration,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let n = node(master, "steady");
    let mut publisher = n.advertise(topic).unwrap();
    publisher.wait_ready(WAIT).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        let mut i = 0u32;
        while !flag.load(Ordering::Relaxed) {
            let due = start + period * i;
            let left = due.saturating_duration_since(Instant::now());
            // The publishing schedule itself, not a synchronisation.
            std::thread::sleep(left);
            publisher.publish(&payload).unwrap();
            i += 1;
        }
        drop(n);
    });
    (stop, thread)
}

fn last_number_after(line: &str, key: &str) -> f64 {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("a number after {key} in {line}"))
}

#[test]
fn hz_measures_a_known_rate() {
    let master = start_master();
    let (stop, publisher) =
        publish_steadily(&master, "steady", b"x".to_vec(), Duration::from_millis(20));
    let out = run_ok(zerosmq(&master).args([
        "topic",
        "hz",
        "steady",
        "--duration",
        "3",
        "--window",
        "500",
    ]));
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    let last = out.stdout.lines().last().expect("a report");
    let rate = last_number_after(last, "average rate:");
    println!("hz of a 50 Hz publisher: {last}");
    assert!(
        (47.5..=52.5).contains(&rate),
        "rate {rate} outside 50 Hz ± 5 %: {last}"
    );
    let min = last_number_after(last, "min:");
    let max = last_number_after(last, "max:");
    assert!(min <= 0.020 && max >= 0.020 && min > 0.0, "{last}");
    assert!(
        last.contains("std dev:") && last.contains("window:"),
        "{last}"
    );
    let window = last_number_after(last, "window:");
    assert!((100.0..=160.0).contains(&window), "{last}");
}

#[test]
fn bw_measures_a_known_bandwidth() {
    let master = start_master();
    // 100 bytes at 50 Hz: 5000 B/s.
    let (stop, publisher) =
        publish_steadily(&master, "blob", vec![7u8; 100], Duration::from_millis(20));
    let out = run_ok(zerosmq(&master).args(["topic", "bw", "blob", "--duration", "2.5"]));
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    let last = out.stdout.lines().last().expect("a report");
    println!("bw of 100 B at 50 Hz: {last}");
    let value = last_number_after(last, "average:");
    let unit = last.split_whitespace().nth(2).unwrap_or_default();
    let bytes_per_s = match unit {
        "KB/s" => value * 1e3,
        "B/s" => value,
        other => panic!("unit {other} in {last}"),
    };
    assert!(
        (4500.0..=5500.0).contains(&bytes_per_s),
        "{bytes_per_s} B/s outside 5000 ± 10 %: {last}"
    );
    assert!(
        last.contains("mean: 100.0 B  min: 100 B  max: 100 B"),
        "{last}"
    );
}
