//! Security: PLAIN authentication checked by the master's ZAP handler on every socket, and an
//! ACL enforced on grants and on the data ports; refusals are clear errors, tested both ways.

use std::path::PathBuf;
use std::time::Duration;

use zerosmq::{Error, ErrorCode};
use zerosmq_tests::{
    raw_control, raw_request, start_master_with, MasterConfig, MasterHandle, WAIT,
};

fn write_files(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("zerosmq-security-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwords = dir.join("passwords");
    std::fs::write(
        &passwords,
        "# user:password\nalice:wonderland\nbob:builder\n",
    )
    .unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "topic read clock\nuser alice\ntopic write sensors/*\ntopic read commands\n\
         user bob\ntopic read sensors/*\ntopic write commands\n",
    )
    .unwrap();
    (passwords, acl)
}

fn user(master: &MasterHandle, name: &str, user: &str, password: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(master.control_endpoint())
        .timeout(Duration::from_secs(2))
        .plain(user, password)
        .connect()
        .unwrap()
}

#[test]
fn plain_users_get_what_the_acl_grants_and_nothing_else() {
    let (passwords, acl) = write_files("plain");
    let master = start_master_with(MasterConfig {
        passwords: Some(passwords),
        acl: Some(acl),
        ..Default::default()
    });
    let alice = user(&master, "imu-driver", "alice", "wonderland");
    let bob = user(&master, "planner", "bob", "builder");

    let mut imu = alice.advertise("sensors/imu").unwrap();
    let mut reader = bob.subscribe("sensors/imu").unwrap();
    imu.wait_ready(WAIT).unwrap();
    reader.wait_ready(WAIT).unwrap();
    imu.publish(b"accel 0 0 9.81").unwrap();
    assert_eq!(
        reader
            .recv_timeout(WAIT)
            .unwrap()
            .expect("authorised flow")
            .payload(),
        b"accel 0 0 9.81"
    );

    // Refused both ways by the ACL, with a reason.
    match bob.advertise("sensors/imu") {
        Err(Error::Refused {
            code: ErrorCode::Refused,
            detail,
        }) => {
            assert_eq!(detail, "user 'bob' may not publish 'sensors/imu' (ACL)")
        }
        other => panic!("bob must not publish sensors: {other:?}"),
    }
    match alice.subscribe("sensors/imu") {
        Err(Error::Refused {
            code: ErrorCode::Refused,
            detail,
        }) => {
            assert_eq!(
                detail,
                "user 'alice' may not subscribe to 'sensors/imu' (ACL)"
            )
        }
        other => panic!("alice must not read sensors: {other:?}"),
    }
    // Rules before any user line are for everyone.
    assert!(alice.subscribe("clock").is_ok());

    // A wrong password is reported as such, not as a hang.
    let mallory = user(&master, "intruder", "alice", "guess");
    match mallory.topics() {
        Err(Error::AuthFailed { .. }) => {}
        other => panic!("wrong password must fail authentication: {other:?}"),
    }

    // Data ports are protected too: a raw libzmq SUB without credentials, and bob's raw PUB on
    // the publishers' port (the ACL forbids him to publish), get nothing through.
    let info = alice.topic_info("sensors/imu").unwrap();
    let ctx = zmq::Context::new();
    let anonymous = ctx.socket(zmq::SUB).unwrap();
    anonymous.set_subscribe(b"").unwrap();
    anonymous
        .connect(&format!("tcp://127.0.0.1:{}", info.subscribe_port))
        .unwrap();
    let forged = ctx.socket(zmq::PUB).unwrap();
    forged.set_plain_username(Some("bob")).unwrap();
    forged.set_plain_password(Some("builder")).unwrap();
    forged
        .connect(&format!("tcp://127.0.0.1:{}", info.publish_port))
        .unwrap();
    // Original-protocol control requests without credentials get no answer at all.
    let req = raw_control(&ctx, &master);
    req.set_rcvtimeo(500).unwrap();
    req.send(&b"LIST_ALL_TOPICS x null"[..], 0).unwrap();
    assert_eq!(req.recv_bytes(0), Err(zmq::Error::EAGAIN));
    for i in 0..20 {
        forged
            .send(format!("sensors/imu forged {i}").as_bytes(), 0)
            .unwrap();
        imu.publish(format!("real {i}").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..20 {
        let m = reader
            .recv_timeout(WAIT)
            .unwrap()
            .expect("real messages flow");
        assert_eq!(
            m.text().unwrap(),
            format!("real {i}"),
            "only alice's messages reach bob"
        );
    }
    assert_eq!(
        anonymous.poll(zmq::POLLIN, 200).unwrap(),
        0,
        "an unauthenticated subscriber got data"
    );
    // The same raw path with alice's credentials does get through, so the refusals above are
    // the ACL's doing, not a slow connection.
    let legit = ctx.socket(zmq::PUB).unwrap();
    legit.set_plain_username(Some("alice")).unwrap();
    legit.set_plain_password(Some("wonderland")).unwrap();
    legit
        .connect(&format!("tcp://127.0.0.1:{}", info.publish_port))
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "alice's raw publisher never got through"
        );
        legit.send(&b"sensors/imu raw"[..], 0).unwrap();
        if let Some(m) = reader.recv_timeout(Duration::from_millis(50)).unwrap() {
            assert_eq!(m.payload(), b"raw");
            break;
        }
    }
}

#[test]
fn acl_without_passwords_applies_to_node_names() {
    let dir = std::env::temp_dir().join(format!("zerosmq-acl-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user camera.py\ntopic write image\nuser viewer.py\ntopic read image\n",
    )
    .unwrap();
    let master = start_master_with(MasterConfig {
        acl: Some(acl),
        ..Default::default()
    });
    let ctx = zmq::Context::new();
    let req = raw_control(&ctx, &master);
    assert!(raw_request(&req, b"REQUEST_PUB camera.py image").starts_with(b"REQUEST GRANT "));
    assert!(raw_request(&req, b"REQUEST_SUB viewer.py image").starts_with(b"REQUEST GRANT "));
    assert_eq!(
        String::from_utf8(raw_request(&req, b"REQUEST_PUB viewer.py image")).unwrap(),
        "ERROR refused: node 'viewer.py' may not publish 'image' (ACL)"
    );
    assert!(raw_request(&req, b"REQUEST_SUB stranger.py image").starts_with(b"ERROR refused: "));
}

#[test]
fn bad_security_files_stop_the_master_with_a_message() {
    let dir = std::env::temp_dir().join(format!("zerosmq-acl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let acl = dir.join("acl");
    std::fs::write(&acl, "user a\ntopic sometimes x\n").unwrap();
    let err = zerosmq_master::Master::spawn(MasterConfig {
        bind: "127.0.0.1".into(),
        port: 0,
        acl: Some(acl),
        ..Default::default()
    })
    .err()
    .expect("a malformed ACL is refused");
    assert!(
        err.to_string()
            .contains("line 2: unknown access 'sometimes'"),
        "{err}"
    );
    let missing = zerosmq_master::Master::spawn(MasterConfig {
        bind: "127.0.0.1".into(),
        port: 0,
        passwords: Some(dir.join("nope")),
        ..Default::default()
    });
    assert!(missing.is_err());
}

/// A CURVE key file that is not one, and a server key that is not Z85, are refused clearly
/// at start (CURVE itself: tests/tests/curve_master.rs and std_curve.rs).
#[test]
fn curve_keys_that_are_not_keys_are_refused_clearly() {
    let dir = std::env::temp_dir().join(format!("zerosmq-curve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("master.keys");
    std::fs::write(&keys, "public\nsecret\n").unwrap();
    let err = zerosmq_master::Master::spawn(MasterConfig {
        bind: "127.0.0.1".into(),
        port: 0,
        curve_keys: Some(keys.clone()),
        ..Default::default()
    })
    .err()
    .expect("a key file without keys");
    assert!(err.to_string().contains("not a Z85 CURVE key"), "{err}");
    let node = zerosmq::Node::builder("n")
        .curve("not a key", None)
        .connect();
    assert!(matches!(node, Err(Error::InvalidKey)), "{node:?}");
    let err = zerosmq::curve::load_keys(&keys).unwrap_err();
    assert!(matches!(err, Error::KeyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("not a Z85 CURVE key"), "{err}");
}
