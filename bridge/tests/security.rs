//! The bridge's master side with security: a real master started with `--curve-keys` (and
//! `--curve-clients`) or `--passwords`, the bridge joining it with `--curve-server-key` /
//! `--curve-keys` or `--plain-user` / `--plain-password`, mosquitto as the engine; and the
//! credentials a master refuses, which stop the bridge with the reason.

mod support;

use support::*;

/// Out (a node on the master -> mosquitto_sub) and in (mosquitto_pub -> a node), `n` each.
fn both_ways(master_node: &zerosmq::Node, broker: &Mosquitto, bridge: &Proc, n: usize) {
    let sub = mosquitto_sub(broker, "zerosmq/sec/out", 1, None);
    let mut p = master_node.advertise("sec/out").expect("advertise");
    p.wait_ready(WAIT).expect("ready");
    bridge.wait_line(&["bridging out", "sec/out"]);
    for i in 0..n {
        p.publish(format!("o {i}").as_bytes()).expect("publish");
    }
    assert!(p.flush(WAIT));
    sub.wait_line(&[&format!("o {}", n - 1)]);
    let (missing, ordered) = missing_and_order(&payloads(&sub), "o ", n as u64);
    assert_eq!(
        (missing, ordered),
        (0, true),
        "out: every message, in order"
    );

    let mut s = master_node.subscribe("sec/in").expect("subscribe");
    s.wait_ready(WAIT).expect("ready");
    for i in 0..n {
        mosquitto_pub(broker, "zerosmq/sec/in", format!("i {i}").as_bytes(), 1);
    }
    let mut got = Vec::new();
    while got.len() < n {
        match s.recv_timeout(WAIT).expect("recv") {
            Some(m) => got.push(m.text().expect("utf8").to_owned()),
            None => panic!("in: only {} of {n} arrived", got.len()),
        }
    }
    let want: Vec<String> = (0..n).map(|i| format!("i {i}")).collect();
    assert_eq!(got, want, "in: every message, in order, byte for byte");
}

/// A master with `--curve-keys` and `--curve-clients` (the bridge's and the test node's public
/// keys listed): the bridge with `--curve-server-key` and `--curve-keys` carries topics both ways
/// through mosquitto; with a server key that is not the master's, or a key pair the master does
/// not list, it stops at once with the reason and exit code 2.
#[test]
fn curve_master_both_ways_and_refusals() {
    let dir = TempDir::new("curve");
    let master_pub = curve_keygen(&dir.path("master.key"));
    std::fs::create_dir_all(dir.path("clients")).expect("clients dir");
    let bridge_pub = curve_keygen(&dir.path("bridge.key"));
    std::fs::write(dir.path("clients/bridge.pub"), &bridge_pub).expect("bridge.pub");
    let node_pub = curve_keygen(&dir.path("node.key"));
    std::fs::write(dir.path("clients/node.pub"), &node_pub).expect("node.pub");
    let stranger_pub = curve_keygen(&dir.path("stranger.key"));

    let (mk, cd) = (dir.path("master.key"), dir.path("clients"));
    let master = Master::start_with(
        0,
        &[
            "--curve-keys",
            mk.to_str().expect("path"),
            "--curve-clients",
            cd.to_str().expect("path"),
        ],
    );
    let broker = Mosquitto::start();
    let (endpoint, url) = (master.endpoint(), broker.url());
    let bk = dir.path("bridge.key");
    let mut b = bridge(&[
        "--master",
        &endpoint,
        "--curve-server-key",
        &master_pub,
        "--curve-keys",
        bk.to_str().expect("path"),
        "--mqtt",
        &url,
        "--out",
        "sec/out",
        "--in",
        "sec/in",
    ]);
    b.wait_line(&["mqtt subscribed"]);
    let keys = zerosmq::curve::load_keys(dir.path("node.key")).expect("node keys");
    let n = zerosmq::Node::builder("secure-node")
        .master(endpoint.clone())
        .curve(master_pub.clone(), Some(keys))
        .connect()
        .expect("node");
    both_ways(&n, &broker, &b, 200);
    let c = final_counters(&mut b);
    println!("figures: curve master, mqtt both ways: {c:?}");
    assert_eq!((c["out_sent"], c["in_sent"]), (200, 200), "{c:?}");
    assert_eq!(c["out_lost"] + c["in_lost"], 0, "{c:?}");

    // A server key that is not the master's: the handshake never completes.
    let mut wrong = bridge(&[
        "--master",
        &endpoint,
        "--curve-server-key",
        &stranger_pub,
        "--mqtt",
        &url,
        "--out",
        "sec/out",
    ]);
    assert_eq!(wait_exit(&mut wrong), Some(2), "{:?}", wrong.lines());
    let line = wrong.wait_line(&["cannot join the master"]);
    assert!(line.contains("not the master's"), "{line}");
    println!("wrong server key: {line}");

    // The right server key, but a key pair the master's --curve-clients does not list.
    let sk = dir.path("stranger.key");
    let mut unlisted = bridge(&[
        "--master",
        &endpoint,
        "--curve-server-key",
        &master_pub,
        "--curve-keys",
        sk.to_str().expect("path"),
        "--mqtt",
        &url,
        "--out",
        "sec/out",
    ]);
    assert_eq!(wait_exit(&mut unlisted), Some(2), "{:?}", unlisted.lines());
    let line = unlisted.wait_line(&["cannot join the master"]);
    assert!(
        line.contains("refused this node's CURVE public key"),
        "{line}"
    );
    println!("unlisted client key: {line}");
}

/// A master with `--passwords`: the bridge with `--plain-user` and the password from
/// `ZEROSMQ_PLAIN_PASSWORD` carries topics both ways; a wrong password stops it with the reason.
#[test]
fn plain_master_both_ways_and_wrong_password() {
    let dir = TempDir::new("plain");
    std::fs::write(
        dir.path("passwords"),
        "bridge:bridge-secret\nalice:wonderland\n",
    )
    .expect("passwords");
    let pw = dir.path("passwords");
    let master = Master::start_with(0, &["--passwords", pw.to_str().expect("path")]);
    let broker = Mosquitto::start();
    let (endpoint, url) = (master.endpoint(), broker.url());
    let with_password = |password: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zerosmq-bridge"));
        cmd.args([
            "--master",
            &endpoint,
            "--plain-user",
            "bridge",
            "--mqtt",
            &url,
            "--out",
            "sec/out",
            "--in",
            "sec/in",
            "--stats-secs",
            "0",
            "--poll-ms",
            "100",
        ])
        .env("ZEROSMQ_PLAIN_PASSWORD", password)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
        Proc::spawn("bridge", cmd)
    };
    let mut b = with_password("bridge-secret");
    b.wait_line(&["mqtt subscribed"]);
    let n = zerosmq::Node::builder("alice-node")
        .master(endpoint.clone())
        .plain("alice", "wonderland")
        .connect()
        .expect("node");
    both_ways(&n, &broker, &b, 200);
    let c = final_counters(&mut b);
    println!("figures: plain master, mqtt both ways: {c:?}");
    assert_eq!((c["out_sent"], c["in_sent"]), (200, 200), "{c:?}");

    let mut wrong = with_password("guess");
    assert_eq!(wait_exit(&mut wrong), Some(2), "{:?}", wrong.lines());
    let line = wrong.wait_line(&["cannot join the master"]);
    assert!(line.contains("refused the user name or password"), "{line}");
    println!("wrong password: {line}");
    // The refusal is the bridge's own line; the master stays up for the others.
    assert!(n.topics().is_ok());
}
