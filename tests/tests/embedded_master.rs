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

#[test]
fn plain_embedded_node_against_a_master_with_passwords_and_an_acl() {
    let dir = std::env::temp_dir().join(format!("zerosmq-embedded-plain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwords = dir.join("passwords");
    std::fs::write(&passwords, "mcu:s3cret\nhost:h0st\n").unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user mcu\ntopic write imu\ntopic read cmd\nuser host\ntopic read imu\ntopic write cmd\n",
    )
    .unwrap();
    let master = zerosmq_tests::start_master_with(MasterConfig {
        passwords: Some(passwords),
        acl: Some(acl),
        ..Default::default()
    });
    let stack = StdConnect {
        read_timeout: Some(WAIT),
    };
    let addr = control_addr(master.control_port());
    let mcu = Node::new(&stack, addr, "mcu")
        .unwrap()
        .with_plain("mcu", "s3cret")
        .unwrap();
    let host = zerosmq::Node::builder("host")
        .master(master.control_endpoint())
        .timeout(Duration::from_secs(2))
        .plain("host", "h0st")
        .connect()
        .unwrap();

    // Embedded -> std.
    let mut std_sub = host.subscribe("imu").unwrap();
    std_sub.wait_ready(WAIT).unwrap();
    let mut pub_buf = [0u8; 128];
    let mut mcu_pub = mcu.advertise("imu", &mut pub_buf).unwrap();
    mcu_pub.wait_ready().unwrap();
    mcu_pub.publish(b"accel 9.81").unwrap();
    let msg = std_sub.recv_timeout(WAIT).unwrap().expect("PLAIN flow");
    assert_eq!(msg.payload(), b"accel 9.81");

    // Std -> embedded, binary control encoding.
    let mcu_bin = Node::new(&stack, addr, "mcu-bin")
        .unwrap()
        .with_plain("mcu", "s3cret")
        .unwrap()
        .with_encoding(zerosmq_embedded::Encoding::Binary);
    let mut sub_buf = [0u8; 128];
    let mut mcu_sub = mcu_bin.subscribe("cmd", &mut sub_buf).unwrap();
    mcu_sub.wait_ready().unwrap();
    let mut std_pub = host.advertise("cmd").unwrap();
    std_pub.wait_ready(WAIT).unwrap();
    std_pub.publish(b"go").unwrap();
    assert_eq!(mcu_sub.recv().unwrap(), b"go");

    // The ACL refuses a grant: the master's `ERROR refused: ...` reply, as an error value.
    let mut buf = [0u8; 128];
    assert!(matches!(
        mcu.subscribe("imu", &mut buf).map(|_| ()),
        Err(Error::Refused(zerosmq_embedded::ErrorCode::Refused))
    ));
    assert!(matches!(
        mcu.advertise("cmd", &mut buf).map(|_| ()),
        Err(Error::Refused(zerosmq_embedded::ErrorCode::Refused))
    ));

    // A wrong password: AuthFailed at once, not a hang and not a retry loop.
    let intruder = Node::new(&stack, addr, "intruder")
        .unwrap()
        .with_plain("mcu", "guess")
        .unwrap();
    let started = Instant::now();
    assert!(matches!(
        intruder.advertise("imu", &mut buf).map(|_| ()),
        Err(Error::AuthFailed { status: 400 })
    ));
    assert!(matches!(
        intruder.graph(&mut buf),
        Err(Error::AuthFailed { status: 400 })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Without credentials: libzmq closes a NULL client's connection to a PLAIN server (or we
    // refuse its PLAIN greeting), an error either way.
    let anonymous = Node::new(&stack, addr, "anon").unwrap();
    let err = anonymous.graph(&mut buf).map(|_| ());
    assert!(
        matches!(err, Err(Error::Disconnected | Error::Protocol(_))),
        "{err:?}"
    );
    drop(mcu_pub);
    drop(mcu_sub);
    master.shutdown().unwrap();
}

#[test]
fn publisher_with_a_clock_heartbeats_by_itself_and_expires_when_it_stops() {
    // A master with a short node timeout: an embedded node that only publishes stays in
    // `node list` past it (its own heartbeats, sent from publish), and is dropped once it stops,
    // which proves the heartbeats were what kept it (a node that never sent one never expires).
    const NODE_TIMEOUT: Duration = Duration::from_secs(2);
    static CLOCK: zerosmq_embedded::StdClock = zerosmq_embedded::StdClock;
    let master = zerosmq_tests::start_master_with(zerosmq_tests::MasterConfig {
        node_timeout: NODE_TIMEOUT,
        ..Default::default()
    });
    let stack = StdConnect {
        read_timeout: Some(WAIT),
    };
    let mcu = Node::new(&stack, control_addr(master.control_port()), "clocked-mcu")
        .unwrap()
        .with_clock(&CLOCK, 500);
    let observer = node(&master, "observer");
    let listed = || observer.nodes().unwrap().iter().any(|n| n == "clocked-mcu");
    let mut buf = [0u8; 128];
    let mut publisher = mcu.advertise("clocked", &mut buf).unwrap();
    let publish_until = Instant::now() + NODE_TIMEOUT * 3;
    let mut checks = 0;
    while Instant::now() < publish_until {
        publisher.publish(b"tick").unwrap();
        assert!(listed(), "dropped while publishing with its clock");
        checks += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "listed at each of {checks} checks over {:?}",
        NODE_TIMEOUT * 3
    );
    drop(publisher);
    let stopped = Instant::now();
    let dropped = zerosmq_tests::wait_until(WAIT, || !listed());
    assert!(
        dropped.is_some(),
        "still listed {:?} after it stopped",
        WAIT
    );
    println!(
        "dropped {:?} after its last publish (node timeout {NODE_TIMEOUT:?})",
        stopped.elapsed()
    );
    master.shutdown().unwrap();
}

/// The async node over `async-io` on std TCP: an `embedded_nal_async::TcpConnect` for tests.
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

/// A master whose node timeout is short, and a std node that asks it who is listed.
fn short_timeout_master(timeout: Duration) -> (zerosmq_tests::MasterHandle, zerosmq::Node) {
    let master = zerosmq_tests::start_master_with(zerosmq_tests::MasterConfig {
        node_timeout: timeout,
        ..Default::default()
    });
    let observer = node(&master, "observer");
    (master, observer)
}

fn listed(observer: &zerosmq::Node, name: &str) -> bool {
    observer.nodes().unwrap().iter().any(|n| n == name)
}

#[test]
fn async_publisher_with_embassy_time_heartbeats_by_itself_and_expires_when_it_stops() {
    // The async node's own timer (feature `embassy-time`): an application that only publishes
    // stays in `node list` past the node timeout, and is dropped once it stops, which proves
    // its own heartbeats kept it (a node that never sent one is never expired).
    const NODE_TIMEOUT: Duration = Duration::from_secs(2);
    let (master, observer) = short_timeout_master(NODE_TIMEOUT);
    let stack = async_std_stack::AsyncStack;
    let mcu = zerosmq_embedded::asynch::Node::new(
        &stack,
        control_addr(master.control_port()),
        "async-mcu",
    )
    .unwrap()
    .with_heartbeat(embassy_time::Duration::from_millis(500));
    let mut buf = [0u8; 128];
    let checks = async_io::block_on(async {
        let mut publisher = mcu.advertise("async-clocked", &mut buf).await.unwrap();
        let publish_until = Instant::now() + NODE_TIMEOUT * 3;
        let mut checks = 0;
        while Instant::now() < publish_until {
            publisher.publish(b"tick").await.unwrap();
            assert!(listed(&observer, "async-mcu"), "dropped while publishing");
            checks += 1;
            embassy_time::Timer::after_millis(100).await;
        }
        checks
    });
    println!(
        "listed at each of {checks} checks over {:?}",
        NODE_TIMEOUT * 3
    );
    let stopped = Instant::now();
    let dropped = zerosmq_tests::wait_until(WAIT, || !listed(&observer, "async-mcu"));
    assert!(dropped.is_some(), "still listed {WAIT:?} after it stopped");
    println!(
        "figures: async publisher dropped {:?} after its last publish (node timeout {NODE_TIMEOUT:?})",
        stopped.elapsed()
    );
    master.shutdown().unwrap();
}

#[test]
fn async_subscriber_waiting_in_recv_heartbeats_by_itself_and_expires_when_it_stops() {
    // No message ever arrives: `recv` waits past three node timeouts and the node stays listed
    // (the wait is cut short for each heartbeat), then is dropped once the wait ends.
    const NODE_TIMEOUT: Duration = Duration::from_secs(2);
    let (master, observer) = short_timeout_master(NODE_TIMEOUT);
    let stack = async_std_stack::AsyncStack;
    let mcu = zerosmq_embedded::asynch::Node::new(
        &stack,
        control_addr(master.control_port()),
        "async-listener",
    )
    .unwrap()
    .with_heartbeat(embassy_time::Duration::from_millis(500));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let checker = s.spawn(|| {
            // Listed from its first heartbeat on, at every check while recv waits.
            assert!(
                zerosmq_tests::wait_until(WAIT, || listed(&observer, "async-listener")).is_some()
            );
            let mut checks = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(
                    listed(&observer, "async-listener"),
                    "dropped while waiting in recv"
                );
                checks += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            checks
        });
        let mut buf = [0u8; 128];
        async_io::block_on(async {
            let mut subscriber = mcu.subscribe("async-quiet", &mut buf).await.unwrap();
            let waited =
                embassy_time::with_timeout(embassy_time::Duration::from_secs(6), subscriber.recv())
                    .await;
            assert!(waited.is_err(), "a message on a topic nobody publishes");
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let checks = checker.join().unwrap();
        println!("listed at each of {checks} checks while recv waited 6 s");
    });
    let stopped = Instant::now();
    let dropped = zerosmq_tests::wait_until(WAIT, || !listed(&observer, "async-listener"));
    assert!(dropped.is_some(), "still listed {WAIT:?} after it stopped");
    println!(
        "figures: async subscriber dropped {:?} after recv stopped (node timeout {NODE_TIMEOUT:?})",
        stopped.elapsed()
    );
    master.shutdown().unwrap();
}

/// `StdConnect` that keeps what each connection wrote, to see the PONGs a node sends.
mod recording_stack {
    use std::cell::RefCell;
    use std::net::SocketAddr;
    use std::rc::Rc;

    use embedded_io::{ErrorType, Read, ReadReady, Write};
    use zerosmq_embedded::{Connect, StdConnect, StdError, StdStream};

    /// What the node wrote on one connection.
    pub type Written = Rc<RefCell<Vec<u8>>>;

    pub struct Recording {
        pub stack: StdConnect,
        /// Per connection, in the order opened: its remote port and what the node wrote.
        pub opened: RefCell<Vec<(u16, Written)>>,
    }

    pub struct RecordingConn {
        inner: StdStream,
        written: Written,
    }

    impl ErrorType for RecordingConn {
        type Error = StdError;
    }

    impl Read for RecordingConn {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, StdError> {
            self.inner.read(buf)
        }
    }

    impl ReadReady for RecordingConn {
        fn read_ready(&mut self) -> Result<bool, StdError> {
            self.inner.read_ready()
        }
    }

    impl Write for RecordingConn {
        fn write(&mut self, buf: &[u8]) -> Result<usize, StdError> {
            let n = self.inner.write(buf)?;
            self.written.borrow_mut().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> Result<(), StdError> {
            self.inner.flush()
        }
    }

    impl Connect for Recording {
        type Error = StdError;
        type Connection<'a> = RecordingConn;
        fn connect(&self, remote: SocketAddr) -> Result<RecordingConn, StdError> {
            let inner = self.stack.connect(remote)?;
            let written = Rc::new(RefCell::new(Vec::new()));
            self.opened
                .borrow_mut()
                .push((remote.port(), written.clone()));
            Ok(RecordingConn { inner, written })
        }
    }
}

#[test]
fn publisher_with_a_clock_answers_the_masters_pings_from_publish_alone() {
    // The master binary PINGs every second and closes a ZMTP 3.1 connection that stays silent
    // for three intervals after a PING. This publisher never calls poll(): with a clock, publish
    // first answers the PINGs that have arrived. Its one data connection carries the PONGs for
    // the whole run (never reopened), the master closes nothing, and a std subscriber receives
    // every message in order.
    static CLOCK: zerosmq_embedded::StdClock = zerosmq_embedded::StdClock;
    const INTERVAL_S: u64 = 1;
    let master =
        zerosmq_tests::MasterProcess::start(&["--zmtp-heartbeat", &INTERVAL_S.to_string()]);
    let watcher = zerosmq::Node::builder("watcher")
        .master(master.endpoint())
        .timeout(WAIT)
        .connect()
        .unwrap();
    let mut sub = watcher.subscribe("pinged").unwrap();
    sub.wait_ready(WAIT).unwrap();
    let stack = recording_stack::Recording {
        stack: StdConnect {
            read_timeout: Some(WAIT),
        },
        opened: Default::default(),
    };
    let mcu = Node::new(&stack, control_addr(master.port), "pinged-mcu")
        .unwrap()
        .with_clock(&CLOCK, 1_000);
    let mut buf = [0u8; 128];
    let mut publisher = mcu.advertise("pinged", &mut buf).unwrap();
    publisher.wait_ready().unwrap();
    let data_port = stack.opened.borrow()[1].0;
    let pong = b"\x04\x05\x04PONG";
    let pongs = |stack: &recording_stack::Recording| {
        let opened = stack.opened.borrow();
        let written = opened[1].1.borrow();
        written.windows(pong.len()).filter(|w| w == pong).count()
    };
    // Publish until the master's PINGs have been answered over more than three intervals.
    let mut sent = 0u32;
    let started = Instant::now();
    let answered = zerosmq_tests::wait_until(WAIT * 4, || {
        sent += 1;
        publisher.publish(&sent.to_be_bytes()).unwrap();
        pongs(&stack) >= 4 && started.elapsed() >= Duration::from_secs(4 * INTERVAL_S)
    });
    assert!(
        answered.is_some(),
        "{} PONGs in {:?}",
        pongs(&stack),
        WAIT * 4
    );
    for want in 1..=sent {
        let msg = sub
            .recv_timeout(WAIT)
            .unwrap()
            .expect("every message arrives");
        assert_eq!(msg.payload(), want.to_be_bytes(), "in order, none lost");
    }
    let opened = stack.opened.borrow();
    assert_eq!(
        opened.iter().filter(|(port, _)| *port == data_port).count(),
        1,
        "the data connection was never reopened"
    );
    let closed: Vec<String> = master
        .log
        .try_iter()
        .filter(|l| l.contains("silent"))
        .collect();
    assert!(
        closed.is_empty(),
        "the master closed a silent peer: {closed:?}"
    );
    println!(
        "figures: {sent} messages over {:?}, {} PONGs answered from publish alone",
        started.elapsed(),
        pongs(&stack)
    );
}
