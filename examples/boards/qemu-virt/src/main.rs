//! A zerosmq node as bare-metal firmware on QEMU `virt` (RV32) with a virtio-net card: no heap,
//! smoltcp over `virtio-drivers`, the blocking `zerosmq-embedded` node with its own heartbeat.
//!
//! It publishes on `ZEROSMQ_PUB_TOPIC` and takes commands on `ZEROSMQ_SUB_TOPIC`, reporting on
//! the UART (one `fw: ...` line per event):
//! - `burst N`: publishes `seq 0` ... `seq N-1`, then reports how long that took;
//! - `msg K`: reports `fw: got msg K`;
//! - `echo K`: publishes `pong K`;
//! - `rtt N`: N round trips, each a `rt I` published and the same `rt I` received back (a peer
//!   echoes it), then reports the median and 99th percentile.
#![no_std]
#![no_main]

mod board;
mod net;
mod nic;

use core::fmt::Write as _;
use core::net::{Ipv4Addr, SocketAddr};

use smoltcp::wire::Ipv4Cidr;
use zerosmq_embedded::{Error, Node, Publisher, Subscriber};

use crate::net::{Buffers, NetError, Stack};
use crate::nic::{Nic, RX_BUFFERS, RX_BUFFER_LEN};

/// Build-time settings (environment variables of the build), defaults matching the test.
const NODE_NAME: &str = setting(option_env!("ZEROSMQ_NODE_NAME"), "qemu-virt");
const MASTER: &str = setting(option_env!("ZEROSMQ_MASTER"), "192.168.69.100:5555");
const IP: &str = setting(option_env!("ZEROSMQ_IP"), "192.168.69.1/24");
const GATEWAY: &str = setting(option_env!("ZEROSMQ_GATEWAY"), "");
const PUB_TOPIC: &str = setting(option_env!("ZEROSMQ_PUB_TOPIC"), "qemu-virt/out");
const SUB_TOPIC: &str = setting(option_env!("ZEROSMQ_SUB_TOPIC"), "qemu-virt/in");
/// Well within the master's default 5 s node timeout.
const HEARTBEAT_MS: u64 = 1000;
/// A blocked read returns this often, so the heartbeat goes out while no message comes.
const READ_TIMEOUT_MS: u64 = 250;
const MAX_RTT_SAMPLES: usize = 1000;

const fn setting(value: Option<&'static str>, default: &'static str) -> &'static str {
    match value {
        Some(v) => v,
        None => default,
    }
}

static CLOCK: board::Clock = board::Clock;

type Net<'s, 'a> = &'s Stack<'a>;
type NodeError = Error<NetError>;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("fw: panic: {info}");
    board::exit(101)
}

fn fail(what: &str, e: &dyn core::fmt::Display) -> ! {
    println!("fw: {what} failed: {e}");
    board::exit(1)
}

fn parse_cidr(s: &str) -> Option<Ipv4Cidr> {
    let (addr, len) = s.split_once('/')?;
    Some(Ipv4Cidr::new(addr.parse().ok()?, len.parse().ok()?))
}

#[riscv_rt::entry]
fn main() -> ! {
    println!("fw: {NODE_NAME} starting, master {MASTER}, address {IP}");
    let master: SocketAddr = MASTER
        .parse()
        .unwrap_or_else(|_| fail("parsing ZEROSMQ_MASTER", &MASTER));
    let cidr = parse_cidr(IP).unwrap_or_else(|| fail("parsing ZEROSMQ_IP", &IP));
    let gateway = (!GATEWAY.is_empty())
        .then(|| GATEWAY.parse::<Ipv4Addr>())
        .transpose()
        .unwrap_or_else(|_| fail("parsing ZEROSMQ_GATEWAY", &GATEWAY));

    // Everything the firmware needs lives in this frame, which never returns: no heap.
    let mut rx_frames = [[0u8; RX_BUFFER_LEN]; RX_BUFFERS];
    let nic = Nic::probe(&mut rx_frames).unwrap_or_else(|e| fail("virtio-net", &e));
    let mac = nic.mac();
    println!(
        "fw: virtio-net up, mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );
    let mut buffers = Buffers::new();
    let stack = Stack::new(nic, cidr, gateway, &mut buffers, READ_TIMEOUT_MS);
    let node = Node::new(&stack, master, NODE_NAME)
        .unwrap_or_else(|e| fail("node name", &e))
        .with_probe_seed(board::now_us())
        .with_clock(&CLOCK, HEARTBEAT_MS);

    // Wait for the master: the first heartbeat also puts the node in the graph.
    let mut scratch = [0u8; 256];
    while let Err(e) = node.heartbeat(&mut scratch) {
        println!("fw: master not answering yet ({e})");
        stack.pause_ms(500);
    }
    println!("fw: master answered");

    let mut pub_buf = [0u8; 512];
    let mut sub_buf = [0u8; 512];
    let mut publisher = node
        .advertise(PUB_TOPIC, &mut pub_buf)
        .unwrap_or_else(|e| fail("advertise", &e));
    println!("fw: granted publisher of {PUB_TOPIC}");
    let mut subscriber = node
        .subscribe(SUB_TOPIC, &mut sub_buf)
        .unwrap_or_else(|e| fail("subscribe", &e));
    println!("fw: granted subscriber of {SUB_TOPIC}");
    retry(&stack, "subscriber wait_ready", || subscriber.wait_ready());
    retry(&stack, "publisher wait_ready", || publisher.wait_ready());
    println!("fw: ready");

    let mut app = App {
        stack: &stack,
        publisher,
        subscriber,
        samples: [0; MAX_RTT_SAMPLES],
    };
    app.run()
}

/// Calls `f` until it succeeds; a timeout is only the read timeout, so it is not reported.
fn retry(stack: &Stack<'_>, what: &str, mut f: impl FnMut() -> Result<(), NodeError>) {
    loop {
        match f() {
            Ok(()) => return,
            Err(Error::TimedOut) => {}
            Err(e) => {
                println!("fw: {what}: {e}");
                stack.pause_ms(200);
            }
        }
    }
}

struct App<'n, 'b, 's, 'a> {
    stack: &'s Stack<'a>,
    publisher: Publisher<'n, 'b, Net<'s, 'a>>,
    subscriber: Subscriber<'n, 'b, Net<'s, 'a>>,
    samples: [u32; MAX_RTT_SAMPLES],
}

/// A short message formatted on the stack.
struct Line {
    buf: [u8; 48],
    len: usize,
}

impl Line {
    fn new(args: core::fmt::Arguments<'_>) -> Self {
        let mut line = Line {
            buf: [0; 48],
            len: 0,
        };
        let _ = line.write_fmt(args);
        line
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let dst = self
            .buf
            .get_mut(self.len..self.len + s.len())
            .ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

impl App<'_, '_, '_, '_> {
    fn run(&mut self) -> ! {
        let mut command = [0u8; 48];
        loop {
            let n = match self.subscriber.recv() {
                Ok(payload) => {
                    let n = payload.len().min(command.len());
                    command[..n].copy_from_slice(&payload[..n]);
                    n
                }
                Err(Error::TimedOut) => {
                    // Idle: answer the master's PINGs on the publisher's connection too.
                    if let Err(e) = self.publisher.poll() {
                        println!("fw: publisher: {e}");
                    }
                    continue;
                }
                Err(e) => {
                    println!("fw: recv: {e}");
                    self.stack.pause_ms(100);
                    continue;
                }
            };
            self.handle(&command[..n]);
        }
    }

    fn handle(&mut self, command: &[u8]) {
        let text = core::str::from_utf8(command).unwrap_or("");
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let number = arg.parse::<u32>().ok();
        match (verb, number) {
            ("burst", Some(n)) => self.burst(n),
            ("msg", Some(k)) => println!("fw: got msg {k}"),
            ("echo", Some(k)) => {
                self.publish(Line::new(format_args!("pong {k}")).as_bytes());
                println!("fw: answered echo {k}");
            }
            ("rtt", Some(n)) => self.round_trips(n as usize),
            // A late echo of a round trip that already timed out.
            ("rt", _) => {}
            _ => println!("fw: unknown command {text:?}"),
        }
    }

    /// Publishes; a failure (the publisher already reconnected once) is retried a few times.
    fn publish(&mut self, payload: &[u8]) -> bool {
        for _ in 0..5 {
            match self.publisher.publish(payload) {
                Ok(()) => return true,
                Err(e) => {
                    println!("fw: publish: {e}");
                    self.stack.pause_ms(100);
                }
            }
        }
        false
    }

    fn burst(&mut self, n: u32) {
        let start = board::now_us();
        let mut sent = 0;
        for i in 0..n {
            if self.publish(Line::new(format_args!("seq {i}")).as_bytes()) {
                sent += 1;
            }
        }
        let us = board::now_us() - start;
        println!("fw: burst {n} sent {sent} in {us} us");
    }

    fn round_trips(&mut self, n: usize) {
        let n = n.min(MAX_RTT_SAMPLES);
        let mut done = 0;
        for i in 0..n {
            let expect = Line::new(format_args!("rt {i}"));
            let start = board::now_us();
            if !self.publish(expect.as_bytes()) {
                break;
            }
            let deadline = start + 2_000_000;
            let back = loop {
                match self.subscriber.recv() {
                    Ok(p) if p == expect.as_bytes() => break true,
                    Ok(_) | Err(Error::TimedOut) => {}
                    Err(e) => println!("fw: recv: {e}"),
                }
                if board::now_us() > deadline {
                    break false;
                }
            };
            if !back {
                println!("fw: rtt {i} not echoed");
                break;
            }
            self.samples[i] = (board::now_us() - start) as u32;
            done += 1;
        }
        let samples = &mut self.samples[..done];
        samples.sort_unstable();
        let at = |q: usize| samples.get((done * q / 100).min(done.saturating_sub(1)));
        match (at(50), at(90), at(99), samples.last()) {
            (Some(p50), Some(p90), Some(p99), Some(max)) => {
                println!("fw: rtt n={done} p50={p50} us p90={p90} us p99={p99} us max={max} us");
            }
            _ => println!("fw: rtt n=0"),
        }
    }
}
