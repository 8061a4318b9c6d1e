//! The std client's native data path (its own ZMTP over TCP) against real libzmq sockets and a
//! hand-driven ZMTP peer standing in for the master: interoperability both ways, ZMTP PINGs
//! answered by an idle publisher and an idle subscriber (libzmq drops a connection whose
//! PINGs go unanswered), and a stream that arrives in tiny fragments.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use zerosmq_core::control::{decode_request, ControlReply, ControlRequest, Encoding};
use zerosmq_core::zmtp::{Connection, Event, SocketType};
use zerosmq_core::READY_PROBE_PREFIX;
use zerosmq_tests::WAIT;

/// libzmq's heartbeat on the stand-in master's data sockets: a PING every 50 ms, the
/// connection closed when 200 ms pass without an answer.
const PING_IVL_MS: i32 = 50;
const PING_TIMEOUT_MS: i32 = 200;

/// Long enough for many PINGs: an idle node must answer every one of them.
const IDLE: Duration = Duration::from_millis(1_000);

/// A stand-in master control service on a libzmq REP socket, granting `pub_port` and
/// `sub_port`, until dropped.
struct FakeControl {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeControl {
    fn start(ctx: &zmq::Context, pub_port: u16, sub_port: u16) -> FakeControl {
        let rep = ctx.socket(zmq::REP).unwrap();
        rep.set_rcvtimeo(50).unwrap();
        rep.bind("tcp://127.0.0.1:*").unwrap();
        let port = port_of(&rep);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok(bytes) = rep.recv_bytes(0) else {
                    continue;
                };
                let reply = match decode_request(&bytes).unwrap() {
                    ControlRequest::Publish { .. } => ControlReply::Granted { port: pub_port },
                    ControlRequest::Subscribe { .. } => ControlReply::Granted { port: sub_port },
                    ControlRequest::Heartbeat { .. } => ControlReply::Alive { epoch: 1 },
                    _ => ControlReply::Done,
                };
                let mut buf = [0u8; 256];
                let out = reply.encode(Encoding::of(&bytes), &mut buf).unwrap();
                rep.send(out, 0).unwrap();
            }
        });
        FakeControl {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn node(&self, name: &str) -> zerosmq::Node {
        zerosmq::Node::builder(name)
            .master(format!("tcp://127.0.0.1:{}", self.port))
            .timeout(WAIT)
            .heartbeat(None)
            .connect()
            .unwrap()
    }
}

impl Drop for FakeControl {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn port_of(s: &zmq::Socket) -> u16 {
    let ep = s.get_last_endpoint().unwrap().unwrap();
    ep.rsplit(':').next().unwrap().parse().unwrap()
}

/// A libzmq data socket of the stand-in master: bound, pinging, and watched for connections
/// and disconnections.
fn pinging_socket(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    tag: &str,
) -> (zmq::Socket, zmq::Socket) {
    let s = ctx.socket(kind).unwrap();
    s.set_heartbeat_ivl(PING_IVL_MS).unwrap();
    s.set_heartbeat_timeout(PING_TIMEOUT_MS).unwrap();
    s.set_rcvtimeo(WAIT.as_millis() as i32).unwrap();
    s.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = format!("inproc://monitor-{tag}");
    s.monitor(
        &endpoint,
        (zmq::SocketEvent::ACCEPTED as i32) | (zmq::SocketEvent::DISCONNECTED as i32),
    )
    .unwrap();
    let events = ctx.socket(zmq::PAIR).unwrap();
    events.connect(&endpoint).unwrap();
    (s, events)
}

/// (accepted, disconnected) connections the monitor reported so far.
fn connection_events(events: &zmq::Socket) -> (usize, usize) {
    let (mut accepted, mut disconnected) = (0, 0);
    while let Ok(frames) = events.recv_multipart(zmq::DONTWAIT) {
        let event = u16::from_ne_bytes([frames[0][0], frames[0][1]]);
        if event == zmq::SocketEvent::ACCEPTED.to_raw() {
            accepted += 1;
        } else if event == zmq::SocketEvent::DISCONNECTED.to_raw() {
            disconnected += 1;
        }
    }
    (accepted, disconnected)
}

#[test]
fn idle_publisher_answers_pings_of_a_libzmq_sub() {
    let ctx = zmq::Context::new();
    let (sub, events) = pinging_socket(&ctx, zmq::SUB, "pub");
    sub.set_subscribe(b"imu").unwrap();
    let control = FakeControl::start(&ctx, port_of(&sub), 1);
    // libzmq sends a socket's subscriptions when its own thread calls into it: the stand-in
    // master receives in a thread of its own, as the real one polls.
    let master = thread::spawn(move || {
        let one = sub.recv_bytes(0).unwrap();
        let two = sub.recv_multipart(0).unwrap();
        (one, two)
    });
    let node = control.node("idle-publisher");
    let mut publisher = node.advertise("imu").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    // The application publishes nothing for 20 PING intervals: the writer thread answers.
    thread::sleep(IDLE);
    publisher.publish(b"hello").unwrap();
    publisher.publish_parts(b"a", &[b"b", b"c"]).unwrap();
    assert!(publisher.flush(WAIT));
    let (one, two) = master.join().unwrap();
    assert_eq!(one, b"imu hello");
    assert_eq!(two, vec![b"imu a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(
        connection_events(&events),
        (1, 0),
        "one connection, never dropped for unanswered PINGs"
    );
    drop(publisher);
    drop(node);
}

#[test]
fn idle_subscriber_answers_pings_of_a_libzmq_xpub_and_gets_every_shape() {
    let ctx = zmq::Context::new();
    let (xpub, events) = pinging_socket(&ctx, zmq::XPUB, "sub");
    let control = FakeControl::start(&ctx, 1, port_of(&xpub));
    let node = control.node("idle-subscriber");
    let mut sub = node.subscribe("imu").unwrap();
    // The stand-in master: answers the ready probe as the real one does, then sends a message
    // of each shape; after the idle phase, one more.
    let (go_on, wait_go) = mpsc::channel::<()>();
    let master = thread::spawn(move || {
        let mut topic = false;
        let mut probed = false;
        while !(topic && probed) {
            let m = xpub.recv_bytes(0).unwrap();
            match m.split_first() {
                Some((1, p)) if p == b"imu " => topic = true,
                Some((1, p)) if p.starts_with(READY_PROBE_PREFIX) => {
                    xpub.send(p, 0).unwrap();
                    probed = true;
                }
                _ => {}
            }
        }
        xpub.send("imu hello", 0).unwrap();
        xpub.send_multipart(["imu a", "b", "c"], 0).unwrap();
        let mut big = b"imu ".to_vec();
        big.extend(std::iter::repeat_n(0x5a, 300_000));
        xpub.send(big, 0).unwrap();
        wait_go.recv().unwrap();
        xpub.send("imu after", 0).unwrap();
        xpub
    });
    sub.wait_ready(WAIT).unwrap();
    assert_eq!(sub.recv().unwrap().payload(), b"hello");
    let m = sub.recv().unwrap();
    assert_eq!(m.payload(), b"a");
    assert_eq!(m.parts().collect::<Vec<_>>(), vec![&b"b"[..], &b"c"[..]]);
    let m = sub.recv().unwrap();
    assert_eq!(m.payload().len(), 300_000);
    assert!(m.payload().iter().all(|&b| b == 0x5a));
    // Idle inside a receive for 20 PING intervals: the receive answers them.
    assert!(sub.recv_timeout(IDLE).unwrap().is_none());
    go_on.send(()).unwrap();
    assert_eq!(sub.recv_timeout(WAIT).unwrap().unwrap().payload(), b"after");
    let _xpub = master.join().unwrap();
    assert_eq!(
        connection_events(&events),
        (1, 0),
        "one connection, never dropped for unanswered PINGs"
    );
}

/// Drives the server side of a NULL handshake as an XPUB with core's `Connection`; returns
/// once the peer's READY arrived.
fn accept_as_xpub(listener: &TcpListener) -> (TcpStream, Connection<'static>) {
    let (mut stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut conn = Connection::new(SocketType::XPub);
    let mut rx = [0u8; 256];
    let mut tx = [0u8; 256];
    loop {
        while let Some(n) = conn.poll_transmit(&mut tx).unwrap() {
            stream.write_all(&tx[..n]).unwrap();
        }
        let dst = conn.read_buffer(&mut rx);
        let n = stream.read(dst).unwrap();
        assert!(n > 0, "peer closed during the handshake");
        if let Some(Event::Ready { peer, .. }) = conn.commit(n, &rx).unwrap() {
            assert_eq!(peer, SocketType::Sub);
            return (stream, conn);
        }
    }
}

/// Reads subscriptions until the `TOPIC SP` one and a ready probe came; returns the probe.
fn read_subscriptions(stream: &mut TcpStream, conn: &mut Connection) -> Vec<u8> {
    let mut rx = [0u8; 256];
    let (mut topic, mut probe) = (false, None);
    while !(topic && probe.is_some()) {
        let dst = conn.read_buffer(&mut rx);
        let n = stream.read(dst).unwrap();
        assert!(n > 0);
        if let Some(Event::Subscribe { start, len }) = conn.commit(n, &rx).unwrap() {
            let p = &rx[start..start + len];
            if p == b"imu " {
                topic = true;
            } else if p.starts_with(READY_PROBE_PREFIX) {
                probe = Some(p.to_vec());
            }
        }
    }
    probe.unwrap()
}

#[test]
fn a_stream_written_in_tiny_fragments_is_decoded() {
    let ctx = zmq::Context::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let control = FakeControl::start(&ctx, 1, listener.local_addr().unwrap().port());
    let node = control.node("fragments");
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let master = thread::spawn(move || {
        let (mut stream, mut conn) = accept_as_xpub(&listener);
        stream.set_nodelay(true).unwrap();
        let probe = read_subscriptions(&mut stream, &mut conn);
        let mut wire = Vec::new();
        let frame = |wire: &mut Vec<u8>, body: &[u8], more: bool| {
            let mut buf = vec![0u8; body.len() + 9];
            let n = Connection::encode_message(body, more, &mut buf).unwrap();
            wire.extend_from_slice(&buf[..n]);
        };
        frame(&mut wire, &probe, false);
        for i in 0..50u8 {
            frame(
                &mut wire,
                &[b"imu ".as_slice(), &[i; 3]].concat(),
                i % 5 == 0,
            );
            if i % 5 == 0 {
                frame(&mut wire, &[i; 300], false); // a long frame as the second part
            }
        }
        // A PING between two messages: answered, and not mistaken for data.
        wire.extend_from_slice(b"\x04\x09\x04PING\x00\x0axy");
        frame(&mut wire, b"imu end", false);
        // 1 to 7 bytes per write, each its own TCP segment (no Nagle).
        let mut rest = &wire[..];
        let mut k = 0;
        while !rest.is_empty() {
            let n = (k % 7 + 1).min(rest.len());
            stream.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
            k += 1;
        }
        ready_rx.recv().unwrap();
        // The PONG came back through the subscriber's receive.
        let mut rx = [0u8; 64];
        let mut tail = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while let Ok(n) = stream.read(&mut rx) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&rx[..n]);
        }
        tail
    });
    // The subscriber connects at once; the stand-in master above accepts it.
    let mut sub = node.subscribe("imu").unwrap();
    sub.wait_ready(WAIT).unwrap();
    for i in 0..50u8 {
        let m = sub.recv_timeout(WAIT).unwrap().unwrap();
        assert_eq!(m.payload(), [i; 3]);
        if i % 5 == 0 {
            assert_eq!(m.parts().collect::<Vec<_>>(), vec![&[i; 300][..]]);
        } else {
            assert_eq!(m.parts().len(), 0);
        }
    }
    assert_eq!(sub.recv_timeout(WAIT).unwrap().unwrap().payload(), b"end");
    ready_tx.send(()).unwrap();
    let tail = master.join().unwrap();
    let pong = b"\x04\x07\x04PONGxy";
    assert!(
        tail.windows(pong.len()).any(|w| w == pong),
        "PONG with the PING's context expected in {tail:?}"
    );
}

/// Reads from the subscriber until its `imu ` subscription came.
fn read_topic_subscription(stream: &mut TcpStream, conn: &mut Connection) {
    let mut rx = [0u8; 256];
    loop {
        let dst = conn.read_buffer(&mut rx);
        let n = stream.read(dst).unwrap();
        assert!(n > 0, "peer closed before subscribing");
        if let Some(Event::Subscribe { start, len }) = conn.commit(n, &rx).unwrap() {
            if &rx[start..start + len] == b"imu " {
                return;
            }
        }
    }
}

fn send_message(stream: &mut TcpStream, body: &[u8]) {
    let mut buf = vec![0u8; body.len() + 9];
    let n = Connection::encode_message(body, false, &mut buf).unwrap();
    stream.write_all(&buf[..n]).unwrap();
}

/// Longest a `recv_timeout(20 ms)` may take while the master is silent (generous for a loaded
/// CI machine; the handshake timeout it must not wait out is 2 s).
const SILENT_RECV_MAX: Duration = Duration::from_millis(500);

/// The master's data port accepts TCP but never answers (a master hung mid-restart): the
/// subscriber's reconnect runs in the background of its receives, which return on time, and
/// gives up each handshake after its timeout to try again; once a real peer answers, messages
/// flow again.
#[test]
fn recv_timeout_returns_on_time_while_the_master_accepts_but_does_not_answer() {
    let ctx = zmq::Context::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let control = FakeControl::start(&ctx, 1, listener.local_addr().unwrap().port());
    let node = control.node("silent-master");
    let (accepted_tx, accepted) = mpsc::channel::<(TcpStream, Connection<'static>)>();
    let first = thread::spawn(move || {
        let peer = accept_as_xpub(&listener);
        accepted_tx.send(peer).unwrap();
        listener
    });
    let mut sub = node.subscribe("imu").unwrap();
    let (mut stream, mut conn) = accepted.recv().unwrap();
    let listener = first.join().unwrap();
    read_topic_subscription(&mut stream, &mut conn);
    send_message(&mut stream, b"imu one");
    assert_eq!(sub.recv_timeout(WAIT).unwrap().unwrap().payload(), b"one");

    // The connection drops; from now on the port accepts and holds connections silently.
    drop(stream);
    listener.set_nonblocking(true).unwrap();
    let silent = Arc::new(AtomicBool::new(true));
    let silent2 = silent.clone();
    let holder = thread::spawn(move || {
        let mut held = Vec::new();
        while silent2.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => thread::sleep(Duration::from_millis(1)),
            }
        }
        (listener, held.len())
    });
    // Longer than a handshake timeout (2 s) plus the first backoff: one attempt gives up and
    // another starts while the receives go on.
    let phase = std::time::Instant::now();
    let (mut calls, mut longest) = (0u32, Duration::ZERO);
    while phase.elapsed() < Duration::from_millis(3_000) {
        let t = std::time::Instant::now();
        assert!(sub
            .recv_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none());
        let took = t.elapsed();
        assert!(
            took < SILENT_RECV_MAX,
            "recv_timeout(20 ms) took {took:?} against a silent master"
        );
        longest = longest.max(took);
        calls += 1;
    }
    silent.store(false, Ordering::Relaxed);
    // Dropping the held connections ends the attempt under way; the next one is answered.
    let (listener, attempts) = holder.join().unwrap();
    println!(
        "silent master: {calls} recv_timeout(20 ms) calls, longest {longest:?}; {attempts} connection attempts held"
    );
    assert!(
        attempts >= 2,
        "the first handshake timed out and another attempt followed ({attempts} seen)"
    );

    listener.set_nonblocking(false).unwrap();
    let (again_tx, again) = mpsc::channel::<(TcpStream, Connection<'static>)>();
    let second = thread::spawn(move || {
        let (mut stream, mut conn) = accept_as_xpub(&listener);
        read_topic_subscription(&mut stream, &mut conn);
        send_message(&mut stream, b"imu two");
        again_tx.send((stream, conn)).unwrap();
    });
    // The subscriber's receives drive the reconnect.
    let t = std::time::Instant::now();
    let got = loop {
        assert!(
            t.elapsed() < WAIT,
            "no message after the master answered again"
        );
        if let Some(m) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
            break m;
        }
    };
    assert_eq!(got.payload(), b"two");
    println!(
        "messages flow again {:?} after the master answered",
        t.elapsed()
    );
    second.join().unwrap();
    let _peer = again.recv().unwrap();
}
