//! What the hostile-peer tests (`hostile_data.rs`, `hostile_control.rs`) share: a witness pair
//! streaming through the master binary with a control prober beside it, and the meter that
//! reads the master's CPU, memory and descriptors from /proc around an attack and prints the
//! `figures:` line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{wait_until, MasterProcess, WAIT};

pub const TOPIC: &str = "witness";

/// The worst a control request may take while the master is under attack.
pub const CONTROL_BOUND: Duration = Duration::from_secs(1);

/// What the witness and the prober saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    pub received: u64,
    pub lost: u64,
    pub worst_latency: Duration,
    pub control_requests: u64,
    pub worst_control: Duration,
    /// From the start of the stream to its end.
    pub duration: Duration,
}

/// A publisher/subscriber pair streaming sequenced, timestamped messages through the master,
/// and a node asking the control service for the topic list, both on their own threads.
pub struct Witness {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<JoinHandle<()>>,
    sent: Arc<Mutex<u64>>,
    started: Instant,
}

impl Witness {
    pub fn start(master: &MasterProcess) -> Witness {
        let endpoint = master.endpoint();
        let node = zerosmq::Node::builder("witness")
            .master(&endpoint)
            .timeout(WAIT)
            .connect()
            .expect("witness node");
        let mut publisher = node.advertise(TOPIC).expect("advertise");
        let mut subscriber = node.subscribe(TOPIC).expect("subscribe");
        publisher.wait_ready(WAIT).expect("publisher ready");
        subscriber.wait_ready(WAIT).expect("subscriber ready");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sent = Arc::new(Mutex::new(0u64));
        let base = Instant::now();
        let mut threads = Vec::new();
        {
            let (stop, sent) = (stop.clone(), sent.clone());
            threads.push(std::thread::spawn(move || {
                let _node = node;
                let mut seq = 0u64;
                // 1,000 messages/s: a steady stream whose gaps and delays are visible.
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let at = base.elapsed().as_nanos() as u64;
                    let mut payload = [0u8; 16];
                    payload[..8].copy_from_slice(&seq.to_le_bytes());
                    payload[8..].copy_from_slice(&at.to_le_bytes());
                    publisher.publish(&payload).expect("publish");
                    *sent.lock().unwrap() = seq;
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert!(
                    publisher.flush(WAIT),
                    "the witness's last messages are written"
                );
            }));
        }
        {
            let (stop, seen, sent) = (stop.clone(), seen.clone(), sent.clone());
            threads.push(std::thread::spawn(move || {
                let mut last = 0u64;
                let mut stopped_at = None;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        // Until the last message sent arrived, or it is lost.
                        let at = *stopped_at.get_or_insert_with(Instant::now);
                        if last >= *sent.lock().unwrap() || at.elapsed() > WAIT {
                            return;
                        }
                    }
                    let msg = subscriber
                        .recv_timeout(Duration::from_millis(100))
                        .expect("receive");
                    let Some(msg) = msg else {
                        continue;
                    };
                    let p = msg.payload();
                    let seq = u64::from_le_bytes(p[..8].try_into().unwrap());
                    let at = u64::from_le_bytes(p[8..16].try_into().unwrap());
                    let latency = base.elapsed().saturating_sub(Duration::from_nanos(at));
                    let mut s = seen.lock().unwrap();
                    s.received += 1;
                    s.lost += seq.saturating_sub(last + 1);
                    s.worst_latency = s.worst_latency.max(latency);
                    last = seq;
                }
            }));
        }
        {
            let (stop, seen) = (stop.clone(), seen.clone());
            let prober = zerosmq::Node::builder("prober")
                .master(&endpoint)
                .timeout(WAIT)
                .connect()
                .expect("prober node");
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    prober.topics().expect("control answers");
                    let took = t.elapsed();
                    let mut s = seen.lock().unwrap();
                    s.control_requests += 1;
                    s.worst_control = s.worst_control.max(took);
                    drop(s);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }));
        }
        Witness {
            stop,
            seen,
            threads,
            sent,
            started: base,
        }
    }

    /// Stops streaming, waits for the last message, and returns what was seen.
    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("witness thread");
        }
        let seen = *self.seen.lock().unwrap();
        let sent = *self.sent.lock().unwrap();
        let mut seen = seen;
        seen.duration = self.started.elapsed();
        // Messages that never came after the stop are lost too.
        seen.lost += sent.saturating_sub(seen.received + seen.lost);
        seen
    }
}

/// The master's CPU time (user + system), from /proc/PID/stat.
pub fn cpu_seconds(master: &MasterProcess) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", master.child.id())).unwrap();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0 // USER_HZ
}

/// Measurements around an attack.
pub struct Meter {
    pub cpu: f64,
    pub rss: u64,
    pub fds: usize,
}

impl Meter {
    pub fn start(master: &MasterProcess) -> Meter {
        Meter {
            cpu: cpu_seconds(master),
            rss: master.rss_kib(),
            fds: master.open_fds(),
        }
    }

    /// Prints the `figures:` line and checks what must hold afterwards.
    pub fn report(&self, name: &str, master: &mut MasterProcess, seen: Seen, extra: &str) {
        let cpu = cpu_seconds(master) - self.cpu;
        let peak = master.peak_rss_kib();
        // Memory and descriptors come back once the attacker is gone.
        let settled = wait_until(WAIT, || {
            master.rss_kib() <= self.rss + 8 * 1024 && master.open_fds() <= self.fds + 4
        });
        let (rss, fds) = (master.rss_kib(), master.open_fds());
        println!(
            "figures: {name}: master CPU {cpu:.2} s, peak RSS {:.1} MiB (baseline {:.1}, after {:.1}), fds {} -> {fds}, witness {} msgs ({:.0}/s) lost {} worst latency {:.1} ms, control {} requests worst {:.1} ms{extra}",
            peak as f64 / 1024.0,
            self.rss as f64 / 1024.0,
            rss as f64 / 1024.0,
            self.fds,
            seen.received,
            seen.received as f64 / seen.duration.as_secs_f64().max(1e-3),
            seen.lost,
            seen.worst_latency.as_secs_f64() * 1e3,
            seen.control_requests,
            seen.worst_control.as_secs_f64() * 1e3,
        );
        assert!(master.child.try_wait().unwrap().is_none(), "master alive");
        assert_eq!(seen.lost, 0, "the witness lost messages");
        assert!(seen.control_requests > 0);
        assert!(
            seen.worst_control < CONTROL_BOUND,
            "control took {:?}",
            seen.worst_control
        );
        assert!(
            settled.is_some(),
            "memory or descriptors not back: RSS {rss} KiB (baseline {}), fds {fds} (baseline {})",
            self.rss,
            self.fds
        );
    }
}

/// Log lines received so far that contain `needle`.
pub fn log_lines(master: &MasterProcess, needle: &str) -> usize {
    master.log.try_iter().filter(|l| l.contains(needle)).count()
}
