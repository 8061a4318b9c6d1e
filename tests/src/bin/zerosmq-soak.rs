//! `zerosmq-soak`: churn against a real master process, with a master restart in the middle.
//!
//! 100 topics (by default); worker threads keep creating nodes that publish and subscribe a
//! random topic, exchange a numbered burst, and leave. Halfway through, the master is SIGKILLed
//! and started again with its state file. Prints messages sent, delivered and lost per phase, and
//! the master's RSS and open descriptors at the start and after the churn stops (no growth).
//!
//! `cargo run --release -p zerosmq-tests --bin zerosmq-soak -- [--seconds 60] [--topics 100] [--workers 8]`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zerosmq_tests::{wait_until, MasterProcess};

#[derive(Default)]
struct Phase {
    sent: AtomicU64,
    delivered: AtomicU64,
    rounds: AtomicU64,
    failed_rounds: AtomicU64,
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny xorshift: the soak needs variety, not cryptography.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One round: a publisher and a subscriber node on a random topic exchange a numbered burst.
fn round(
    endpoint: &str,
    worker: u64,
    n: u64,
    topic: u64,
    burst: u64,
    phase: &Phase,
) -> Result<(), String> {
    let e = |e: zerosmq::Error| e.to_string();
    let mk = |role: &str| {
        zerosmq::Node::builder(&format!("soak-{role}-{worker}-{n}"))
            .master(endpoint)
            .timeout(Duration::from_secs(2))
            .heartbeat(Some(Duration::from_millis(500)))
            .claim_wait(Duration::from_secs(1))
            .connect()
            .map_err(e)
    };
    let (pn, sn) = (mk("pub")?, mk("sub")?);
    let topic = format!("soak{topic}");
    let mut sub = sn.subscribe(&topic).map_err(e)?;
    let mut publisher = pn.advertise(&topic).map_err(e)?;
    sub.wait_ready(Duration::from_secs(2)).map_err(e)?;
    publisher.wait_ready(Duration::from_secs(2)).map_err(e)?;
    let tag = format!("{worker}:{n}:");
    for i in 0..burst {
        publisher
            .publish(format!("{tag}{i}").as_bytes())
            .map_err(e)?;
        phase.sent.fetch_add(1, Ordering::Relaxed);
    }
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while got < burst && Instant::now() < deadline {
        match sub.recv_timeout(Duration::from_millis(100)).map_err(e)? {
            // Other workers may share the topic; count only this round's messages.
            Some(m) if m.payload().starts_with(tag.as_bytes()) => got += 1,
            _ => {}
        }
    }
    phase.delivered.fetch_add(got, Ordering::Relaxed);
    Ok(())
}

fn main() {
    let seconds = arg("--seconds", 60);
    let topics = arg("--topics", 100);
    let workers = arg("--workers", 8);
    let burst = 50;
    let dir = std::env::temp_dir().join(format!("zerosmq-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state = dir.join("master.state");
    let state_arg = state.to_string_lossy().into_owned();
    let mut master = MasterProcess::start(&["--state", &state_arg, "--node-timeout", "2"]);
    let port = master.port;
    let endpoint = master.endpoint();
    std::thread::sleep(Duration::from_millis(200));
    let (rss0, fds0) = (master.rss_kib(), master.open_fds());
    println!("soak: {topics} topics, {workers} workers, {seconds} s, master restart halfway");

    let phases: Arc<[Phase; 2]> = Arc::new(Default::default());
    let current = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (phases, current, stop, errors, endpoint) = (
                phases.clone(),
                current.clone(),
                stop.clone(),
                errors.clone(),
                endpoint.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (w + 1);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let topic = next_random(&mut rng) % topics;
                    let tally = Phase::default();
                    let started_in = current.load(Ordering::Relaxed);
                    let result = round(&endpoint, w, n, topic, burst, &tally);
                    // A round that saw the restart counts as "across restart".
                    let phase = &phases[started_in.max(current.load(Ordering::Relaxed)) as usize];
                    phase.rounds.fetch_add(1, Ordering::Relaxed);
                    phase
                        .sent
                        .fetch_add(tally.sent.load(Ordering::Relaxed), Ordering::Relaxed);
                    phase
                        .delivered
                        .fetch_add(tally.delivered.load(Ordering::Relaxed), Ordering::Relaxed);
                    if let Err(e) = result {
                        phase.failed_rounds.fetch_add(1, Ordering::Relaxed);
                        let mut errs = errors.lock().unwrap_or_else(|e| e.into_inner());
                        if errs.len() < 5 {
                            errs.push(e);
                        }
                    }
                    n += 1;
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(seconds / 2));
    current.store(1, Ordering::Relaxed);
    let _ = master.child.kill();
    let _ = master.child.wait();
    let killed = Instant::now();
    drop(master);
    let master = loop {
        // The old process's ports can take a moment to be released.
        match std::panic::catch_unwind(|| {
            MasterProcess::start(&[
                "--port",
                &port.to_string(),
                "--state",
                &state_arg,
                "--node-timeout",
                "2",
            ])
        }) {
            Ok(m) => break m,
            Err(_) if killed.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(_) => panic!("master did not restart"),
        }
    };
    println!("master restarted {:?} after SIGKILL", killed.elapsed());
    // A child inherits this process's descriptors that libzmq opened without close-on-exec, so
    // the restarted master's baseline is its own, taken now.
    let (rss_restart, fds_restart) = (master.rss_kib(), master.open_fds());
    std::thread::sleep(Duration::from_secs(seconds - seconds / 2));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    // Churn has stopped and every node is gone: the master must shrink back to about where the
    // restarted process began (a few descriptors of slack for libzmq's own bookkeeping).
    let settled = wait_until(Duration::from_secs(10), || {
        master.open_fds() <= fds_restart + 8
    });
    let (rss1, fds1) = (master.rss_kib(), master.open_fds());
    // Idle now: nothing may keep growing.
    std::thread::sleep(Duration::from_secs(2));
    let (rss2, fds2) = (master.rss_kib(), master.open_fds());

    println!();
    println!("| phase | rounds | failed rounds | sent | delivered | lost |");
    println!("|---|---|---|---|---|---|");
    for (name, p) in ["before restart", "across restart"]
        .iter()
        .zip(phases.iter())
    {
        let (s, d) = (
            p.sent.load(Ordering::Relaxed),
            p.delivered.load(Ordering::Relaxed),
        );
        println!(
            "| {name} | {} | {} | {s} | {d} | {} |",
            p.rounds.load(Ordering::Relaxed),
            p.failed_rounds.load(Ordering::Relaxed),
            s - d
        );
    }
    println!();
    println!("| master | first start | after restart | churn stopped | 2 s later |");
    println!("|---|---|---|---|---|");
    println!("| RSS | {rss0} KiB | {rss_restart} KiB | {rss1} KiB | {rss2} KiB |");
    println!("| open descriptors | {fds0} | {fds_restart} | {fds1} | {fds2} |");
    for e in errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("sample round failure: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    if settled.is_none() || fds2 > fds1 || rss2 > rss1 + 1024 {
        if let Ok(n) = zerosmq::Node::builder("soak-inspector")
            .master(master.endpoint())
            .connect()
        {
            eprintln!(
                "still registered: nodes {:?}, topics {:?}",
                n.nodes(),
                n.topics()
            );
        }
        // What the extra descriptors are, for whoever reads the failure.
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", master.child.id())) {
            let mut kinds: Vec<String> = dir
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|l| l.display().to_string())
                .collect();
            kinds.sort();
            kinds.retain(|k| !k.contains("eventpoll"));
            eprintln!("master descriptors (eventpolls are inherited from this process): {kinds:?}");
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("ss -tanpe | grep 'pid={},'", master.child.id()))
                .status();
        }
        eprintln!("soak: FAIL: descriptors grew from {fds_restart} to {fds1}");
        drop(master); // exit() skips destructors: stop the master first
        std::process::exit(1);
    }
    let before = &phases[0];
    if before.sent.load(Ordering::Relaxed) != before.delivered.load(Ordering::Relaxed) {
        eprintln!("soak: FAIL: messages lost with a healthy master");
        drop(master);
        std::process::exit(1);
    }
    println!("soak: OK");
}
