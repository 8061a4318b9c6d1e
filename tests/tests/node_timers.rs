//! The std node's I/O thread against the master binary over real TCP (issue 15): its timers
//! (heartbeats on its own control connection, answers to the master's ZMTP PINGs,
//! re-registration after a master restart) run while the application is away, and a node
//! dropped on another thread mid-burst closes everything without hanging.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use zerosmq_tests::{wait_until, MasterProcess, WAIT};

fn node(master: &MasterProcess, name: &str, heartbeat: Duration) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(master.endpoint())
        .timeout(Duration::from_secs(2))
        .heartbeat(Some(heartbeat))
        .connect()
        .unwrap()
}

fn listed(observer: &zerosmq::Node, name: &str) -> bool {
    observer.nodes().unwrap().iter().any(|n| n == name)
}

/// Local ports of this host's TCP connections to `remote_port` on 127.0.0.1 that are
/// established (the client ends of the connections to one of the master's ports).
fn client_ports_to(remote_port: u16) -> BTreeSet<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
            // State 01: ESTABLISHED.
            (f.get(3) == Some(&"01") && port(f.get(2)?)? == remote_port).then(|| port(f[1]))?
        })
        .collect()
}

/// The application thread sleeps in a long computation (five node timeouts) after its first
/// publish; the observer polls the node list all along and must see the node in every answer.
#[test]
fn heartbeats_keep_a_node_listed_while_its_application_thread_computes() {
    let master = MasterProcess::start(&["--node-timeout", "0.5"]);
    let observer = node(&master, "observer", Duration::from_millis(100));
    let (tx, rx) = std::sync::mpsc::channel();
    let endpoint = master.endpoint();
    let app = std::thread::spawn(move || {
        let busy = zerosmq::Node::builder("busy")
            .master(endpoint)
            .heartbeat(Some(Duration::from_millis(100)))
            .connect()
            .unwrap();
        let mut out = busy.advertise("work").unwrap();
        out.wait_ready(WAIT).unwrap();
        tx.send(()).unwrap();
        // The long computation: no call into the library.
        std::thread::sleep(Duration::from_millis(2500));
        out.publish(b"done").unwrap();
        (busy, out)
    });
    rx.recv_timeout(WAIT).expect("the node advertised");
    let mut polls = 0;
    while !app.is_finished() {
        assert!(listed(&observer, "busy"), "dropped after {polls} polls");
        polls += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let (busy, out) = app.join().unwrap();
    assert!(listed(&observer, "busy"));
    let info = observer.topic_info("work").unwrap();
    assert_eq!(info.publishers, ["busy"]);
    println!("figures: node listed in all {polls} polls over five node timeouts");
    drop((out, busy));
}

/// The master PINGs every connection every 500 ms and closes one silent for three intervals.
/// A publisher and a subscriber whose application does not call them for six intervals keep
/// their one connection each (the I/O thread answers; it serves a subscriber link from half a
/// second after its last receive), and a message published then arrives without a new wait.
#[test]
fn an_idle_publisher_and_subscriber_answer_the_masters_pings_on_one_connection() {
    let master = MasterProcess::start(&["--zmtp-heartbeat", "0.5"]);
    let talker = node(&master, "idle-talker", Duration::from_secs(1));
    let listener = node(&master, "idle-listener", Duration::from_secs(1));
    let mut publisher = talker.advertise("idle").unwrap();
    let mut sub = listener.subscribe("idle").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    sub.wait_ready(WAIT).unwrap();
    let info = listener.topic_info("idle").unwrap();
    let connections = || {
        (
            client_ports_to(info.publish_port),
            client_ports_to(info.subscribe_port),
        )
    };
    let before = connections();
    assert_eq!((before.0.len(), before.1.len()), (1, 1), "{before:?}");
    // The application is away for six PING intervals: no call into the library.
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(connections(), before, "the same connections, never re-made");
    // And inside a receive that gets nothing for as long.
    assert!(sub
        .recv_timeout(Duration::from_millis(3000))
        .unwrap()
        .is_none());
    assert_eq!(connections(), before, "the same connections, never re-made");
    assert!(publisher.is_ready().unwrap());
    publisher.publish(b"late").unwrap();
    let msg = sub.recv_timeout(WAIT).unwrap().expect("the late message");
    assert_eq!(msg.payload(), b"late");
}

/// The master is SIGKILLed and started again on the same port without a state file: the
/// nodes' I/O threads notice the new epoch in a heartbeat and ask for their grants again, with
/// no call from the application; the new master lists them and the stream flows again.
#[test]
fn the_io_thread_re_registers_after_the_master_restarts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let master = MasterProcess::start(&["--port", &port]);
    let talker = node(&master, "re-talker", Duration::from_millis(100));
    let listener = node(&master, "re-listener", Duration::from_millis(100));
    let mut publisher = talker.advertise("again").unwrap();
    let mut sub = listener.subscribe("again").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    sub.wait_ready(WAIT).unwrap();
    drop(master);
    let master = MasterProcess::start(&["--port", &port]);
    let observer = node(&master, "re-observer", Duration::from_millis(100));
    let registered = wait_until(WAIT, || {
        observer
            .topic_info("again")
            .is_ok_and(|i| i.publishers == ["re-talker"] && i.subscribers == ["re-listener"])
    });
    assert!(registered.is_some(), "{:?}", observer.topic_info("again"));
    println!("figures: both grants back {registered:?} after the new master was up");
    // The data paths follow by themselves; the application waits as it would after any
    // reconnect, then the stream flows.
    publisher.wait_ready(WAIT).unwrap();
    sub.wait_ready(WAIT).unwrap();
    publisher.publish(b"after").unwrap();
    let msg = sub
        .recv_timeout(WAIT)
        .unwrap()
        .expect("a message after the restart");
    assert_eq!(msg.payload(), b"after");
}

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

/// A node whose publisher is mid-burst is dropped, publisher and all, on another thread: the
/// drop returns, the node's I/O thread ends, its connections are closed (nothing can be
/// written after), and the subscriber got an in-order run of whole messages.
#[test]
fn dropping_a_node_mid_burst_on_another_thread_closes_everything() {
    let master = MasterProcess::start(&[]);
    let listener = node(&master, "burst-sink", Duration::from_secs(1));
    let talker = node(&master, "dropper", Duration::from_secs(1));
    let mut sub = listener.subscribe("flood").unwrap();
    let mut publisher = talker.advertise("flood").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    sub.wait_ready(WAIT).unwrap();
    let port = listener.topic_info("flood").unwrap().publish_port;
    let payload = vec![3u8; 16 * 1024];
    let (tx, dropped) = std::sync::mpsc::channel();
    let publishing = std::thread::spawn(move || {
        for i in 0u32..2_000 {
            let mut m = i.to_be_bytes().to_vec();
            m.extend_from_slice(&payload);
            publisher.publish(&m).unwrap();
        }
        // Messages are still queued in the I/O thread here.
        let started = Instant::now();
        drop(publisher);
        drop(talker);
        tx.send(started.elapsed()).unwrap();
    });
    let mut expected = 0u32;
    while let Some(msg) = sub.recv_timeout(Duration::from_millis(1500)).unwrap() {
        let p = msg.payload();
        assert_eq!(p.len(), 4 + 16 * 1024, "a whole message");
        assert_eq!(
            u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
            expected,
            "in order"
        );
        expected += 1;
    }
    let took = dropped.recv_timeout(WAIT).expect("the drop returns");
    publishing.join().unwrap();
    let gone = wait_until(WAIT, || {
        !thread_names()
            .iter()
            .any(|n| n.starts_with("zerosmq-io-drop"))
    });
    assert!(
        gone.is_some(),
        "the node's I/O thread ended: {:?}",
        thread_names()
    );
    let closed = wait_until(WAIT, || client_ports_to(port).is_empty());
    assert!(
        closed.is_some(),
        "publisher connection closed: {:?}",
        client_ports_to(port)
    );
    assert!(listener.topic_info("flood").unwrap().publishers.is_empty());
    println!("figures: {expected} of 2000 messages arrived before the close; drop took {took:?}");
}
