//! Garbage on the control port (issue 13, as a port scanner or a confused tool does it): 100 TCP
//! connections each send 200 bytes of one kind of garbage and close, then a libzmq REQ makes a
//! valid request. The master must answer it, within a bound, and every request after it: no
//! request may lose its reply whatever other peers send.
//!
//! The kinds: random bytes (libzmq reads a first byte other than 0xFF as a ZMTP 1.0 peer), a
//! ZMTP 3 greeting followed by random bytes, a greeting cut short, a frame whose length is absurd
//! (2^63 - 1) after a valid greeting, and a well-formed ZMTP 3.0 DEALER whose one message has no
//! REQ envelope (no empty delimiter). Random bytes read as ZMTP 1.0 frames are often such a
//! message, and libzmq's REP, dropping one from a peer already gone, stayed mid-message (its
//! router reset only when the peer's pipe existed) and sent the next request's reply nowhere.
//! The control port is now the master's own REP (master/src/rep.rs), whose connections share no
//! state; the DEALER kind's reply is still printed rather than asserted, as it was when libzmq
//! could lose it.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use zerosmq_tests::{raw_control_at, MasterProcess, WAIT};

/// How long a valid request may wait for its reply.
const BOUND: Duration = Duration::from_secs(3);

const CONNECTIONS: usize = 100;
const GARBAGE_LEN: usize = 200;

/// xorshift64*: a seeded stream of bytes, printed so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

/// A ZMTP 3.0 NULL greeting, as a libzmq client sends it.
fn greeting() -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g
}

#[derive(Debug, Clone, Copy)]
enum Garbage {
    Random,
    GreetingThenRandom,
    CutGreeting,
    AbsurdLength,
    NoEnvelope,
}

impl Garbage {
    const ALL: [Garbage; 5] = [
        Garbage::Random,
        Garbage::GreetingThenRandom,
        Garbage::CutGreeting,
        Garbage::AbsurdLength,
        Garbage::NoEnvelope,
    ];

    fn bytes(self, rng: &mut Rng) -> Vec<u8> {
        match self {
            Garbage::Random => rng.bytes(GARBAGE_LEN),
            Garbage::GreetingThenRandom => {
                let mut b = greeting();
                b.extend(rng.bytes(GARBAGE_LEN - b.len()));
                b
            }
            Garbage::CutGreeting => {
                let cut = 1 + (rng.next() % 63) as usize;
                greeting()[..cut].to_vec()
            }
            Garbage::AbsurdLength => {
                let mut b = greeting();
                // A long message frame (flags 0x02) of 2^63 - 1 bytes, then filler.
                b.push(0x02);
                b.extend((i64::MAX as u64).to_be_bytes());
                b.extend(rng.bytes(GARBAGE_LEN - b.len()));
                b
            }
            Garbage::NoEnvelope => {
                let mut b = greeting();
                // READY, Socket-Type DEALER (a short command frame).
                let mut ready = b"\x05READY\x0bSocket-Type".to_vec();
                ready.extend(6u32.to_be_bytes());
                ready.extend(b"DEALER");
                b.push(0x04);
                b.push(ready.len() as u8);
                b.extend(ready);
                // One frame, no delimiter before it.
                b.extend([0x00, 5]);
                b.extend(b"hello");
                b
            }
        }
    }
}

/// Opens `CONNECTIONS` connections, writes one kind of garbage on each and closes them all.
fn spray(port: u16, kind: Garbage, rng: &mut Rng) {
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the control port");
        // The master may close first (random bytes may be refused at once): a failed write is
        // part of the game.
        let _ = s.write_all(&kind.bytes(rng));
        conns.push(s);
    }
    if matches!(kind, Garbage::NoEnvelope) {
        // The master's READY means it read ours, and the message came in the same write.
        for s in &mut conns {
            s.set_read_timeout(Some(WAIT)).expect("read timeout");
            let mut head = [0u8; 66];
            if s.read_exact(&mut head).is_ok() {
                let _ = s.read_exact(&mut vec![0u8; usize::from(head[65])]);
            }
        }
    }
    drop(conns);
}

/// One valid request on a fresh libzmq REQ; the time its reply took, or `None` past the bound.
fn request(ctx: &zmq::Context, endpoint: &str, request: &str) -> Option<(Duration, String)> {
    let req = raw_control_at(ctx, endpoint);
    req.set_rcvtimeo(BOUND.as_millis() as i32)
        .expect("rcvtimeo");
    let start = Instant::now();
    req.send(request.as_bytes(), 0).expect("send");
    let reply = req.recv_bytes(0).ok()?;
    Some((
        start.elapsed(),
        String::from_utf8_lossy(&reply).into_owned(),
    ))
}

#[test]
fn garbage_on_the_control_port_never_costs_a_reply() {
    let master = MasterProcess::start(&[]);
    let endpoint = master.endpoint();
    let ctx = zmq::Context::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    // Served before any garbage: the master is up.
    let (first, _) = request(&ctx, &endpoint, "REQUEST_PUB warmup w").expect("first reply");
    let mut lost = Vec::new();
    let mut figures = vec![format!("before={}us", first.as_micros())];
    for (round, kind) in Garbage::ALL.into_iter().enumerate() {
        spray(master.port, kind, &mut rng);
        for n in 0..3 {
            let node = format!("valid{round}x{n}");
            let line = format!("REQUEST_PUB {node} t{round}");
            match request(&ctx, &endpoint, &line) {
                Some((took, reply)) => {
                    assert!(reply.starts_with("REQUEST GRANT "), "{kind:?}: {reply}");
                    if n == 0 {
                        figures.push(format!("{kind:?}={}us", took.as_micros()));
                    }
                }
                // Printed, not asserted: libzmq can still lose this one (see the module doc).
                None if matches!(kind, Garbage::NoEnvelope) => {
                    figures.push(format!("NoEnvelope-request-{n}=lost"))
                }
                None => lost.push(format!("{kind:?} request {n} ({node})")),
            }
        }
    }
    println!(
        "figures: control reply after 100 garbage connections: {}",
        figures.join(" ")
    );
    assert!(
        lost.is_empty(),
        "requests without a reply within {BOUND:?} (seed {seed:#x}): {lost:?}"
    );
    // Each was served: the log grants every valid node.
    let log: Vec<String> = std::iter::from_fn(|| master.log.recv_timeout(WAIT).ok())
        .take_while(|l| !l.contains("valid4x2"))
        .collect();
    let granted = log.iter().filter(|l| l.contains("granted")).count();
    assert!(granted >= 14, "granted lines: {granted}");
}
