//! The embedded node (blocking driver over std TCP) with CURVE against the real master binary
//! started with `--curve-keys`: every connection of the node (control and data) is a CURVE
//! connection, next to std nodes with `NodeBuilder::curve`.
//!
//! - With `--curve-clients` listing its key: grants, messages to a std subscriber and from a std
//!   publisher, the graph; a capture proxy on the control port sees no topic or node name in
//!   clear. An unlisted key is `Error::AuthFailed`, a wrong server key `Error::WrongServerKey`,
//!   a node without CURVE gets nothing, and the listed nodes are still served.
//! - Without `--curve-clients`: any node key is served.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use zerosmq::curve::{generate_keys, key_text, CurveKeyPair};
use zerosmq_embedded::{CurveKeyMismatch, Error, Node, StdConnect};
use zerosmq_tests::{contains, CaptureProxy, MasterProcess, Urandom, WAIT};

fn urandom() -> Urandom {
    Urandom::new()
}

/// The publisher's buffer in the first test: it boxes every message.
const PUB_BUF: usize = 512;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "zerosmq-embedded-curve-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A master with a fresh server key pair (its key file as `--curve-keygen` writes it) and
/// `extra` flags; returns it and its public key.
fn master(dir: &Path, extra: &[&str]) -> (MasterProcess, CurveKeyPair) {
    let server = generate_keys();
    let keys = dir.join("master.key");
    let text = format!(
        "{}\n{}\n",
        key_text(server.public()),
        key_text(server.secret())
    );
    std::fs::write(&keys, text).unwrap();
    let mut args = vec!["--curve-keys", keys.to_str().unwrap()];
    args.extend_from_slice(extra);
    (MasterProcess::start(&args), server)
}

fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
}

/// An embedded node on `port` with CURVE: the master's key `server`, its own pair `keys`.
fn mcu<'s>(
    stack: &'s StdConnect,
    port: u16,
    name: &str,
    server: &CurveKeyPair,
    keys: &CurveKeyPair,
) -> Node<&'s StdConnect> {
    Node::new(stack, addr(port), name)
        .unwrap()
        .with_curve(
            *server.public(),
            *keys.public(),
            *keys.secret(),
            &mut urandom(),
        )
        .unwrap()
}

fn std_node(
    endpoint: &str,
    name: &str,
    server: &CurveKeyPair,
    keys: CurveKeyPair,
) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(endpoint)
        .timeout(Duration::from_secs(2))
        .curve(key_text(server.public()), Some(keys))
        .connect()
        .unwrap()
}

#[test]
fn a_listed_embedded_node_publishes_and_receives_and_others_are_refused_clearly() {
    let dir = temp_dir("listed");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (board, host) = (generate_keys(), generate_keys());
    for (name, pair) in [("board", &board), ("host", &host)] {
        let line = format!("{}\n", key_text(pair.public()));
        std::fs::write(clients.join(format!("{name}.pub")), line).unwrap();
    }
    let (master, server) = master(&dir, &["--curve-clients", clients.to_str().unwrap()]);
    let port = port_of(&master.endpoint());
    let proxy = CaptureProxy::start(port);
    let stack = StdConnect {
        read_timeout: Some(WAIT),
    };
    let node = mcu(&stack, proxy.port, "curve-board-node", &server, &board);
    let host = std_node(&master.endpoint(), "curve-host", &server, host);

    // Embedded -> std.
    let topic = "very-secret-imu";
    let mut std_sub = host.subscribe(topic).unwrap();
    std_sub.wait_ready(WAIT).unwrap();
    let mut pub_buf = [0u8; PUB_BUF];
    let mut publisher = node.advertise(topic, &mut pub_buf).unwrap();
    publisher.wait_ready().unwrap();
    for i in 0..10u8 {
        publisher.publish(&[i, b' ', 0xff]).unwrap();
    }
    for i in 0..10u8 {
        let msg = std_sub.recv_timeout(WAIT).unwrap().expect("a message");
        assert_eq!(msg.topic(), topic);
        assert_eq!(msg.payload(), [i, b' ', 0xff]);
    }
    // The largest payload the publisher's buffer boxes, and one byte more.
    let fits = vec![7u8; PUB_BUF - topic.len() - 1 - 33 - 9];
    publisher.publish(&fits).unwrap();
    assert_eq!(
        std_sub.recv_timeout(WAIT).unwrap().unwrap().payload(),
        &fits[..]
    );
    let too_large = vec![7u8; fits.len() + 1];
    let e = publisher.publish(&too_large).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall), "{e:?}");
    publisher.publish(b"still there").unwrap();
    assert_eq!(
        std_sub.recv_timeout(WAIT).unwrap().unwrap().payload(),
        b"still there"
    );

    // Std -> embedded.
    let mut sub_buf = [0u8; 512];
    let mut subscriber = node.subscribe("cmd", &mut sub_buf).unwrap();
    subscriber.wait_ready().unwrap();
    let mut std_pub = host.advertise("cmd").unwrap();
    std_pub.wait_ready(WAIT).unwrap();
    std_pub.publish(b"go left").unwrap();
    std_pub.publish(b"go right").unwrap();
    assert_eq!(subscriber.recv().unwrap(), b"go left");
    assert_eq!(subscriber.recv().unwrap(), b"go right");

    // A request's reply longer than the handshake's, boxed too.
    let mut graph_buf = [0u8; 2048];
    let dot = node.graph(&mut graph_buf).unwrap();
    assert!(
        dot.contains("curve-board-node") && dot.contains(topic),
        "{dot}"
    );

    let seen = proxy.bytes();
    assert!(
        seen.len() > 1000,
        "the control traffic went through the proxy"
    );
    for clear in [topic.as_bytes(), b"curve-board-node", b"cmd"] {
        assert!(
            !contains(&seen, clear),
            "{:?} in clear on the control port",
            String::from_utf8_lossy(clear)
        );
    }

    // A key not in --curve-clients: the master's ERROR 400.
    let stranger = generate_keys();
    let refused = mcu(&stack, port, "curve-stranger", &server, &stranger);
    let e = refused.advertise("t", &mut [0u8; 512]).unwrap_err();
    println!("unlisted key: {e}");
    assert!(matches!(e, Error::AuthFailed { status: 400 }), "{e:?}");

    // The wrong server key: the master cannot open the HELLO and closes.
    let lost = mcu(&stack, port, "curve-lost", &generate_keys(), &board);
    let e = lost.graph(&mut [0u8; 512]).unwrap_err();
    println!("wrong server key: {e}");
    assert!(matches!(e, Error::WrongServerKey), "{e:?}");
    assert!(e.to_string().contains("server public key"), "{e}");

    // A public key that is not the secret key's.
    let mismatch = Node::new(&stack, addr(port), "curve-mismatch")
        .unwrap()
        .with_curve(
            *server.public(),
            *stranger.public(),
            *board.secret(),
            &mut urandom(),
        );
    assert_eq!(mismatch.err(), Some(CurveKeyMismatch));

    // A node without CURVE: its NULL greeting is not the master's mechanism.
    let clear = Node::new(&stack, addr(port), "clear").unwrap();
    let e = clear.graph(&mut [0u8; 512]).unwrap_err();
    println!("no CURVE: {e}");
    assert!(
        matches!(e, Error::Protocol(_) | Error::Disconnected),
        "{e:?}"
    );

    // The listed nodes are still served.
    publisher.publish(b"after the refusals").unwrap();
    assert_eq!(
        std_sub.recv_timeout(WAIT).unwrap().unwrap().payload(),
        b"after the refusals"
    );
    std_pub.publish(b"and back").unwrap();
    assert_eq!(subscriber.recv().unwrap(), b"and back");
}

#[test]
fn without_curve_clients_any_embedded_key_is_served() {
    let dir = temp_dir("open");
    let (master, server) = master(&dir, &[]);
    let port = port_of(&master.endpoint());
    let stack = StdConnect {
        read_timeout: Some(WAIT),
    };
    let node = mcu(&stack, port, "curve-any-board", &server, &generate_keys());
    let host = std_node(
        &master.endpoint(),
        "curve-any-host",
        &server,
        generate_keys(),
    );
    let mut sub_buf = [0u8; 320];
    let mut subscriber = node.subscribe("up", &mut sub_buf).unwrap();
    let mut pub_buf = [0u8; 320];
    let mut publisher = node.advertise("up", &mut pub_buf).unwrap();
    publisher.wait_ready().unwrap();
    subscriber.wait_ready().unwrap();
    let mut std_sub = host.subscribe("up").unwrap();
    std_sub.wait_ready(WAIT).unwrap();
    publisher.publish(b"hello through CURVE").unwrap();
    // The embedded node's own subscriber and the std one both get it.
    assert_eq!(subscriber.recv().unwrap(), b"hello through CURVE");
    let msg = std_sub.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(msg.payload(), b"hello through CURVE");
}

/// The async node over `async-io` on std TCP (as in embedded_master.rs).
mod async_std_stack {
    use std::net::{SocketAddr, TcpStream};

    use async_io::Async;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    pub struct AsyncStack;
    pub struct AsyncConn(Async<TcpStream>);

    impl embedded_io_async::ErrorType for AsyncConn {
        type Error = std::io::Error;
    }

    impl embedded_io_async::Read for AsyncConn {
        async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf).await
        }
    }

    impl embedded_io_async::Write for AsyncConn {
        async fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf).await
        }
        async fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush().await
        }
    }

    impl embedded_nal_async::TcpConnect for AsyncStack {
        type Error = std::io::Error;
        type Connection<'a> = AsyncConn;
        async fn connect(&self, remote: SocketAddr) -> std::io::Result<AsyncConn> {
            Ok(AsyncConn(Async::<TcpStream>::connect(remote).await?))
        }
    }
}

#[test]
fn the_async_node_with_curve_publishes_and_receives_through_the_master() {
    let dir = temp_dir("async");
    let (master, server) = master(&dir, &[]);
    let port = port_of(&master.endpoint());
    let board = generate_keys();
    let stack = async_std_stack::AsyncStack;
    let node = zerosmq_embedded::asynch::Node::new(&stack, addr(port), "curve-async-board")
        .unwrap()
        .with_curve(
            *server.public(),
            *board.public(),
            *board.secret(),
            &mut urandom(),
        )
        .unwrap();
    let host = std_node(
        &master.endpoint(),
        "curve-async-host",
        &server,
        generate_keys(),
    );
    let mut std_sub = host.subscribe("down").unwrap();
    std_sub.wait_ready(WAIT).unwrap();
    let mut std_pub = host.advertise("up").unwrap();
    async_io::block_on(async {
        let mut pub_buf = [0u8; 320];
        let mut publisher = node.advertise("down", &mut pub_buf).await.unwrap();
        publisher.wait_ready().await.unwrap();
        publisher.publish(b"from the async board").await.unwrap();
        let mut sub_buf = [0u8; 320];
        let mut subscriber = node.subscribe("up", &mut sub_buf).await.unwrap();
        subscriber.wait_ready().await.unwrap();
        std_pub.wait_ready(WAIT).unwrap();
        std_pub.publish(b"to the async board").unwrap();
        assert_eq!(subscriber.recv().await.unwrap(), b"to the async board");
    });
    let msg = std_sub.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(msg.payload(), b"from the async board");
}
