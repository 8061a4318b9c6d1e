//! The measuring loops, the same for every system: a publisher with a credit window, subscriber
//! threads that count, and a ping/echo pair for round trips.
//!
//! Payload layout (at least 8 bytes): byte 0 says what the message is (`W` warm-up, `D` data,
//! `P` ping), bytes 1..5 the topic index or sequence number (little endian), the rest padding.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sends payloads on topic `index` (the topic list is the sender's own).
pub trait Publish: Send {
    fn send(&mut self, topic: usize, payload: &[u8]) -> Result<(), String>;
}

/// Receives one message, or `None` after about `timeout`; returns the payload's first 8 bytes.
pub trait Receive: Send {
    fn recv(&mut self, timeout: Duration) -> Result<Option<[u8; 8]>, String>;
}

/// Both ends of a node that publishes one topic and receives another (ping, echo).
pub trait Peer: Publish + Receive {}
impl<T: Publish + Receive + ?Sized> Peer for T {}

/// A [`Peer`] made of a separate sender and receiver.
pub struct Duplex {
    pub tx: Box<dyn Publish>,
    pub rx: Box<dyn Receive>,
}

impl Publish for Duplex {
    fn send(&mut self, topic: usize, payload: &[u8]) -> Result<(), String> {
        self.tx.send(topic, payload)
    }
}

impl Receive for Duplex {
    fn recv(&mut self, timeout: Duration) -> Result<Option<[u8; 8]>, String> {
        self.rx.recv(timeout)
    }
}

pub const WARMUP: u8 = b'W';
pub const DATA: u8 = b'D';
pub const PING: u8 = b'P';

/// Copies the first 8 bytes of a payload (shorter payloads are zero padded).
pub fn head(payload: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    let n = payload.len().min(8);
    out[..n].copy_from_slice(&payload[..n]);
    out
}

fn index_of(head: &[u8; 8]) -> usize {
    u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize
}

/// How a throughput run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub payload: usize,
    pub topics: usize,
    pub subscribers: usize,
    /// How long the publisher sends.
    pub duration: Duration,
}

impl Load {
    /// Messages the publisher may have on one topic ahead of that topic's slowest subscriber.
    ///
    /// Every system here has a connection per topic (the floor too). A libzmq pipe's writer
    /// learns what its reader consumed only now and then (at its low-water mark), so a pipe
    /// with a high-water mark of 10,000 may drop once about 1,000 messages are really queued.
    /// Staying below that keeps every system loss-free while its subscribers keep up; the rate
    /// measured is then the rate it sustains.
    pub fn topic_window(&self) -> u64 {
        self.window().min(1_000)
    }

    /// Messages in flight over all topics: at most 64 MiB of payload.
    pub fn window(&self) -> u64 {
        ((64usize << 20) / self.payload.max(1)).max(64) as u64
    }
}

/// What a throughput run measured.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    /// Data messages published.
    pub sent: u64,
    /// `sent * subscribers - delivered`.
    pub lost: u64,
    /// Messages per second each subscriber received.
    pub msgs_per_s: f64,
    /// Payload megabytes (10^6 bytes) per second each subscriber received.
    pub mb_per_s: f64,
}

struct SubState {
    data: AtomicU64,
    /// Data messages per topic.
    per_topic: Vec<AtomicU64>,
    /// Nanoseconds since `epoch` of the last data message.
    last_ns: AtomicU64,
    seen: Vec<AtomicBool>,
    seen_count: AtomicU64,
}

/// Runs one throughput measurement: `publisher` in this thread, each receiver in its own.
pub fn throughput(
    load: Load,
    mut publisher: Box<dyn Publish>,
    receivers: Vec<Box<dyn Receive>>,
) -> Result<Throughput, String> {
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let states: Vec<Arc<SubState>> = (0..receivers.len())
        .map(|_| {
            Arc::new(SubState {
                data: AtomicU64::new(0),
                per_topic: (0..load.topics).map(|_| AtomicU64::new(0)).collect(),
                last_ns: AtomicU64::new(0),
                seen: (0..load.topics).map(|_| AtomicBool::new(false)).collect(),
                seen_count: AtomicU64::new(0),
            })
        })
        .collect();
    let threads: Vec<_> = receivers
        .into_iter()
        .zip(states.iter().cloned())
        .map(|(mut rx, state)| {
            let stop = stop.clone();
            let errors = errors.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match rx.recv(Duration::from_millis(50)) {
                        Ok(Some(h)) if h[0] == DATA => {
                            if let Some(c) = state.per_topic.get(index_of(&h)) {
                                c.fetch_add(1, Ordering::Relaxed);
                            }
                            state.data.fetch_add(1, Ordering::Relaxed);
                            state
                                .last_ns
                                .store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        }
                        Ok(Some(h)) if h[0] == WARMUP => {
                            let i = index_of(&h);
                            if let Some(flag) = state.seen.get(i) {
                                if !flag.swap(true, Ordering::Relaxed) {
                                    state.seen_count.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            errors.lock().unwrap().push(e);
                            return;
                        }
                    }
                }
                drop(rx);
            })
        })
        .collect();
    let result = drive(load, &mut *publisher, &states, epoch);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    if let Some(e) = errors.lock().unwrap().first() {
        return Err(e.clone());
    }
    result
}

fn drive(
    load: Load,
    publisher: &mut dyn Publish,
    states: &[Arc<SubState>],
    epoch: Instant,
) -> Result<Throughput, String> {
    let mut payload = vec![0u8; load.payload.max(8)];
    // Warm-up: every subscriber has seen a message on every topic, so every path is connected
    // and subscribed (the slow joiner is the same for every system).
    payload[0] = WARMUP;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all_seen = |i: usize| states.iter().all(|s| s.seen[i].load(Ordering::Relaxed));
        if states
            .iter()
            .all(|s| s.seen_count.load(Ordering::Relaxed) as usize == load.topics)
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(
                "warm-up: not every subscriber got a message on every topic in 30 s".into(),
            );
        }
        for i in 0..load.topics {
            if !all_seen(i) {
                payload[1..5].copy_from_slice(&(i as u32).to_le_bytes());
                publisher.send(i, &payload)?;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let late warm-up copies arrive before counting starts.
    std::thread::sleep(Duration::from_millis(50));
    payload[0] = DATA;
    let (window, topic_window) = (load.window(), load.topic_window());
    let start = Instant::now();
    let start_ns = epoch.elapsed().as_nanos() as u64;
    let end = start + load.duration;
    let min_received = || {
        states
            .iter()
            .map(|s| s.data.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    };
    let min_received_on = |t: usize| {
        states
            .iter()
            .map(|s| s.per_topic[t].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    };
    // Round robin over the topics; each send waits for credit on its topic and overall.
    let mut sent = 0u64;
    let mut acked = 0u64;
    let mut sent_on = vec![0u64; load.topics];
    let mut acked_on = vec![0u64; load.topics];
    'send: loop {
        if sent & 63 == 0 && Instant::now() >= end {
            break;
        }
        let topic = (sent % load.topics as u64) as usize;
        while sent_on[topic] - acked_on[topic] >= topic_window || sent - acked >= window {
            acked_on[topic] = min_received_on(topic);
            acked = min_received();
            if sent_on[topic] - acked_on[topic] >= topic_window || sent - acked >= window {
                if Instant::now() >= end {
                    break 'send;
                }
                // Sleep, not yield: a spinning publisher would take a core from the system it
                // measures (2 cores here).
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        payload[1..5].copy_from_slice(&(topic as u32).to_le_bytes());
        publisher.send(topic, &payload)?;
        sent += 1;
        sent_on[topic] += 1;
    }
    // Drain: until everything arrived or nothing moved for a second.
    let expected = sent * states.len() as u64;
    let mut last_total = 0;
    let mut last_change = Instant::now();
    loop {
        let total: u64 = states.iter().map(|s| s.data.load(Ordering::Relaxed)).sum();
        if total >= expected {
            break;
        }
        if total != last_total {
            last_total = total;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let delivered: u64 = states.iter().map(|s| s.data.load(Ordering::Relaxed)).sum();
    let last_ns = states
        .iter()
        .map(|s| s.last_ns.load(Ordering::Relaxed))
        .max()
        .unwrap_or(start_ns);
    let secs = (last_ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-9);
    let per_sub = delivered as f64 / states.len() as f64;
    Ok(Throughput {
        sent,
        lost: expected.saturating_sub(delivered),
        msgs_per_s: per_sub / secs,
        mb_per_s: per_sub * load.payload as f64 / secs / 1e6,
    })
}

/// Round-trip figures in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub samples: usize,
    pub lost: usize,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Echoes every ping back until `stop`.
pub fn spawn_echo(mut echo: Box<dyn Peer>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut payload = [0u8; 8];
        while !stop.load(Ordering::Relaxed) {
            match echo.recv(Duration::from_millis(50)) {
                Ok(Some(h)) => {
                    payload.copy_from_slice(&h);
                    if echo.send(0, &payload).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(_) => return,
            }
        }
    })
}

/// A stream of `size`-byte messages every `period` on its own topic beside the round trips
/// (head-of-line blocking), until `stop`: one thread publishes on a fixed schedule, one drains.
/// Returns how many the drain thread received.
pub fn spawn_bulk(
    mut tx: Box<dyn Publish>,
    mut rx: Box<dyn Receive>,
    size: usize,
    period: Duration,
    stop: Arc<AtomicBool>,
) -> (std::thread::JoinHandle<()>, std::thread::JoinHandle<u64>) {
    let stop_tx = stop.clone();
    let sender = std::thread::spawn(move || {
        let mut payload = vec![0u8; size];
        payload[0] = DATA;
        let mut next = Instant::now();
        while !stop_tx.load(Ordering::Relaxed) {
            if tx.send(0, &payload).is_err() {
                return;
            }
            next += period;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    });
    let drain = std::thread::spawn(move || {
        let mut got = 0u64;
        while !stop.load(Ordering::Relaxed) {
            match rx.recv(Duration::from_millis(50)) {
                Ok(Some(_)) => got += 1,
                Ok(None) => {}
                Err(_) => break,
            }
        }
        got
    });
    (sender, drain)
}

/// Ping -> echo -> ping, one message in flight, `samples` times after the path is up.
pub fn round_trips(ping: &mut dyn Peer, samples: usize) -> Result<Latency, String> {
    let mut payload = [0u8; 8];
    payload[0] = PING;
    // Warm-up: until a ping comes back (the first ones may be lost to the slow joiner).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = u32::MAX;
    'up: loop {
        if Instant::now() > deadline {
            return Err("round trip: no echo within 30 s".into());
        }
        payload[1..5].copy_from_slice(&seq.to_le_bytes());
        ping.send(0, &payload)?;
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            if let Some(h) = ping.recv(Duration::from_millis(20))? {
                if index_of(&h) == seq as usize {
                    break 'up;
                }
            }
        }
        seq = seq.wrapping_sub(1);
    }
    // Drain stray warm-up echoes.
    while ping.recv(Duration::from_millis(20))?.is_some() {}
    let mut rtts = Vec::with_capacity(samples);
    let mut lost = 0;
    for seq in 0..samples as u32 {
        payload[1..5].copy_from_slice(&seq.to_le_bytes());
        let t0 = Instant::now();
        ping.send(0, &payload)?;
        loop {
            match ping.recv(Duration::from_secs(1))? {
                Some(h) if index_of(&h) == seq as usize => {
                    rtts.push(t0.elapsed());
                    break;
                }
                Some(_) => {}
                None => {
                    lost += 1;
                    break;
                }
            }
        }
    }
    rtts.sort_unstable();
    let pct = |p: f64| -> f64 {
        if rtts.is_empty() {
            return f64::NAN;
        }
        let i = ((rtts.len() as f64 * p).ceil() as usize).clamp(1, rtts.len()) - 1;
        rtts[i].as_secs_f64() * 1e6
    };
    Ok(Latency {
        samples: rtts.len(),
        lost,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}
