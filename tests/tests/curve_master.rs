//! CURVE on the master's control port and topic ports: the real master binary (`--curve-keys`,
//! `--curve-clients`, `--acl`), real TCP, pyzmq's libzmq (built with CURVE) as the independent
//! peer.
//!
//! - pyzmq CURVE PUB and SUB publish and receive through the master, through a TCP proxy in the
//!   test that records every byte: neither the topic name nor the payload is in clear.
//! - A pyzmq CURVE REQ gets its grants from the control port, through the same kind of proxy:
//!   neither the request nor the reply is in clear.
//! - Refusals, each a clear log line, with the master serving everyone else: NULL and PLAIN
//!   clients on a CURVE port, a wrong server key, a client key not in `--curve-clients`, an ACL
//!   refusal for a CURVE identity, garbage and truncated frames mid-handshake; on the control
//!   port too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use zerosmq_tests::{cargo_bin, contains, CaptureProxy, MasterProcess, PythonPeer, WAIT};

/// A pyzmq peer. `client KIND PORT MECH...` connects one socket and prints the first handshake
/// event; `pubsub PUB_PORT SUB_PORT SERVER_KEY PUB_KEYS SUB_KEYS TOPIC COUNT` runs a CURVE PUB
/// and SUB through the master until COUNT messages arrived in order.
const PEER: &str = r#"
import sys, zmq
from zmq.utils.monitor import recv_monitor_message
ctx = zmq.Context()
EVENTS = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "SUCCEEDED", zmq.EVENT_HANDSHAKE_FAILED_AUTH: "FAILED_AUTH",
          zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "FAILED_PROTOCOL",
          zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "FAILED_NO_DETAIL", zmq.EVENT_DISCONNECTED: "DISCONNECTED"}

def socket(kind, port, mech):
    s = ctx.socket(kind)
    s.linger = 0
    s.reconnect_ivl = 60000
    if mech[0] == "plain":
        s.plain_username, s.plain_password = mech[1].encode(), mech[2].encode()
    elif mech[0] == "curve":
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = (m.encode() for m in mech[1:4])
    m = s.get_monitor_socket(sum(EVENTS))
    s.connect("tcp://127.0.0.1:%s" % port)
    return s, m

def event(m):
    m.RCVTIMEO = 10000
    while True:
        ev = recv_monitor_message(m)
        if ev["event"] in EVENTS:
            return EVENTS[ev["event"]], ev["value"]

mode = sys.argv[1]
if mode == "req":
    # req PORT REQUEST MECH...: one request on a REQ; the handshake's event, then the reply.
    s, m = socket(zmq.REQ, sys.argv[2], sys.argv[4:])
    s.send(sys.argv[3].encode())
    name, value = event(m)
    print("EVENT", name, value, flush=True)
    if name == "SUCCEEDED":
        s.RCVTIMEO = 10000
        print("REPLY", s.recv().decode(), flush=True)
elif mode == "client":
    kind = {"pub": zmq.PUB, "sub": zmq.SUB}[sys.argv[2]]
    s, m = socket(kind, sys.argv[3], sys.argv[4:])
    name, value = event(m)
    print("EVENT", name, value, flush=True)
elif mode == "pubsub":
    pub_port, sub_port, server, pub_keys, sub_keys, topic, count = sys.argv[2:9]
    topic, count = topic.encode(), int(count)
    sub, sm = socket(zmq.SUB, sub_port, ["curve", server] + sub_keys.split(","))
    sub.subscribe(topic)
    pub, pm = socket(zmq.PUB, pub_port, ["curve", server] + pub_keys.split(","))
    print("SUB", *event(sm), flush=True)
    print("PUB", *event(pm), flush=True)
    # A PUB drops what it sends before the master's subscription arrived, and the master
    # forwards only to subscriptions it has: hello until one gets through.
    for _ in range(400):
        pub.send(topic + b" hello")
        if sub.poll(25):
            break
    else:
        print("FAIL no hello got through", flush=True)
        sys.exit(1)
    for i in range(count):
        pub.send_multipart([topic + b" secret payload %d" % i, b"second part %d" % i])
    got = 0
    sub.RCVTIMEO = 10000
    while got < count:
        parts = sub.recv_multipart()
        if parts[0] == topic + b" hello":
            continue
        want = [topic + b" secret payload %d" % got, b"second part %d" % got]
        if parts != want:
            print("FAIL", parts, "!=", want, flush=True)
            sys.exit(1)
        got += 1
    print("OK", got, flush=True)
"#;

/// RFC 26's test keys as pyzmq prints them (tests/curve_interop.rs uses them too).
const SERVER_PUBLIC: &str = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
const SERVER_SECRET: &str = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
const ALICE: (&str, &str) = (
    "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
    "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
);

/// A fresh key pair from libzmq (pyzmq's `curve_keypair`), as `public,secret`.
fn libzmq_keypair() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import zmq; p, s = zmq.curve_keypair(); print(p.decode() + ',' + s.decode())",
        ])
        .output()
        .expect("python3 runs (pyzmq: pip install pyzmq)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The pyzmq peer script above.
struct Peer;

impl Peer {
    fn start(args: &[&str]) -> PythonPeer {
        PythonPeer::start(PEER, args)
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "zerosmq-curve-master-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A master with the test's server key pair and `extra` flags.
fn master(dir: &std::path::Path, extra: &[&str]) -> MasterProcess {
    let keys = dir.join("master.key");
    std::fs::write(&keys, format!("{SERVER_PUBLIC}\n{SERVER_SECRET}\n")).unwrap();
    let mut args = vec!["--curve-keys", keys.to_str().unwrap()];
    args.extend_from_slice(extra);
    MasterProcess::start(&args)
}

/// One request from a pyzmq REQ on `port` with `mech` (`["curve", server, public, secret]`,
/// `["plain", user, password]` or `["null"]`): the handshake's event line, and the reply.
fn control_request(port: u16, request: &str, mech: &[&str]) -> (String, Option<String>) {
    let port = port.to_string();
    let mut args = vec!["req", &port, request];
    args.extend_from_slice(mech);
    let lines = Peer::start(&args).finish();
    let event = lines
        .iter()
        .find(|l| l.starts_with("EVENT"))
        .cloned()
        .unwrap_or_default();
    let reply = lines
        .iter()
        .find_map(|l| l.strip_prefix("REPLY "))
        .map(str::to_owned);
    (event, reply)
}

/// A grant's port, asked over the CURVE control port with `keys` (`public,secret`).
fn grant(master: &MasterProcess, keys: &str, command: &str, node: &str, topic: &str) -> u16 {
    grant_from(master, SERVER_PUBLIC, keys, command, node, topic)
}

/// [`grant`] from a master whose public key is `server`.
fn grant_from(
    master: &MasterProcess,
    server: &str,
    keys: &str,
    command: &str,
    node: &str,
    topic: &str,
) -> u16 {
    let (public, secret) = keys.split_once(',').unwrap();
    let request = format!("{command} {node} {topic}");
    let (event, reply) = control_request(master.port, &request, &["curve", server, public, secret]);
    let reply = reply.unwrap_or_else(|| panic!("{request}: no reply ({event})"));
    reply
        .strip_prefix("REQUEST GRANT ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{request}: {reply}"))
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

/// A TCP proxy to `127.0.0.1:upstream` that records every byte both ways.

#[test]
fn pyzmq_curve_pub_and_sub_talk_through_the_master_and_nothing_is_in_clear() {
    let dir = temp_dir("pubsub");
    let master = master(&dir, &[]);
    let topic = "very-secret-topic-name";
    // Clients with ephemeral keys of their own: no --curve-clients, anyone with the server key.
    let (pub_keys, sub_keys) = (libzmq_keypair(), libzmq_keypair());
    let publish = grant(&master, &pub_keys, "REQUEST_PUB", "py-pub", topic);
    let subscribe = grant(&master, &sub_keys, "REQUEST_SUB", "py-sub", topic);
    let (to_pub, to_sub) = (CaptureProxy::start(publish), CaptureProxy::start(subscribe));
    let peer = Peer::start(&[
        "pubsub",
        &to_pub.port.to_string(),
        &to_sub.port.to_string(),
        SERVER_PUBLIC,
        &pub_keys,
        &sub_keys,
        topic,
        "200",
    ]);
    let lines = peer.finish();
    assert!(lines.iter().any(|l| l == "OK 200"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("SUB SUCCEEDED")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("PUB SUCCEEDED")),
        "{lines:?}"
    );
    expect_log(&master, &["peer connected", "curve=true"]);

    let (up, down) = (to_pub.bytes(), to_sub.bytes());
    assert!(
        up.len() > 200 * 40 && down.len() > 200 * 40,
        "{} {}",
        up.len(),
        down.len()
    );
    for captured in [&up, &down] {
        assert!(
            contains(captured, b"CURVE"),
            "the greetings name the mechanism"
        );
        for secret in [
            topic.as_bytes(),
            b"secret payload",
            b"second part",
            b"hello",
            b"very-secret",
        ] {
            assert!(
                !contains(captured, secret),
                "{:?} in clear on the wire",
                String::from_utf8_lossy(secret)
            );
        }
    }
    println!(
        "captured {} bytes to the publish port and {} to the subscribe port: no topic name or payload in clear",
        up.len(),
        down.len()
    );
}

/// The raw bytes of a CURVE client's greeting (ZMTP 3.0, mechanism CURVE).
fn curve_greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 0;
    g[12..17].copy_from_slice(b"CURVE");
    g
}

/// Sends `bytes` on a fresh connection to `port`, then closes it.
fn send_raw(port: u16, bytes: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    // Until the master closes its side: what it sends is read and dropped.
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

#[test]
fn refusals_are_logged_and_everyone_else_is_served() {
    let dir = temp_dir("refusals");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let bob = libzmq_keypair();
    let carol = libzmq_keypair();
    std::fs::write(clients.join("alice.pub"), format!("{}\n", ALICE.0)).unwrap();
    let (bob_public, _) = bob.split_once(',').unwrap();
    std::fs::write(clients.join("bob.pub"), format!("{bob_public}\n")).unwrap();
    let acl = dir.join("acl");
    std::fs::write(&acl, "user alice\ntopic read t\nuser bob\ntopic write t\n").unwrap();
    let master = master(
        &dir,
        &[
            "--curve-clients",
            clients.to_str().unwrap(),
            "--acl",
            acl.to_str().unwrap(),
        ],
    );
    let alice = format!("{},{}", ALICE.0, ALICE.1);
    let publish = grant(&master, &bob, "REQUEST_PUB", "bob", "t");
    let subscribe = grant(&master, &alice, "REQUEST_SUB", "alice", "t");
    let sub_port = subscribe.to_string();
    let pub_port = publish.to_string();
    let curve = |keys: &str| -> Vec<String> {
        let (p, s) = keys.split_once(',').unwrap();
        vec!["curve".into(), SERVER_PUBLIC.into(), p.into(), s.into()]
    };
    let client = |kind: &str, port: &str, mech: Vec<String>| -> String {
        let mut args = vec!["client".to_owned(), kind.to_owned(), port.to_owned()];
        args.extend(mech);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let lines = Peer::start(&args).finish();
        lines
            .into_iter()
            .find(|l| l.starts_with("EVENT"))
            .unwrap_or_default()
    };

    // NULL and PLAIN clients on a CURVE port.
    let ev = client("sub", &sub_port, vec!["null".into()]);
    assert!(!ev.contains("SUCCEEDED"), "{ev}");
    let line = expect_log(&master, &["topic=t", "this port speaks CURVE"]);
    println!("NULL client: {ev}; master: {line}");
    let ev = client(
        "sub",
        &sub_port,
        vec!["plain".into(), "alice".into(), "pw".into()],
    );
    assert!(!ev.contains("SUCCEEDED"), "{ev}");
    let line = expect_log(&master, &["topic=t", "this port speaks CURVE"]);
    println!("PLAIN client: {ev}; master: {line}");

    // A wrong server key: the master cannot open the client's HELLO.
    let other = libzmq_keypair();
    let (wrong_server, _) = other.split_once(',').unwrap();
    let (ap, asec) = alice.split_once(',').unwrap();
    let ev = client(
        "sub",
        &sub_port,
        vec!["curve".into(), wrong_server.into(), ap.into(), asec.into()],
    );
    assert!(!ev.contains("SUCCEEDED"), "{ev}");
    let line = expect_log(
        &master,
        &["peer dropped", "CURVE: box failed to authenticate"],
    );
    println!("wrong server key: {ev}; master: {line}");

    // A key not in --curve-clients: ERROR 400, which libzmq reports as an authentication
    // failure.
    let ev = client("sub", &sub_port, curve(&carol));
    assert!(ev.starts_with("EVENT FAILED_AUTH 400"), "{ev}");
    let (carol_public, _) = carol.split_once(',').unwrap();
    let line = expect_log(
        &master,
        &[&format!(
            "CURVE client {carol_public} refused: key not in --curve-clients"
        )],
    );
    println!("unlisted key: {ev}; master: {line}");

    // The ACL: alice may read t, not write it.
    let ev = client("pub", &pub_port, curve(&alice));
    assert!(ev.starts_with("EVENT FAILED_AUTH 400"), "{ev}");
    let line = expect_log(
        &master,
        &["CURVE client 'alice' refused: not allowed by the ACL"],
    );
    println!("ACL: {ev}; master: {line}");

    // Garbage and truncated frames mid-handshake, raw.
    let g = curve_greeting();
    let mut hello_cut = g.to_vec();
    hello_cut.extend_from_slice(&[0x04, 200, 5, b'H', b'E', b'L', b'L', b'O', 1, 0]);
    let mut hello_junk = g.to_vec();
    hello_junk.extend_from_slice(&[0x04, 200, 5, b'H', b'E', b'L', b'L', b'O', 1, 0]);
    hello_junk.extend(std::iter::repeat_n(0xA5, 192));
    let mut bad_header = g.to_vec();
    bad_header.extend_from_slice(&[0x7C, 1, 2, 3]);
    let mut message_first = g.to_vec();
    message_first.extend_from_slice(&[0x00, 3, b'a', b'b', b'c']);
    for (what, bytes, reason) in [
        (
            "cut HELLO",
            &hello_cut,
            "peer closed the connection mid-frame",
        ),
        (
            "HELLO of junk",
            &hello_junk,
            "CURVE: box failed to authenticate",
        ),
        ("bad frame header", &bad_header, "reserved bits"),
        ("message before HELLO", &message_first, "frame not allowed"),
    ] {
        send_raw(subscribe, bytes);
        let line = expect_log(&master, &["peer", reason]);
        println!("{what}: {line}");
    }

    // Everyone else is served: bob publishes, alice receives, through the same master.
    let peer = Peer::start(&[
        "pubsub",
        &pub_port,
        &sub_port,
        SERVER_PUBLIC,
        &bob,
        &alice,
        "t",
        "20",
    ]);
    let lines = peer.finish();
    assert!(lines.iter().any(|l| l == "OK 20"), "{lines:?}");
    expect_log(&master, &["peer connected", "user=\"alice\""]);
}

#[test]
fn keygen_writes_a_pair_the_master_and_libzmq_accept() {
    let dir = temp_dir("keygen");
    let file = dir.join("master.key");
    let out = Command::new(cargo_bin("zerosmq-master", "zerosmq-master"))
        .args(["--curve-keygen", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], public);
    // libzmq derives the same public key from the secret one.
    let derived = Command::new("python3")
        .args([
            "-c",
            "import sys, zmq; print(zmq.curve_public(sys.argv[1].encode()).decode())",
            lines[1],
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(derived.stdout).unwrap().trim(), public);
    // An existing key file is not overwritten.
    let again = Command::new(cargo_bin("zerosmq-master", "zerosmq-master"))
        .args(["--curve-keygen", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // A master with it serves a libzmq client that knows the printed key.
    let keys = file.to_str().unwrap();
    let master = MasterProcess::start(&["--curve-keys", keys]);
    let mine = libzmq_keypair();
    let port = grant_from(&master, &public, &mine, "REQUEST_SUB", "k", "keyed");
    let (p, s) = mine.split_once(',').unwrap();
    let lines = Peer::start(&["client", "sub", &port.to_string(), "curve", &public, p, s]).finish();
    assert!(
        lines.iter().any(|l| l.starts_with("EVENT SUCCEEDED")),
        "{lines:?}"
    );
}

#[test]
fn pyzmq_curve_req_gets_grants_in_the_dark_and_refusals_are_logged() {
    let dir = temp_dir("control");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    std::fs::write(clients.join("alice.pub"), format!("{}\n", ALICE.0)).unwrap();
    let acl = dir.join("acl");
    std::fs::write(&acl, "user alice\ntopic write secret-*\n").unwrap();
    let master = master(
        &dir,
        &[
            "--curve-clients",
            clients.to_str().unwrap(),
            "--acl",
            acl.to_str().unwrap(),
        ],
    );
    let alice = format!("{},{}", ALICE.0, ALICE.1);
    let curve = |keys: &str| -> Vec<String> {
        let (p, s) = keys.split_once(',').unwrap();
        vec!["curve".into(), SERVER_PUBLIC.into(), p.into(), s.into()]
    };
    let ask = |request: &str, mech: Vec<String>| {
        let mech: Vec<&str> = mech.iter().map(String::as_str).collect();
        control_request(master.port, request, &mech)
    };

    // Through a capturing proxy: a grant, and nothing of the request or reply in clear.
    let to_control = CaptureProxy::start(master.port);
    let request = "REQUEST_PUB very-secret-node secret-topic-name";
    let (public, secret) = alice.split_once(',').unwrap();
    let (event, reply) = control_request(
        to_control.port,
        request,
        &["curve", SERVER_PUBLIC, public, secret],
    );
    assert!(event.starts_with("EVENT SUCCEEDED"), "{event}");
    let reply = reply.expect("a reply");
    let port = reply.strip_prefix("REQUEST GRANT ").expect("granted");
    expect_log(&master, &["very-secret-node", "granted"]);
    let captured = to_control.bytes();
    assert!(contains(&captured, b"CURVE"), "the greetings name it");
    for secret in [
        &b"REQUEST_PUB"[..],
        b"very-secret",
        b"secret-topic",
        b"GRANT",
        port.as_bytes(),
    ] {
        assert!(
            !contains(&captured, secret),
            "{:?} in clear on the wire",
            String::from_utf8_lossy(secret)
        );
    }
    println!(
        "captured {} bytes of a CURVE control request and reply: none in clear",
        captured.len()
    );

    // The ACL names the CURVE client by its key file: alice may publish secret-*, not more.
    let (_, reply) = ask("REQUEST_PUB a-node other-topic", curve(&alice));
    let reply = reply.expect("a reply");
    assert!(reply.starts_with("ERROR refused"), "{reply}");
    expect_log(
        &master,
        &["user 'alice' may not publish 'other-topic' (ACL)"],
    );

    // Refusals: NULL and PLAIN clients, a wrong server key, an unlisted key.
    let (event, reply) = ask("REQUEST_PUB n secret-x", vec!["null".into()]);
    assert!(reply.is_none() && !event.contains("SUCCEEDED"), "{event}");
    let line = expect_log(&master, &["control peer dropped", "this port speaks CURVE"]);
    println!("NULL client: {event}; master: {line}");
    let (event, reply) = ask(
        "REQUEST_PUB n secret-x",
        vec!["plain".into(), "alice".into(), "pw".into()],
    );
    assert!(reply.is_none() && !event.contains("SUCCEEDED"), "{event}");
    let line = expect_log(&master, &["control peer dropped", "this port speaks CURVE"]);
    println!("PLAIN client: {event}; master: {line}");
    let other = libzmq_keypair();
    let (wrong_server, _) = other.split_once(',').unwrap();
    let (event, reply) = ask(
        "REQUEST_PUB n secret-x",
        vec![
            "curve".into(),
            wrong_server.into(),
            public.into(),
            secret.into(),
        ],
    );
    assert!(reply.is_none() && !event.contains("SUCCEEDED"), "{event}");
    let line = expect_log(
        &master,
        &["control peer dropped", "CURVE: box failed to authenticate"],
    );
    println!("wrong server key: {event}; master: {line}");
    let carol = libzmq_keypair();
    let (event, reply) = ask("REQUEST_PUB n secret-x", curve(&carol));
    assert!(
        reply.is_none() && event.starts_with("EVENT FAILED_AUTH 400"),
        "{event}"
    );
    let (carol_public, _) = carol.split_once(',').unwrap();
    let line = expect_log(
        &master,
        &[&format!(
            "CURVE client {carol_public} refused: key not in --curve-clients"
        )],
    );
    println!("unlisted key: {event}; master: {line}");

    // Everyone else is still served.
    let (event, reply) = ask("REQUEST_PUB n2 secret-y", curve(&alice));
    assert!(event.starts_with("EVENT SUCCEEDED"), "{event}");
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.starts_with("REQUEST GRANT ")),
        "{reply:?}"
    );
}
