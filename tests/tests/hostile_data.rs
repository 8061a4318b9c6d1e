//! Hostile peers on the master's data ports (issue 12, items 4, 5, 6 and 8): each test runs the
//! master binary as a child process, keeps a sequenced witness stream and a control prober going
//! through the master, attacks it with raw TCP/ZMTP peers, and asserts that the witness lost
//! nothing, control kept answering within a second, the attacker was bounded (dropped, refused
//! or closed) and memory and descriptors came back near their baseline. Each prints one
//! `figures:` line (`--nocapture`).

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use zerosmq_core::zmtp::command::{encode_ping, encode_ready};
use zerosmq_core::zmtp::{encode_subscription, Greeting, SocketType, GREETING_LEN};
use zerosmq_tests::hostile::{cpu_seconds, log_lines, Meter, Witness, TOPIC};
use zerosmq_tests::{wait_until, MasterProcess, WAIT};

/// The subscribe port (`sub`) or publish port of the witness topic, from a text grant.
fn topic_port(master: &MasterProcess, sub: bool) -> u16 {
    let ctx = zmq::Context::new();
    let req = zerosmq_tests::raw_control_at(&ctx, &master.endpoint());
    let request = if sub {
        format!("REQUEST_SUB attacker {TOPIC}")
    } else {
        format!("REQUEST_PUB attacker {TOPIC}")
    };
    req.send(request.as_bytes(), 0).unwrap();
    let reply = String::from_utf8(req.recv_bytes(0).unwrap()).unwrap();
    assert!(reply.starts_with("REQUEST GRANT "), "{reply}");
    reply.rsplit(' ').next().unwrap().trim().parse().unwrap()
}

/// A raw ZMTP 3.`minor` NULL peer of `socket_type` that finished its handshake with the master.
fn zmtp_peer(
    port: u16,
    minor: u8,
    socket_type: SocketType,
    recv_buffer: Option<usize>,
) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let greeting = Greeting {
        minor,
        ..Greeting::ours()
    };
    let mut ready = [0u8; 64];
    let n = encode_ready(socket_type, b"", &mut ready).unwrap();
    stream.write_all(&greeting.to_bytes()).unwrap();
    stream.write_all(&ready[..n]).unwrap();
    // The master's greeting, then its READY (a short command frame).
    let mut head = [0u8; GREETING_LEN + 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[GREETING_LEN], 0x04, "READY command");
    let mut body = vec![0u8; usize::from(head[GREETING_LEN + 1])];
    stream.read_exact(&mut body).unwrap();
    stream
}

/// Appends a subscription or cancel in the peer's form to `out`.
fn push_subscription(out: &mut Vec<u8>, minor: u8, subscribe: bool, prefix: &[u8]) {
    let mut buf = [0u8; 300];
    let n = encode_subscription(minor, subscribe, prefix, &mut buf).unwrap();
    out.extend_from_slice(&buf[..n]);
}

/// Whether the master closed `stream` within `within` (EOF or reset on read).
fn closed_by_master(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64 << 10];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn subscription_storm() {
    let mut master = MasterProcess::start(&[]);
    let witness = Witness::start(&master);
    let port = topic_port(&master, true);
    let meter = Meter::start(&master);
    let started = Instant::now();
    // Under the cap (1,000 per connection): 50,000 distinct subscriptions and their cancels,
    // 500 held at a time, pipelined, then a ready probe whose answer says all were handled.
    let mut churn = zmtp_peer(port, 0, SocketType::Sub, None);
    let mut bytes = Vec::new();
    for batch in 0..100u32 {
        for i in 0..500u32 {
            push_subscription(
                &mut bytes,
                0,
                true,
                format!("s{batch:03}-{i:04}").as_bytes(),
            );
        }
        for i in 0..500u32 {
            push_subscription(
                &mut bytes,
                0,
                false,
                format!("s{batch:03}-{i:04}").as_bytes(),
            );
        }
    }
    let probe = b"\0zerosmq-ready storm";
    push_subscription(&mut bytes, 0, true, probe);
    churn.write_all(&bytes).unwrap();
    let mut answer = [0u8; 2 + 20];
    churn.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[2..], probe, "the probe is answered after the churn");
    let churn_took = started.elapsed();
    // Past the cap: 50,000 distinct subscriptions held; the peer is dropped at the 1,001st.
    let mut hoarder = zmtp_peer(port, 0, SocketType::Sub, None);
    let mut bytes = Vec::new();
    for i in 0..50_000u32 {
        push_subscription(&mut bytes, 0, true, format!("h{i:06}").as_bytes());
    }
    // The master may close mid-write: the rest is refused by the kernel.
    let _ = hoarder.write_all(&bytes);
    assert!(
        closed_by_master(&mut hoarder, WAIT),
        "the hoarder is dropped"
    );
    assert!(
        wait_until(WAIT, || log_lines(&master, "more than 1000 subscriptions")
            > 0)
        .is_some(),
        "the drop is logged"
    );
    drop((churn, hoarder));
    let seen = witness.finish();
    meter.report(
        "subscription storm",
        &mut master,
        seen,
        &format!(
            ", 50,000 subscribe+cancel handled in {:.2} s; a peer with 50,000 dropped at the cap",
            churn_took.as_secs_f64()
        ),
    );
}

#[test]
fn ping_flood() {
    let mut master = MasterProcess::start(&[]);
    let witness = Witness::start(&master);
    let port = topic_port(&master, true);
    let meter = Meter::start(&master);
    // A ZMTP 3.1 peer that sends PINGs for 5 s and never reads (small receive buffer).
    let mut flooder = zmtp_peer(port, 1, SocketType::Sub, Some(4096));
    let mut ping = [0u8; 32];
    let n = encode_ping(100, b"0123456789abcdef", &mut ping).unwrap();
    let burst: Vec<u8> = ping[..n].repeat(4096);
    let started = Instant::now();
    let mut pings = 0u64;
    let mut dropped_after = None;
    while started.elapsed() < Duration::from_secs(5) {
        match flooder.write(&burst) {
            Ok(written) => pings += (written / n) as u64,
            Err(_) => {
                dropped_after = Some(started.elapsed());
                break;
            }
        }
    }
    // The master drops the peer once --hwm PONGs are queued unread.
    let dropped = dropped_after.is_some() || closed_by_master(&mut flooder, WAIT);
    assert!(dropped, "the flooder is dropped");
    assert!(
        wait_until(WAIT, || log_lines(&master, "PONGs queued unread") > 0).is_some(),
        "the drop is logged"
    );
    drop(flooder);
    let seen = witness.finish();
    meter.report(
        "PING flood",
        &mut master,
        seen,
        &format!(
            ", {pings} PINGs written, peer dropped after {}",
            dropped_after.map_or("the flood".into(), |d| format!("{:.2} s", d.as_secs_f64()))
        ),
    );
}

#[test]
fn ready_probe_flood() {
    let mut master = MasterProcess::start(&[]);
    let witness = Witness::start(&master);
    let port = topic_port(&master, true);
    let meter = Meter::start(&master);
    // Subscribe+cancel pairs of distinct probes for 5 s from a peer that never reads.
    let mut flooder = zmtp_peer(port, 0, SocketType::Sub, Some(4096));
    flooder
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut pairs = 0u64;
    let mut next = 0u64;
    while started.elapsed() < Duration::from_secs(5) {
        let mut bytes = Vec::with_capacity(64 << 10);
        for _ in 0..1000 {
            let probe = format!("\0zerosmq-ready {next:016x}");
            push_subscription(&mut bytes, 0, true, probe.as_bytes());
            push_subscription(&mut bytes, 0, false, probe.as_bytes());
            next += 1;
        }
        match flooder.write_all(&bytes) {
            Ok(()) => pairs += 1000,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the prober was dropped: {e}"),
        }
    }
    let during = master.rss_kib();
    drop(flooder);
    let seen = witness.finish();
    meter.report(
        "ready-probe flood",
        &mut master,
        seen,
        &format!(
            ", {pairs} probe pairs written, RSS while held {:.1} MiB",
            during as f64 / 1024.0
        ),
    );
    assert!(
        during <= meter.rss + 16 * 1024,
        "probe answers beyond --hwm were queued: {during} KiB (baseline {})",
        meter.rss
    );
}

#[test]
fn descriptor_exhaustion() {
    let mut master = MasterProcess::start(&[]);
    let witness = Witness::start(&master);
    let port = topic_port(&master, false);
    let pid = master.child.id() as i32;
    rlimit::prlimit(pid, rlimit::Resource::NOFILE, Some((128, 128)), None).expect("prlimit");
    // The master rereads its limit at its next sweep (at most a second later) and says so.
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = master
            .log
            .recv_timeout(left)
            .expect("the master logs the new limit");
        if line.contains("descriptor limit changed") && line.contains("limit=128") {
            break;
        }
    }
    let meter = Meter::start(&master);
    // 200 ZMTP 3.0 publishers held on the publish port (a handshake each, then silence).
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let greeting = Greeting {
            minor: 0,
            ..Greeting::ours()
        };
        let mut ready = [0u8; 64];
        let n = encode_ready(SocketType::Pub, b"", &mut ready).unwrap();
        let _ = s.write_all(&[&greeting.to_bytes()[..], &ready[..n]].concat());
        // A served peer gets the master's greeting; a refused one is closed at once.
        let mut head = [0u8; GREETING_LEN];
        match s.read_exact(&mut head) {
            Ok(()) => held.push(s),
            Err(_) => refused += 1,
        }
    }
    let hold = Duration::from_secs(5);
    let cpu_before = cpu_seconds(&master);
    std::thread::sleep(hold);
    let cpu_held = cpu_seconds(&master) - cpu_before;
    let lines: Vec<String> = master.log.try_iter().collect();
    let refusals = lines
        .iter()
        .filter(|l| l.contains("connection refused"))
        .count();
    assert!(refused > 0, "connections past the limit are refused");
    assert!(
        held.len() >= 32,
        "connections under the limit are served ({})",
        held.len()
    );
    // Rate-limited: one line per second at most (plus one at the start).
    assert!(
        (1..=hold.as_secs() as usize + 3).contains(&refusals),
        "{refusals} refusal lines"
    );
    let inspector = zerosmq::Node::builder("inspector")
        .master(master.endpoint())
        .timeout(WAIT)
        .connect()
        .expect("inspector node");
    let info = inspector.topic_info(TOPIC).expect("topic info");
    assert_eq!(
        info.refused, refused,
        "topic info counts the refused connections"
    );
    drop(inspector);
    let held_count = held.len();
    drop(held);
    assert!(
        wait_until(WAIT, || master.open_fds() <= meter.fds + 4).is_some(),
        "the held peers' descriptors are closed"
    );
    // Now the descriptors run out before the cap does: 80 control clients take most of what
    // is left, so `accept` on the data port fails (EMFILE) and the listener must back off.
    let ctx = zmq::Context::new();
    let controls: Vec<zmq::Socket> = (0..80)
        .map(|_| {
            let req = ctx.socket(zmq::REQ).unwrap();
            req.set_linger(0).unwrap();
            req.set_rcvtimeo(WAIT.as_millis() as i32).unwrap();
            req.connect(&master.endpoint()).unwrap();
            req.send("LIST_ALL_TOPICS null null", 0).unwrap();
            req.recv_bytes(0).expect("control answers");
            req
        })
        .collect();
    // 100 (not 200): those the master does not accept wait in the listen backlog, and connects
    // beyond it would block in SYN retries.
    let peers: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let _ = master.log.try_iter().count();
    let cpu_before = cpu_seconds(&master);
    std::thread::sleep(hold);
    let cpu_exhausted = cpu_seconds(&master) - cpu_before;
    let lines: Vec<String> = master.log.try_iter().collect();
    let paused = lines
        .iter()
        .filter(|l| l.contains("accepting connections paused"))
        .count();
    assert!(
        (1..=hold.as_secs() as usize + 3).contains(&paused),
        "{paused} lines about accepting paused"
    );
    drop((peers, controls, ctx));
    let seen = witness.finish();
    meter.report(
        "descriptor exhaustion",
        &mut master,
        seen,
        &format!(
            ", RLIMIT_NOFILE 128: {held_count} of 200 peers served, {refused} refused (topic info refused={}), CPU {cpu_held:.2} s while held {} s, {refusals} log lines; with 80 control clients holding descriptors and 100 peers, accept failing: CPU {cpu_exhausted:.2} s in {} s, {paused} log lines",
            info.refused,
            hold.as_secs(),
            hold.as_secs()
        ),
    );
}

#[test]
fn idle_zmtp30_peers() {
    let mut master = MasterProcess::start(&["--idle-timeout", "1"]);
    let witness = Witness::start(&master);
    let sub_port = topic_port(&master, true);
    let pub_port = topic_port(&master, false);
    let meter = Meter::start(&master);
    // Silent ZMTP 3.0 publishers and subscribers that never subscribe: closed after the idle
    // limit. Subscribers that hold a subscription may stay silent.
    let mut idle: Vec<TcpStream> = (0..50)
        .map(|_| zmtp_peer(pub_port, 0, SocketType::Pub, None))
        .chain((0..50).map(|_| zmtp_peer(sub_port, 0, SocketType::Sub, None)))
        .collect();
    let mut subscribed: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = zmtp_peer(sub_port, 0, SocketType::Sub, None);
            let mut bytes = Vec::new();
            push_subscription(&mut bytes, 0, true, b"nothing-publishes-this");
            s.write_all(&bytes).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    for s in &mut idle {
        assert!(closed_by_master(s, WAIT), "an idle peer is closed");
    }
    let closed_after = started.elapsed();
    for s in &mut subscribed {
        assert!(
            !closed_by_master(s, Duration::from_millis(100)),
            "a subscribed peer stays"
        );
    }
    drop((idle, subscribed));
    let seen = witness.finish();
    meter.report(
        "idle ZMTP 3.0 peers",
        &mut master,
        seen,
        &format!(
            ", --idle-timeout 1: 100 idle peers closed within {:.2} s, 10 subscribed ones kept",
            closed_after.as_secs_f64()
        ),
    );
}
