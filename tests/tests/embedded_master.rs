//! The embedded node (blocking driver over std TcpStream) as a full node against the real
//! master, next to std nodes: grants, messages both ways, the graph, and a master restart.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use zerosmq_embedded::{Error, Node, StdConnect};
use zerosmq_master::{Master, MasterConfig};
use zerosmq_tests::{node, start_master, WAIT};

fn control_addr(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
}

#[test]
fn embedded_node_next_to_std_nodes_messages_both_ways_and_in_the_graph() {
    let master = start_master();
    let stack = StdConnect {
        read_timeout: Some(WAIT),
    };
    let mcu = Node::new(&stack, control_addr(master.control_port()), "mcu").unwrap();
    let std_node = node(&master, "host");

    // Embedded -> std.
    let mut std_sub = std_node.subscribe("imu").unwrap();
    std_sub.wait_ready(WAIT).unwrap();
    let mut pub_buf = [0u8; 256];
    let mut mcu_pub = mcu.advertise("imu", &mut pub_buf).unwrap();
    mcu_pub.wait_ready().unwrap();
    for i in 0..10u8 {
        mcu_pub.publish(&[i, b' ', 0xff]).unwrap();
    }
    for i in 0..10u8 {
        let msg = std_sub
            .recv_timeout(WAIT)
            .unwrap()
            .expect("message from the embedded node");
        assert_eq!(msg.topic(), "imu");
        assert_eq!(msg.payload(), [i, b' ', 0xff]);
    }

    // Std -> embedded, and the binary control encoding.
    let mcu_bin = Node::new(&stack, control_addr(master.control_port()), "mcu2")
        .unwrap()
        .with_encoding(zerosmq_embedded::Encoding::Binary);
    let mut sub_buf = [0u8; 256];
    let mut mcu_sub = mcu_bin.subscribe("cmd", &mut sub_buf).unwrap();
    mcu_sub.wait_ready().unwrap();
    let mut std_pub = std_node.advertise("cmd").unwrap();
    std_pub.wait_ready(WAIT).unwrap();
    std_pub.publish(b"go left").unwrap();
    std_pub.publish(b"go right").unwrap();
    assert_eq!(mcu_sub.recv().unwrap(), b"go left");
    assert_eq!(mcu_sub.recv().unwrap(), b"go right");

    // The graph, asked by the embedded node and by the std node, shows the embedded roles.
    let mut graph_buf = [0u8; 2048];
    let dot = mcu.graph(&mut graph_buf).unwrap();
    assert!(dot.contains("mcu") && dot.contains("imu"), "{dot}");
    let dot = std_node.graph().unwrap();
    assert!(dot.contains("\"mcu\"") && dot.contains("\"mcu2\""), "{dot}");
    drop(mcu_pub);
    drop(mcu_sub);
    master.shutdown().unwrap();
}

#[test]
fn embedded_roles_come_back_by_themselves_after_a_master_restart() {
    let master = start_master();
    let port = master.control_port();
    let stack = StdConnect {
        read_timeout: Some(Duration::from_millis(200)),
    };
    let mcu = Node::new(&stack, control_addr(port), "mcu").unwrap();
    let mut pub_buf = [0u8; 128];
    let mut sub_buf = [0u8; 128];
    let mut publisher = mcu.advertise("loop", &mut pub_buf).unwrap();
    let mut subscriber = mcu.subscribe("loop", &mut sub_buf).unwrap();
    publisher.wait_ready().unwrap();
    subscriber.wait_ready().unwrap();
    publisher.publish(b"before").unwrap();
    assert_eq!(subscriber.recv().unwrap(), b"before");

    master.shutdown().unwrap();
    let master = Master::spawn(MasterConfig {
        bind: "127.0.0.1".into(),
        port,
        ..MasterConfig::default()
    })
    .expect("master restarts on the same port");

    // Same objects, no rebuilding: each call notices the dead connection, asks the new master
    // for grants and reconnects. Messages sent while the path is re-forming may be lost (PUB
    // semantics), so publish until one arrives.
    let deadline = Instant::now() + WAIT;
    let mut received = None;
    while received.is_none() && Instant::now() < deadline {
        let _ = publisher.publish(b"after");
        match subscriber.recv() {
            Ok(p) => received = Some(p.to_vec()),
            Err(Error::TimedOut) => {}
            Err(e) => eprintln!("while reconnecting: {e}"),
        }
    }
    assert_eq!(received.as_deref(), Some(&b"after"[..]));
    master.shutdown().unwrap();
}

#[test]
fn embedded_heartbeat_claims_the_name_and_reports_the_epoch() {
    let master = start_master();
    let stack = StdConnect {
        read_timeout: Some(WAIT),
    };
    let mcu = Node::new(&stack, control_addr(master.control_port()), "beating").unwrap();
    let mut buf = [0u8; 256];
    let epoch = mcu.heartbeat(&mut buf).unwrap();
    assert_eq!(
        mcu.heartbeat(&mut buf).unwrap(),
        epoch,
        "same master, same epoch"
    );
    // Another instance (another session) may not take the live name.
    let other = Node::new(&stack, control_addr(master.control_port()), "beating")
        .unwrap()
        .with_probe_seed(1);
    assert!(matches!(other.heartbeat(&mut buf), Err(Error::Refused(_))));
    master.shutdown().unwrap();
}

#[test]
fn idle_publisher_that_polls_outlives_the_masters_heartbeat_timeout() {
    // This master PINGs every 2 s and closes a connection silent for 6 s after a PING. An idle
    // embedded publisher stays connected by calling poll(), which answers with PONGs.
    let master = zerosmq_tests::start_master_with(zerosmq_tests::MasterConfig {
        zmtp_heartbeat: Duration::from_secs(2),
        ..Default::default()
    });
    let stack = StdConnect {
        read_timeout: Some(WAIT),
    };
    let mcu = Node::new(&stack, control_addr(master.control_port()), "idle-mcu").unwrap();
    let std_node = node(&master, "watcher");
    let mut sub = std_node.subscribe("idle").unwrap();
    sub.wait_ready(WAIT).unwrap();
    let mut buf = [0u8; 128];
    let mut publisher = mcu.advertise("idle", &mut buf).unwrap();
    publisher.wait_ready().unwrap();
    let idle_until = Instant::now() + Duration::from_secs(9);
    while Instant::now() < idle_until {
        // An Err here would mean the master closed the connection (EOF).
        publisher.poll().unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    publisher.publish(b"still here").unwrap();
    let msg = sub
        .recv_timeout(WAIT)
        .unwrap()
        .expect("message after 9 s idle");
    assert_eq!(msg.payload(), b"still here");
    master.shutdown().unwrap();
}
