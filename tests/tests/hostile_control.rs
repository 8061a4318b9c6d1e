//! The master's control plane under hostile peers (issue 12): each test does the attack against
//! the real master while a witness pair streams, then checks that the witness lost nothing, that
//! control answered within a second and that the attacker got a clear refusal. Each prints one
//! `figures:` line for scripts/faults.sh.

use std::time::{Duration, Instant};

use zerosmq_tests::{start_master_with, MasterConfig, MasterHandle, WAIT};

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
    std::fs::write(&passwords, "alice:wonderland\nbob:builder\nmallory:evil\n").unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user alice\ntopic write A_*\nuser bob\ntopic read A_*\nuser mallory\ntopic read other\n",
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
        info.subscribers.len(),
        1,
        "the subscriber is still registered: {info:?}"
    );
    witness_streams(&mut publisher, &mut subscriber, 1_000);

    // The owner may still stop its own role.
    publisher.stop().expect("alice stops her own publisher");
    println!(
        "figures: 2 forged stops refused; control worst {:.1} ms; witness 1500 sent, 0 lost",
        worst.as_secs_f64() * 1e3
    );
    std::fs::remove_dir_all(&dir).ok();
}
