//! The master's control plane under hostile peers (issue 12): each test does the attack against
//! the real master while a witness pair streams, then checks that the witness lost nothing, that
//! control answered within a second and that the attacker got a clear refusal. Each prints one
//! `figures:` line for scripts/faults.sh.

use std::time::{Duration, Instant};

use zerosmq_tests::hostile::{cpu_seconds, log_lines, Meter, Witness};
use zerosmq_tests::{start_master_with, MasterConfig, MasterHandle, MasterProcess, WAIT};

fn user(master: &MasterHandle, name: &str, user: &str, password: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(master.control_endpoint())
        .timeout(WAIT)
        .plain(user, password)
        .connect()
        .expect("node")
}

/// A raw libzmq REQ on the control port, authenticated as `user`, as any peer can open one.
fn plain_control(ctx: &zmq::Context, master: &MasterHandle, user: &str, pw: &str) -> zmq::Socket {
    let req = ctx.socket(zmq::REQ).expect("req socket");
    req.set_linger(0).expect("linger");
    req.set_rcvtimeo(WAIT.as_millis() as i32).expect("rcvtimeo");
    req.set_plain_username(Some(user)).expect("username");
    req.set_plain_password(Some(pw)).expect("password");
    req.connect(&master.control_endpoint()).expect("connect");
    req
}

/// Publishes `count` sequenced messages and checks that every one arrives, in order.
fn witness_streams(pub_: &mut zerosmq::Publisher, sub: &mut zerosmq::Subscriber, count: u32) {
    for seq in 0..count {
        pub_.publish(&seq.to_be_bytes()).expect("witness publishes");
    }
    for seq in 0..count {
        let msg = sub
            .recv_timeout(WAIT)
            .expect("witness receives")
            .unwrap_or_else(|| panic!("witness lost message {seq}"));
        assert_eq!(
            msg.payload(),
            seq.to_be_bytes(),
            "witness message out of order"
        );
    }
}

#[test]
fn acl_stop_for_another_users_node() {
    let dir = std::env::temp_dir().join(format!("zerosmq-hostile-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwords = dir.join("passwords");
    std::fs::write(
        &passwords,
        "alice:wonderland\nbob:builder\nmallory:evil\ncarol:rights\n",
    )
    .unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user alice\ntopic write A_*\nuser bob\ntopic read A_*\nuser mallory\ntopic read other\n\
         user carol\ntopic readwrite A_*\n",
    )
    .unwrap();
    let master = start_master_with(MasterConfig {
        passwords: Some(passwords),
        acl: Some(acl),
        ..Default::default()
    });
    let alice = user(&master, "a-pub", "alice", "wonderland");
    let bob = user(&master, "a-sub", "bob", "builder");
    let mut publisher = alice.advertise("A_x").unwrap();
    let mut subscriber = bob.subscribe("A_x").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    witness_streams(&mut publisher, &mut subscriber, 500);

    // Mallory, who has no rights on A_*, asks the master to stop both of the owners' roles.
    let ctx = zmq::Context::new();
    let mallory = plain_control(&ctx, &master, "mallory", "evil");
    let mut worst = Duration::ZERO;
    for request in [
        &b"REQUEST_STOP_PUB a-pub A_x"[..],
        &b"REQUEST_STOP_SUB a-sub A_x"[..],
    ] {
        let start = Instant::now();
        mallory.send(request, 0).unwrap();
        let reply = mallory.recv_bytes(0).expect("the master answers mallory");
        worst = worst.max(start.elapsed());
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            !reply.starts_with("REQUEST GRANT") && reply.contains("user 'mallory' may not"),
            "a stop for another user's node must be refused, got {reply:?}"
        );
    }
    // Carol may publish and subscribe A_*, but the nodes are alice's and bob's: her stops for
    // them, and her grants under their names, are refused too.
    let carol = plain_control(&ctx, &master, "carol", "rights");
    for (request, owner) in [
        (&b"REQUEST_STOP_PUB a-pub A_x"[..], "alice"),
        (&b"REQUEST_STOP_SUB a-sub A_x"[..], "bob"),
        (&b"REQUEST_PUB a-pub A_x"[..], "alice"),
    ] {
        let start = Instant::now();
        carol.send(request, 0).unwrap();
        let reply = carol.recv_bytes(0).expect("the master answers carol");
        worst = worst.max(start.elapsed());
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.starts_with("ERROR ") && reply.contains(&format!("belongs to user '{owner}'")),
            "a request for another user's node must be refused, got {reply:?}"
        );
    }
    // Her own node on the same topic is served.
    carol.send(&b"REQUEST_SUB c-sub A_x"[..], 0).unwrap();
    let reply = carol.recv_bytes(0).unwrap();
    assert!(reply.starts_with(b"REQUEST GRANT "), "{reply:?}");
    assert!(
        worst < Duration::from_secs(1),
        "control answered in {worst:?}"
    );

    // The owners' topic is still open and the stream goes on.
    let info = alice.topic_info("A_x").unwrap();
    assert_eq!(
        info.publishers.len(),
        1,
        "the publisher is still registered: {info:?}"
    );
    assert_eq!(
        info.subscribers,
        ["a-sub", "c-sub"],
        "the subscriber is still registered: {info:?}"
    );
    witness_streams(&mut publisher, &mut subscriber, 1_000);

    // The owner may still stop its own role.
    publisher.stop().expect("alice stops her own publisher");
    println!(
        "figures: 4 forged stops and 1 forged grant refused; control worst {:.1} ms; witness 1500 sent, 0 lost",
        worst.as_secs_f64() * 1e3
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A std node that never sends heartbeats, as an original-protocol node.
fn original_style(master: &MasterHandle, name: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(master.control_endpoint())
        .timeout(WAIT)
        .heartbeat(None)
        .connect()
        .expect("node")
}

/// Sends one request on `req` and returns the reply as text and how long it took.
fn ask(req: &zmq::Socket, request: &str) -> (String, Duration) {
    let start = Instant::now();
    req.send(request.as_bytes(), 0).unwrap();
    let reply = req.recv_bytes(0).expect("the master answers");
    (
        String::from_utf8_lossy(&reply).into_owned(),
        start.elapsed(),
    )
}

#[test]
fn heartbeat_hijack_and_name_squatting() {
    // Twice the std client's heartbeat interval, so that the honest std nodes never expire.
    const NODE_TIMEOUT: Duration = Duration::from_secs(2);
    let mut worst = Duration::ZERO;
    let mut refused = 0;
    let mut sent = 0;
    let mut expect_refused = |reply: (String, Duration), what: &str| {
        worst = worst.max(reply.1);
        assert!(reply.0.starts_with("ERROR "), "{what}: got {:?}", reply.0);
        refused += 1;
    };

    // Without authentication: an original-protocol pair (no heartbeats) and a std pair.
    let master = start_master_with(MasterConfig {
        node_timeout: NODE_TIMEOUT,
        ..Default::default()
    });
    let old_pub = original_style(&master, "old-pub");
    let old_sub = original_style(&master, "old-sub");
    let mut publisher = old_pub.advertise("old").unwrap();
    let mut subscriber = old_sub.subscribe("old").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    let beating = zerosmq_tests::node(&master, "beating");
    let _beating_sub = beating.subscribe("old").unwrap();
    witness_streams(&mut publisher, &mut subscriber, 200);
    sent += 200;
    // Past the node timeout since their grants, a heartbeat may not adopt the original nodes
    // (it would make them expire one timeout later); one for the live std node's name from
    // another session is refused too.
    std::thread::sleep(NODE_TIMEOUT);
    let ctx = zmq::Context::new();
    let attacker = zerosmq_tests::raw_control(&ctx, &master);
    for name in ["old-pub", "old-sub"] {
        let reply = ask(&attacker, &format!("HEARTBEAT {name} 00000000deadbeef"));
        assert!(
            reply.0.contains("registered without heartbeats"),
            "{reply:?}"
        );
        expect_refused(reply, "hijacking an original node");
    }
    let reply = ask(&attacker, "HEARTBEAT beating 00000000deadbeef");
    assert!(reply.0.starts_with("ERROR name-in-use"), "{reply:?}");
    expect_refused(reply, "hijacking a live std node");
    // Two node timeouts later the original nodes are still there and stream on.
    std::thread::sleep(NODE_TIMEOUT * 2);
    let info = old_pub.topic_info("old").unwrap();
    assert_eq!(info.publishers, ["old-pub"], "{info:?}");
    assert_eq!(info.subscribers, ["beating", "old-sub"], "{info:?}");
    witness_streams(&mut publisher, &mut subscriber, 500);
    sent += 500;
    drop((
        publisher,
        subscriber,
        old_pub,
        old_sub,
        _beating_sub,
        beating,
    ));
    master.shutdown().unwrap();

    // With passwords: names are bound to their first user, and the ACL reserves prefixes.
    let dir = std::env::temp_dir().join(format!("zerosmq-hostile-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwords = dir.join("passwords");
    std::fs::write(&passwords, "alice:wonderland\nmallory:evil\n").unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "topic readwrite A_*\nuser alice\nnode a-*\nnode shared-*\nuser mallory\nnode m-*\nnode shared-*\n",
    )
    .unwrap();
    let master = start_master_with(MasterConfig {
        node_timeout: NODE_TIMEOUT,
        passwords: Some(passwords),
        acl: Some(acl),
        ..Default::default()
    });
    let mallory = plain_control(&ctx, &master, "mallory", "evil");
    // Squatting a reserved name before its owner starts is refused.
    for request in ["HEARTBEAT a-pub 00000000deadbeef", "REQUEST_SUB a-sub A_x"] {
        let reply = ask(&mallory, request);
        assert!(reply.0.contains("may not use node name"), "{reply:?}");
        expect_refused(reply, "squatting a reserved name");
    }
    // A name both may use is bound to whoever takes it first.
    let alice = user(&master, "a-pub", "alice", "wonderland");
    let shared = user(&master, "shared-sub", "alice", "wonderland");
    let alice_quiet = zerosmq::Node::builder("a-quiet")
        .master(master.control_endpoint())
        .timeout(WAIT)
        .heartbeat(None)
        .plain("alice", "wonderland")
        .connect()
        .unwrap();
    let mut publisher = alice.advertise("A_x").unwrap();
    let mut subscriber = shared.subscribe("A_x").unwrap();
    let _quiet = alice_quiet.subscribe("A_x").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    witness_streams(&mut publisher, &mut subscriber, 200);
    sent += 200;
    for (request, expected) in [
        (
            "HEARTBEAT shared-sub 00000000deadbeef",
            "belongs to user 'alice'",
        ),
        ("REQUEST_PUB shared-sub A_x", "belongs to user 'alice'"),
        ("REQUEST_STOP_SUB shared-sub A_x", "belongs to user 'alice'"),
        (
            "HEARTBEAT a-quiet 00000000deadbeef",
            "may not use node name",
        ),
    ] {
        let reply = ask(&mallory, request);
        assert!(reply.0.contains(expected), "{request}: {reply:?}");
        expect_refused(reply, "taking alice's name");
    }
    // Her own names work.
    let reply = ask(&mallory, "HEARTBEAT m-node 00000000deadbeef");
    assert!(reply.0.starts_with("ALIVE "), "{reply:?}");
    std::thread::sleep(NODE_TIMEOUT * 2);
    let info = alice.topic_info("A_x").unwrap();
    assert_eq!(info.publishers, ["a-pub"], "{info:?}");
    assert_eq!(info.subscribers, ["a-quiet", "shared-sub"], "{info:?}");
    witness_streams(&mut publisher, &mut subscriber, 500);
    sent += 500;
    assert!(
        worst < Duration::from_secs(1),
        "control answered in {worst:?}"
    );
    println!(
        "figures: {refused} hijack and squatting requests refused; control worst {:.1} ms; witness {sent} sent, 0 lost; original nodes kept past 3 node timeouts",
        worst.as_secs_f64() * 1e3
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Sends every request in `requests` on a DEALER without waiting for replies (as many in flight
/// as the high-water marks allow) and returns the replies, in order.
fn pipelined(endpoint: &str, requests: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let ctx = zmq::Context::new();
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.connect(endpoint).unwrap();
    let mut replies = Vec::with_capacity(requests.len());
    let mut next = 0;
    while replies.len() < requests.len() {
        let mut events = zmq::POLLIN;
        if next < requests.len() {
            events |= zmq::POLLOUT;
        }
        let mut items = [dealer.as_poll_item(events)];
        zmq::poll(&mut items, WAIT.as_millis() as i64).unwrap();
        assert!(
            items[0]
                .get_revents()
                .intersects(zmq::POLLIN | zmq::POLLOUT),
            "the master stopped reading or answering"
        );
        // REP expects the empty delimiter a REQ would send.
        while next < requests.len() {
            match dealer.send_multipart([&b""[..], &requests[next]], zmq::DONTWAIT) {
                Ok(()) => next += 1,
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        while let Ok(mut frames) = dealer.recv_multipart(zmq::DONTWAIT) {
            replies.push(frames.pop().unwrap_or_default());
        }
    }
    replies
}

/// Messages per second one publisher gets through the master to one subscriber when it
/// publishes as fast as it can for a second (in bursts of 100 it then drains, so that the
/// subscriber's queue never overflows).
fn full_speed(publisher: &mut zerosmq::Publisher, subscriber: &mut zerosmq::Subscriber) -> f64 {
    let start = Instant::now();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut last = start;
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            publisher.publish(b"x").expect("publish");
            sent += 1;
        }
        while received < sent {
            match subscriber.recv_timeout(WAIT).expect("receive") {
                Some(_) => received += 1,
                None => panic!("{} of {sent} messages lost at full speed", sent - received),
            }
        }
        last = Instant::now();
    }
    received as f64 / last.duration_since(start).as_secs_f64()
}

#[test]
fn heartbeat_name_spam() {
    const NAMES: u32 = 50_000;
    const MAX_NODES: usize = 10_000;
    let mut master = MasterProcess::start(&["--node-timeout", "30", "--max-nodes", "10000"]);
    let blaster = zerosmq::Node::builder("blaster")
        .master(master.endpoint())
        .timeout(WAIT)
        .connect()
        .unwrap();
    let mut blast_pub = blaster.advertise("blast").unwrap();
    let mut blast_sub = blaster.subscribe("blast").unwrap();
    blast_pub.wait_ready(WAIT).unwrap();
    blast_sub.wait_ready(WAIT).unwrap();
    // The first second warms the path up; the second is the figure.
    full_speed(&mut blast_pub, &mut blast_sub);
    let speed_before = full_speed(&mut blast_pub, &mut blast_sub);
    let witness = Witness::start(&master);
    let meter = Meter::start(&master);
    let requests: Vec<Vec<u8>> = (0..NAMES)
        .map(|i| {
            format!(
                "HEARTBEAT hs{i:06} {:016x}",
                0x5eed_0000_0000 + u64::from(i)
            )
            .into_bytes()
        })
        .collect();
    let _ = master.log.try_iter().count();
    let started = Instant::now();
    let replies = pipelined(&master.endpoint(), &requests);
    let spam_took = started.elapsed();
    let alive = replies.iter().filter(|r| r.starts_with(b"ALIVE ")).count();
    let limited = replies
        .iter()
        .filter(|r| r.starts_with(b"ERROR limit-reached"))
        .count();
    assert_eq!(
        alive + limited,
        replies.len(),
        "every heartbeat is answered ALIVE or limit-reached"
    );
    assert!(
        alive < MAX_NODES,
        "the node limit counts heartbeat-only names: {alive} accepted"
    );
    assert!(limited >= NAMES as usize - MAX_NODES, "{limited} refused");
    // With 10,000 names live (for 30 s), the master's wake-ups cost what they did without them.
    let cpu_before = cpu_seconds(&master);
    let idle = Duration::from_secs(3);
    std::thread::sleep(idle);
    let cpu_live = cpu_seconds(&master) - cpu_before;
    let speed_live = full_speed(&mut blast_pub, &mut blast_sub);
    // One line per second and kind (new name, refusal) for the spammer, with a count.
    let log_lines = master.log.try_iter().count();
    assert!(
        log_lines < 40,
        "{log_lines} log lines for {NAMES} heartbeats"
    );
    let seen = witness.finish();
    meter.report(
        "heartbeat name spam",
        &mut master,
        seen,
        &format!(
            ", {NAMES} pipelined HEARTBEATs answered in {:.2} s: {alive} names accepted, {limited} refused (--max-nodes {MAX_NODES}); CPU {cpu_live:.2} s in {} s with the names live; full-speed pair {:.0} msgs/s before, {:.0} with the names live; {log_lines} log lines",
            spam_took.as_secs_f64(),
            idle.as_secs(),
            speed_before,
            speed_live,
        ),
    );
}

#[test]
fn graph_amplification() {
    let mut master = MasterProcess::start(&[]);
    // 300 publishers and 300 subscribers on one topic: a DOT graph of 90,000 edges.
    let ctx = zmq::Context::new();
    let req = zerosmq_tests::raw_control_at(&ctx, &master.endpoint());
    for i in 0..300 {
        for role in ["PUB", "SUB"] {
            let (reply, _) = ask(
                &req,
                &format!("REQUEST_{role} {}{i:03} big", role.to_lowercase()),
            );
            assert!(reply.starts_with("REQUEST GRANT "), "{reply}");
        }
    }
    let (graph, graph_took) = ask(&req, "REQUEST_MAP null null");
    assert!(graph.len() > 3 << 20, "a graph of {} bytes", graph.len());
    let witness = Witness::start(&master);
    let meter = Meter::start(&master);
    // Peers that ask for the graph and never read the replies (a one-message receive queue and
    // a 4 KiB socket buffer, so that they really do not take them).
    let reader_that_never_reads = || {
        let dealer = ctx.socket(zmq::DEALER).unwrap();
        dealer.set_linger(0).unwrap();
        dealer.set_rcvhwm(1).unwrap();
        dealer.set_rcvbuf(4096).unwrap();
        dealer.set_sndhwm(0).unwrap();
        dealer.connect(&master.endpoint()).unwrap();
        dealer
    };
    let watch_rss = |within: Duration| {
        let mut most = 0;
        let until = Instant::now() + within;
        while Instant::now() < until {
            most = most.max(master.rss_kib());
            std::thread::sleep(Duration::from_millis(20));
        }
        most
    };
    // One peer, 100 requests for an unchanged graph: one shared buffer.
    let flood = reader_that_never_reads();
    for _ in 0..100 {
        flood
            .send_multipart([&b""[..], b"REQUEST_MAP null null"], 0)
            .unwrap();
    }
    let same_graph = watch_rss(Duration::from_secs(3));
    drop(flood);
    // Ten peers, each asking for the graph after changing it, ten times: distinct buffers,
    // bounded per peer address (all are 127.0.0.1 here) and in total.
    let floods: Vec<zmq::Socket> = (0..10)
        .map(|p| {
            let f = reader_that_never_reads();
            for i in 0..10 {
                let change = format!("REQUEST_PUB churn{p}-{i} big");
                f.send_multipart([&b""[..], change.as_bytes()], 0).unwrap();
                f.send_multipart([&b""[..], b"REQUEST_MAP null null"], 0)
                    .unwrap();
            }
            f
        })
        .collect();
    let changing_graph = watch_rss(Duration::from_secs(5));
    // Control stays answered meanwhile (the witness's prober), and so do graph requests.
    let (_, control_took) = ask(&req, "LIST_NODES null null");
    drop(floods);
    let refusals = log_lines(&master, "queued unread");
    assert!(
        refusals > 0,
        "the refusals past the per-peer bound are logged"
    );
    let seen = witness.finish();
    let over = |kib: u64| kib.saturating_sub(meter.rss) as f64 / 1024.0;
    meter.report(
        "graph amplification",
        &mut master,
        seen,
        &format!(
            ", graph {:.1} MB (built and sent in {:.0} ms); 100 REQUEST_MAP unread: +{:.1} MiB; 10 peers x 10 (graph changed each time) unread: +{:.1} MiB; a request meanwhile {:.1} ms; {refusals} rate-limited log lines",
            graph.len() as f64 / 1e6,
            graph_took.as_secs_f64() * 1e3,
            over(same_graph),
            over(changing_graph),
            control_took.as_secs_f64() * 1e3,
        ),
    );
    assert!(
        over(same_graph) < 32.0,
        "100 unread copies of one graph grew the master by {:.1} MiB",
        over(same_graph)
    );
    assert!(
        over(changing_graph) < 100.0,
        "unread distinct graphs grew the master by {:.1} MiB",
        over(changing_graph)
    );
}

#[test]
fn state_file_symlink() {
    let dir = std::env::temp_dir().join(format!("zerosmq-hostile-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, "keep").unwrap();
    // The name a naive save would write through: DIR/m.tmp beside DIR/m.state.
    std::os::unix::fs::symlink(&victim, dir.join("m.tmp")).unwrap();
    let state = dir.join("m.state");
    let state_arg = state.to_str().unwrap().to_owned();
    let mut master = MasterProcess::start(&["--state", &state_arg]);
    let witness = Witness::start(&master);
    let meter = Meter::start(&master);
    // An original-protocol publisher keeps the topic registered after the witness leaves.
    let ctx = zmq::Context::new();
    let keeper = zerosmq_tests::raw_control_at(&ctx, &master.endpoint());
    let (reply, _) = ask(&keeper, "REQUEST_PUB keeper witness");
    assert!(reply.starts_with("REQUEST GRANT "), "{reply}");
    let saved = zerosmq_tests::wait_until(WAIT, || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("topic witness "))
    });
    assert!(saved.is_some(), "the state file is written");
    // Twenty more saves while the witness streams, each through a fresh temporary: a topic
    // opened, then closed.
    for i in 0..10 {
        let topic = format!("topic extra{i} ");
        for (request, present) in [("REQUEST_PUB", true), ("REQUEST_STOP_PUB", false)] {
            let (reply, _) = ask(&keeper, &format!("{request} keeper extra{i}"));
            assert!(reply.starts_with("REQUEST GRANT"), "{reply}");
            let saved = zerosmq_tests::wait_until(WAIT, || {
                std::fs::read_to_string(&state).is_ok_and(|s| s.contains(&topic) == present)
            });
            assert!(saved.is_some(), "{request} extra{i} is saved");
        }
    }
    let seen = witness.finish();
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "keep",
        "the symlink's target is untouched"
    );
    assert!(
        std::fs::symlink_metadata(dir.join("m.tmp")).is_ok_and(|m| m.file_type().is_symlink()),
        "the planted link is left alone"
    );
    // A save may be under way (the witness leaving changes the registry); none is left behind.
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("m.tmp."))
            .collect()
    };
    assert!(
        zerosmq_tests::wait_until(WAIT, || leftovers().is_empty()).is_some(),
        "temporary files left: {:?}",
        leftovers()
    );
    let ports = |endpoint: &str| {
        let node = zerosmq::Node::builder("inspector")
            .master(endpoint)
            .timeout(WAIT)
            .connect()
            .unwrap();
        let info = node.topic_info("witness").unwrap();
        (info.publish_port, info.subscribe_port)
    };
    let before = ports(&master.endpoint());
    meter.report(
        "planted symlink at the state file's temporary",
        &mut master,
        seen,
        ", 21 saves with DIR/m.tmp a symlink: victim file untouched, no temporary left",
    );
    // A restarted master restores the topic on its ports from the state file.
    drop(master);
    let restarted = MasterProcess::start(&["--state", &state_arg]);
    assert_eq!(
        ports(&restarted.endpoint()),
        before,
        "restored on the same ports"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    println!("figures: state restored with the topic on ports {before:?}; the link target still holds its 4 bytes");
    drop(restarted);
    std::fs::remove_dir_all(&dir).ok();
}
