//! The std client and the CLI with CURVE against the real master binary, over real TCP: every
//! connection of the node (control and data) is a CURVE connection through core's session.
//!
//! - With `--curve-keys` and `--curve-clients`: a listed node gets grants, publishes and
//!   receives; an unlisted key is `Error::CurveRefused`, a wrong server key
//!   `Error::WrongServerKey`, a NULL node gets nothing; a capture proxy on the control port
//!   shows neither the topic name nor the node name in clear.
//! - Without `--curve-clients`: a node with an ephemeral key pair is served, and the CLI with
//!   `ZEROSMQ_CURVE_SERVER_KEY` / `ZEROSMQ_CURVE_KEYS` lists topics and echoes a message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use zerosmq::curve::{generate_keys, key_text, CurveKeyPair};
use zerosmq::Error;
use zerosmq_tests::{cargo_bin, contains, CaptureProxy, MasterProcess, WAIT};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zerosmq-std-curve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `pair` as a key file (the format `--curve-keygen` writes) and returns its path.
fn key_file(dir: &Path, name: &str, pair: &CurveKeyPair) -> PathBuf {
    let path = dir.join(format!("{name}.key"));
    let text = format!("{}\n{}\n", key_text(pair.public()), key_text(pair.secret()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A master with a fresh server key pair and `extra` flags; returns it and its public key.
fn master(dir: &Path, extra: &[&str]) -> (MasterProcess, String) {
    let server = generate_keys();
    let keys = key_file(dir, "master", &server);
    let mut args = vec!["--curve-keys", keys.to_str().unwrap()];
    args.extend_from_slice(extra);
    (MasterProcess::start(&args), key_text(server.public()))
}

fn node(endpoint: &str, name: &str, server: &str, keys: Option<CurveKeyPair>) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(endpoint)
        .timeout(Duration::from_secs(2))
        .curve(server, keys)
        .connect()
        .unwrap()
}

#[test]
fn a_listed_std_node_publishes_and_receives_and_others_are_refused_clearly() {
    let dir = temp_dir("listed");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let alice = generate_keys();
    std::fs::write(
        clients.join("alice.pub"),
        format!("{}\n", key_text(alice.public())),
    )
    .unwrap();
    let (master, server) = master(&dir, &["--curve-clients", clients.to_str().unwrap()]);
    let port: u16 = master
        .endpoint()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = CaptureProxy::start(port);
    let via_proxy = format!("tcp://127.0.0.1:{}", proxy.port);

    // Alice's key, read from its key file as ZEROSMQ_CURVE_KEYS would be.
    let alice_file = key_file(&dir, "alice", &alice);
    let keys = zerosmq::curve::load_keys(&alice_file).unwrap();
    assert_eq!(keys.public(), alice.public());
    let n = node(&via_proxy, "curve-alice-node", &server, Some(keys));
    let topic = "very-secret-topic-name";
    let mut p = n.advertise(topic).unwrap();
    let mut s = n.subscribe(topic).unwrap();
    p.wait_ready(WAIT).unwrap();
    s.wait_ready(WAIT).unwrap();
    for i in 0..100u32 {
        p.publish(format!("secret payload {i}").as_bytes()).unwrap();
    }
    for i in 0..100u32 {
        let m = s
            .recv_timeout(WAIT)
            .unwrap()
            .expect("a message within WAIT");
        assert_eq!(m.payload(), format!("secret payload {i}").as_bytes());
    }
    // A multipart message and a large one, boxed frame by frame.
    p.publish_parts(b"head", &[b"second part"]).unwrap();
    let m = s.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(m.payload(), b"head");
    let big = vec![0xa5u8; 64 << 10];
    p.publish(&big).unwrap();
    let m = s.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(m.payload(), &big[..]);
    assert!(n.topics().unwrap().contains(&topic.to_owned()));

    let seen = proxy.bytes();
    assert!(
        seen.len() > 1000,
        "the control traffic went through the proxy"
    );
    for clear in [topic.as_bytes(), b"curve-alice-node", b"REQUEST_PUB"] {
        assert!(
            !contains(&seen, clear),
            "{:?} in clear on the control port",
            String::from_utf8_lossy(clear)
        );
    }

    // A key not in --curve-clients.
    let bob = node(&master.endpoint(), "curve-bob", &server, None);
    let e = bob.advertise("t").unwrap_err();
    assert!(matches!(e, Error::CurveRefused { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("refused this node's CURVE public key"),
        "{e}"
    );

    // The wrong server key (another pair's public key).
    let wrong = key_text(generate_keys().public());
    let lost = zerosmq::Node::builder("curve-lost")
        .master(master.endpoint())
        .timeout(Duration::from_millis(800))
        .curve(wrong, Some(alice.clone()))
        .connect()
        .unwrap();
    let e = lost.topics().unwrap_err();
    assert!(matches!(e, Error::WrongServerKey { .. }), "{e:?}");
    assert!(e.to_string().contains("server public key"), "{e}");

    // A node without CURVE gets no answer.
    let clear = zerosmq::Node::builder("clear")
        .master(master.endpoint())
        .timeout(Duration::from_millis(500))
        .connect()
        .unwrap();
    assert!(matches!(clear.topics(), Err(Error::Timeout { .. })));

    // Alice is still served.
    p.publish(b"after the refusals").unwrap();
    let m = s.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(m.payload(), b"after the refusals");
}

#[test]
fn an_ephemeral_std_node_and_the_cli_from_the_environment_on_a_curve_master() {
    let dir = temp_dir("env");
    let (master, server) = master(&dir, &[]);
    let n = node(&master.endpoint(), "curve-ephemeral", &server, None);
    let topic = "curve-cli-topic";
    let mut p = n.advertise(topic).unwrap();
    p.wait_ready(WAIT).unwrap();

    let cli_keys = key_file(&dir, "cli", &generate_keys());
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(cargo_bin("zerosmq-cli", "zerosmq"));
        cmd.args(args)
            .env("ZEROSMQ_MASTER", master.endpoint())
            .env(zerosmq::CURVE_SERVER_KEY_ENV, &server)
            .env(zerosmq::CURVE_KEYS_ENV, &cli_keys);
        cmd
    };
    let out = cli(&["topic", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(topic), "{text}");

    // Echo one message: publish until the CLI's subscriber got it (the CLI exits after one).
    let mut echo = cli(&["topic", "echo", topic, "-n", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut waited = Duration::ZERO;
    let status = loop {
        p.publish(b"hello over curve").unwrap();
        p.flush(WAIT);
        if let Some(status) = echo.try_wait().unwrap() {
            break status;
        }
        assert!(waited < WAIT * 3, "the CLI's echo got nothing");
        // Polls the child's exit; the publisher's rate, not a synchronisation.
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut echo.stdout.take().unwrap(), &mut text).unwrap();
    assert!(status.success(), "{text}");
    assert!(text.contains("hello over curve"), "{text}");

    // Without the server key the CLI's requests get no answer; a bad key is a clear error.
    let out = cli(&["topic", "list", "--timeout", "0.5"])
        .env(zerosmq::CURVE_SERVER_KEY_ENV, "not a key")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid CURVE server key"), "{err}");
}
