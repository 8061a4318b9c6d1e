//! Master restart: the master is SIGKILLed and started again on the same address; std nodes
//! resume publishing and receiving with no application code. Recovery time and messages lost
//! across the restart are measured and printed (not asserted: timing lives in figures).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zerosmq_tests::{raw_control_at, raw_request, wait_until, MasterProcess, WAIT};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the master binary on `port` and returns once its control port is bound.
fn start(port: u16, state: Option<&std::path::Path>) -> MasterProcess {
    let port = port.to_string();
    let mut args = vec!["--port", port.as_str()];
    let state = state.map(|s| s.to_string_lossy().into_owned());
    if let Some(s) = &state {
        args.extend(["--state", s.as_str()]);
    }
    MasterProcess::start(&args)
}

/// A node on the master at `port` that notices a restart quickly: short control timeout, a
/// heartbeat every 200 ms.
fn quick_node(port: u16, name: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(format!("tcp://127.0.0.1:{port}"))
        .timeout(Duration::from_millis(500))
        .heartbeat(Some(Duration::from_millis(200)))
        .connect()
        .unwrap()
}

struct Outcome {
    recovery: Duration,
    lost: u64,
}

/// Publisher and subscriber nodes exchange a numbered stream while the master is killed and
/// restarted; returns how long after the new master was up the stream resumed, and the gap.
fn restart_scenario(state: Option<&std::path::Path>) -> Outcome {
    let port = free_port();
    let mut master = start(port, state);
    let node = |name: &str| quick_node(port, name);
    let (pub_node, sub_node) = (node("restart-pub"), node("restart-sub"));
    let mut publisher = pub_node.advertise("stream").unwrap();
    let mut subscriber = sub_node.subscribe("stream").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    subscriber.wait_ready(WAIT).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let (stop2, sent2) = (stop.clone(), sent.clone());
    let sender = std::thread::spawn(move || {
        let mut seq = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            publisher.publish(&seq.to_be_bytes()).unwrap();
            seq += 1;
            sent2.store(seq, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let next = |s: &mut zerosmq::Subscriber| -> u64 {
        let m = s.recv_timeout(WAIT).unwrap().expect("stream flows");
        u64::from_be_bytes(m.payload().try_into().unwrap())
    };
    let mut last = next(&mut subscriber);
    for _ in 0..50 {
        last = next(&mut subscriber);
    }
    master.child.kill().unwrap();
    master.child.wait().unwrap();
    let sent_at_kill = sent.load(Ordering::Relaxed);
    let master = start(port, state);
    let up = Instant::now();
    // Drain what was in flight before the kill, then wait for the first message sent after it.
    let first_after = loop {
        let m = subscriber
            .recv_timeout(Duration::from_secs(15))
            .unwrap()
            .expect("stream resumes after the restart");
        let seq = u64::from_be_bytes(m.payload().try_into().unwrap());
        if seq < sent_at_kill {
            assert!(
                seq > last,
                "duplicate or reordered message {seq} after {last}"
            );
            last = seq;
            continue;
        }
        break seq;
    };
    let recovery = up.elapsed();
    let lost = first_after - last - 1;
    // After recovery the stream is complete again.
    let mut prev = first_after;
    for _ in 0..100 {
        let seq = next(&mut subscriber);
        assert_eq!(seq, prev + 1, "gap after recovery");
        prev = seq;
    }
    let names = pub_node.nodes().unwrap();
    assert!(
        names.contains(&"restart-pub".to_owned()) && names.contains(&"restart-sub".to_owned()),
        "{names:?}"
    );
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    drop(master);
    Outcome { recovery, lost }
}

#[test]
fn nodes_resume_after_master_restart_with_state_file() {
    let dir = std::env::temp_dir().join(format!("zerosmq-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = restart_scenario(Some(&dir.join("master.state")));
    println!(
        "with --state: stream resumed {:?} after the new master was up; {} messages lost",
        o.recovery, o.lost
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nodes_resume_after_master_restart_without_state_file() {
    let o = restart_scenario(None);
    println!("without --state (nodes re-request their grants): stream resumed {:?} after the new master was up; {} messages lost", o.recovery, o.lost);
}

/// A subscriber that is not reading while the master restarts (without a state file, so the
/// topic moves to a new port) keeps what the old connection had already delivered.
#[test]
fn an_idle_subscriber_keeps_queued_messages_across_a_port_change() {
    let port = free_port();
    let master = start(port, None);
    let node = |name: &str| quick_node(port, name);
    let (pn, idle_node, witness_node) = (node("p"), node("idle"), node("witness"));
    let mut publisher = pn.advertise("t").unwrap();
    let mut idle = idle_node.subscribe("t").unwrap();
    let mut witness = witness_node.subscribe("t").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    idle.wait_ready(WAIT).unwrap();
    witness.wait_ready(WAIT).unwrap();
    publisher.publish(b"before").unwrap();
    // The witness got it, so the master has written it to both subscribers' connections.
    assert_eq!(
        witness.recv_timeout(WAIT).unwrap().unwrap().payload(),
        b"before"
    );
    let old_port = pn.topic_info("t").unwrap().subscribe_port;
    drop(master);
    let master = start(port, None);
    let observer = node("observer");
    // The nodes re-register with their next heartbeat; the topic gets new ports.
    let moved = zerosmq_tests::wait_until(WAIT, || {
        observer
            .topic_info("t")
            .is_ok_and(|i| i.subscribers.len() == 2 && i.subscribe_port != old_port)
    });
    assert!(moved.is_some(), "nodes did not re-register");
    let first = idle
        .recv_timeout(WAIT)
        .unwrap()
        .expect("the queued message survives");
    assert_eq!(first.payload(), b"before");
    idle.wait_ready(WAIT).unwrap();
    publisher.wait_ready(WAIT).unwrap();
    publisher.publish(b"after").unwrap();
    assert_eq!(
        idle.recv_timeout(WAIT).unwrap().unwrap().payload(),
        b"after"
    );
    drop(master);
}

/// Waits (at most [`WAIT`]) for a master log line holding every one of `parts`.
fn expect_log(master: &MasterProcess, parts: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match master.log.recv_timeout(left) {
            Ok(line) if parts.iter().all(|p| line.contains(p)) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no log line with {parts:?}; saw:\n{}", seen.join("\n"));
}

/// A node that sent heartbeats before a restart, granted again by the restarted master only
/// after its restored heartbeat deadline passed, and dying before its first heartbeat there:
/// it must still leave `node list` (it is not an original node that never heartbeats).
#[test]
fn a_restored_node_regranted_late_that_never_heartbeats_expires() {
    let dir = std::env::temp_dir().join(format!("zerosmq-restart-late-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state");
    let (port, state_arg) = (
        free_port().to_string(),
        state.to_string_lossy().into_owned(),
    );
    let args = [
        "--port",
        &port,
        "--state",
        &state_arg,
        "--node-timeout",
        "2",
    ];
    let mut master = MasterProcess::start(&args);
    let ctx = zmq::Context::new();
    let ask = |master: &MasterProcess, request: &str| -> String {
        let req = raw_control_at(&ctx, &master.endpoint());
        String::from_utf8(raw_request(&req, request.as_bytes())).unwrap()
    };
    let heartbeat = "HEARTBEAT late-node 00000000000000aa";
    assert!(ask(&master, heartbeat).starts_with("ALIVE "));
    assert!(ask(&master, "REQUEST_PUB late-node t").starts_with("REQUEST GRANT "));
    // Alive until the state file records it as a node that sends heartbeats.
    let saved = wait_until(WAIT, || {
        ask(&master, heartbeat);
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("live late-node"))
    });
    assert!(saved.is_some(), "the state file records the live node");
    master.child.kill().unwrap();
    master.child.wait().unwrap();

    let master = MasterProcess::start(&args);
    // Restored, silent: dropped at its restored deadline.
    expect_log(&master, &["node=late-node", "stopped sending heartbeats"]);
    // Granted again after that, and gone before any heartbeat.
    assert!(ask(&master, "REQUEST_PUB late-node t").starts_with("REQUEST GRANT "));
    expect_log(&master, &["node=late-node", "stopped sending heartbeats"]);
    let nodes = ask(&master, "LIST_NODES null null");
    assert!(!nodes.contains("late-node"), "still listed: {nodes}");
    std::fs::remove_dir_all(&dir).ok();
}

/// What a publisher drops while its master is away is counted, exactly: publishing never
/// blocks, so `Publisher::dropped` is how a program (the bridge, a recorder) knows its loss.
#[test]
fn a_publisher_counts_what_it_drops_while_the_master_is_away() {
    let port = free_port();
    let mut master = start(port, None);
    let node = quick_node(port, "counting-pub");
    let listener = quick_node(port, "counting-sub");
    let mut publisher = node.advertise("counted").unwrap();
    let mut sub = listener.subscribe("counted").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    sub.wait_ready(WAIT).unwrap();
    for i in 0..100u32 {
        publisher.publish(&i.to_be_bytes()).unwrap();
    }
    for _ in 0..100 {
        sub.recv_timeout(WAIT).unwrap().expect("delivered");
    }
    assert_eq!(publisher.dropped(), 0);

    master.child.kill().unwrap();
    let _ = master.child.wait();
    assert!(
        wait_until(WAIT, || !publisher.is_ready().unwrap()).is_some(),
        "the publisher saw its master go"
    );
    for i in 0..50u32 {
        publisher.publish(&i.to_be_bytes()).unwrap();
    }
    assert_eq!(
        publisher.dropped(),
        50,
        "every message published while away"
    );

    let _master = start(port, None);
    publisher.wait_ready(WAIT).unwrap();
    assert_eq!(publisher.dropped(), 50);
}
