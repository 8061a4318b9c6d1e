//! Network faults between nodes and the master, injected by our own TCP proxy on loopback:
//! connections reset mid-frame, peers that connect and send nothing, half-open TCP. No wedge,
//! no leak (the master's descriptors return to their baseline), nothing lost for nodes that
//! are not behind the faulty path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zerosmq_tests::fault_proxy::FaultProxy;
use zerosmq_tests::{wait_until, MasterProcess, WAIT};

fn node(endpoint: &str, name: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(endpoint)
        .timeout(WAIT)
        .connect()
        .unwrap()
}

/// A direct publisher/subscriber pair streaming numbered messages; `check` asserts none lost.
struct Steady {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Steady {
    fn start(endpoint: &str) -> Steady {
        let n = node(endpoint, "steady");
        let mut p = n.advertise("steady").unwrap();
        let mut s = n.subscribe("steady").unwrap();
        p.wait_ready(WAIT).unwrap();
        s.wait_ready(WAIT).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (stop1, received1) = (stop.clone(), received.clone());
        let sender = std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop1.load(Ordering::Relaxed) {
                p.publish(&seq.to_be_bytes()).unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            p.publish(&u64::MAX.to_be_bytes()).unwrap();
            drop(n);
        });
        let receiver = std::thread::spawn(move || {
            let mut expected = 0u64;
            loop {
                let m = s
                    .recv_timeout(WAIT)
                    .unwrap()
                    .expect("steady stream stalled");
                let seq = u64::from_be_bytes(m.payload().try_into().unwrap());
                if seq == u64::MAX {
                    return;
                }
                assert_eq!(seq, expected, "steady stream lost or reordered a message");
                expected += 1;
                received1.store(expected, Ordering::Relaxed);
            }
        });
        Steady {
            stop,
            received,
            threads: vec![sender, receiver],
        }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("steady pair failed");
        }
        self.received.load(Ordering::Relaxed)
    }
}

/// A master whose data ports are `range`, so the proxy can listen on the same ports on
/// 127.0.0.2 (each test its own range: tests run in parallel).
fn master(range: (u16, u16)) -> MasterProcess {
    // ZMTP pings every 2 s (default 10 s), so a half-open path is found in about 8 s.
    MasterProcess::start(&[
        "--data-ports",
        &format!("{}-{}", range.0, range.1),
        "--zmtp-heartbeat",
        "2",
    ])
}

/// The scene of the proxy tests: a master on `range`, a steady direct pair, the master's
/// descriptor count at that point, a proxy in front of the master on 127.0.0.2, and one node
/// behind the proxy (`far`) and one direct (`near`).
struct ProxiedScene {
    master: MasterProcess,
    steady: Steady,
    baseline: usize,
    proxy: FaultProxy,
    far: zerosmq::Node,
    near: zerosmq::Node,
}

impl ProxiedScene {
    fn new(range: (u16, u16), far_name: &str, near_name: &str) -> ProxiedScene {
        let master = master(range);
        let steady = Steady::start(&master.endpoint());
        let baseline = master.open_fds();
        let proxy = FaultProxy::start(
            "127.0.0.2",
            "127.0.0.1",
            std::iter::once(master.port).chain(range.0..=range.1),
        );
        let far = node(&format!("tcp://127.0.0.2:{}", master.port), far_name);
        let near = node(&master.endpoint(), near_name);
        ProxiedScene {
            master,
            steady,
            baseline,
            proxy,
            far,
            near,
        }
    }
}

#[test]
fn connections_reset_mid_frame_do_not_wedge_or_leak() {
    // A publisher of large messages behind the proxy, a direct subscriber.
    let ProxiedScene {
        master: m,
        steady,
        baseline,
        proxy,
        far,
        near,
    } = ProxiedScene::new((47200, 47219), "far-publisher", "near-subscriber");
    let mut big = far.advertise("big").unwrap();
    let mut sink = near.subscribe("big").unwrap();
    big.wait_ready(WAIT).unwrap();
    sink.wait_ready(WAIT).unwrap();
    let mut payload = vec![0xabu8; 256 * 1024];
    for round in 0..10u64 {
        payload[..8].copy_from_slice(&round.to_be_bytes());
        for _ in 0..8 {
            big.publish(&payload).unwrap();
        }
        proxy.reset_all(); // with up to 2 MiB in flight: frames are cut
                           // The publisher reconnects by itself; a message of this round's tag gets through.
        payload[..8].copy_from_slice(&(round + 1000).to_be_bytes());
        let back = wait_until(WAIT, || {
            let _ = big.publish(&payload);
            let got = sink.recv_timeout(Duration::from_millis(20));
            matches!(got, Ok(Some(m)) if m.payload()[..8] == (round + 1000).to_be_bytes())
        });
        assert!(back.is_some(), "round {round}: no traffic after the reset");
    }
    assert!(proxy.accepted() >= 10, "the faults did hit connections");
    drop((big, sink, far, near, proxy));
    let settled = wait_until(WAIT, || m.open_fds() <= baseline + 4);
    assert!(
        settled.is_some(),
        "master descriptors {} vs baseline {baseline}",
        m.open_fds()
    );
    let got = steady.finish();
    assert!(got > 0);
    println!("resets: 10 rounds; steady stream {got} messages, none lost; fds back to baseline {baseline}");
}

#[test]
fn silent_peers_are_dropped_after_the_handshake_timeout() {
    let m = master((47220, 47239));
    let steady = Steady::start(&m.endpoint());
    let baseline = m.open_fds();
    let info = node(&m.endpoint(), "looker").topic_info("steady").unwrap();
    let silent: Vec<_> = (0..60)
        .map(|i| {
            let port = [m.port, info.publish_port, info.subscribe_port][i % 3];
            std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()
        })
        .collect();
    assert!(
        wait_until(WAIT, || m.open_fds() >= baseline + 60).is_some(),
        "master accepted them"
    );
    // They send nothing: the master closes them once the handshake times out (5 s).
    let dropped = wait_until(Duration::from_secs(15), || m.open_fds() <= baseline + 4);
    assert!(
        dropped.is_some(),
        "silent peers still hold {} descriptors",
        m.open_fds() - baseline
    );
    println!("60 silent peers dropped {dropped:?} after the master accepted them");
    drop(silent);
    assert!(steady.finish() > 0);
}

#[test]
fn half_open_connections_are_detected_and_recovered() {
    let ProxiedScene {
        master: m,
        steady,
        baseline,
        proxy,
        far,
        near,
    } = ProxiedScene::new((47240, 47259), "far-subscriber", "near-publisher");
    let mut sub = far.subscribe("news").unwrap();
    let mut publisher = near.advertise("news").unwrap();
    sub.wait_ready(WAIT).unwrap();
    publisher.wait_ready(WAIT).unwrap();
    publisher.publish(b"before").unwrap();
    assert_eq!(
        sub.recv_timeout(WAIT).unwrap().unwrap().payload(),
        b"before"
    );

    proxy.blackhole(); // packets vanish, no FIN, no RST: half-open for both ends
    let established = proxy.accepted();
    // The master's ZMTP heartbeat (PING every 2 s, closed 6 s after a PING goes unanswered)
    // notices and closes its side of every connection that was live when the path went dark.
    let noticed = wait_until(Duration::from_secs(20), || {
        proxy.target_closed_all_before(established)
    });
    assert!(noticed.is_some(), "the master kept a half-open connection");
    println!("master closed all {established} half-open connections {noticed:?} after the path went dark");
    proxy.pass();
    // The subscriber reconnects through the healed path and receives again.
    let back = wait_until(Duration::from_secs(20), || {
        let _ = publisher.publish(b"after");
        matches!(sub.recv_timeout(Duration::from_millis(50)), Ok(Some(m)) if m.payload() == b"after")
    });
    assert!(
        back.is_some(),
        "subscriber never recovered from the half-open path"
    );
    drop(sub);
    drop(far);
    drop(proxy);
    // Connections a reconnecting client opened while the path was dark may be half-open too;
    // the master closes those by its heartbeat (2 s PING, 6 s silence), so allow for that.
    assert!(
        wait_until(Duration::from_secs(20), || m.open_fds() <= baseline + 8).is_some(),
        "descriptors leaked: {} vs {baseline}",
        m.open_fds()
    );
    assert!(steady.finish() > 0);
}
