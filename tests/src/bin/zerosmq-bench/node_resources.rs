//! Threads and resident memory of one std node with many publishers and subscribers: this
//! binary re-run as `zerosmq-bench __node PORT N` opens `N` publishers and `N` subscribers (one
//! of each per topic) against the master at `PORT`, waits until every path is ready, sends one
//! message through each topic, then reports its own thread count and RSS from `/proc`.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What the node process measured of itself.
pub struct NodeResources {
    pub threads: u64,
    pub rss_mib: f64,
    pub delivered: usize,
}

fn proc_status(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The child: `__node PORT N`.
pub fn serve(port: &str, n: &str) -> std::process::ExitCode {
    match run_node(port, n) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("node: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_node(port: &str, n: &str) -> Result<String, String> {
    let n: usize = n.parse().map_err(|e| format!("N: {e}"))?;
    // 2 N sockets, and libzmq's own descriptors.
    let _ = rlimit::increase_nofile_limit(4 * n as u64 + 256);
    let wait = Duration::from_secs(30);
    let node = zerosmq::Node::builder("bench-many")
        .master(format!("tcp://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(10))
        .connect()
        .map_err(|e| e.to_string())?;
    let mut publishers = Vec::with_capacity(n);
    let mut subscribers = Vec::with_capacity(n);
    for i in 0..n {
        let topic = format!("many{i}");
        publishers.push(
            node.advertise(&topic)
                .map_err(|e| format!("advertise {topic}: {e}"))?,
        );
        subscribers.push(
            node.subscribe(&topic)
                .map_err(|e| format!("subscribe {topic}: {e}"))?,
        );
    }
    for p in &mut publishers {
        p.wait_ready(wait).map_err(|e| e.to_string())?;
    }
    for s in &mut subscribers {
        s.wait_ready(wait).map_err(|e| e.to_string())?;
    }
    for p in &mut publishers {
        p.publish(b"x").map_err(|e| e.to_string())?;
    }
    let mut delivered = 0;
    for s in &mut subscribers {
        if s.recv_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())?
            .is_some()
        {
            delivered += 1;
        }
    }
    // Idle for a moment: heartbeats and keeper ticks run, nothing is being set up.
    std::thread::sleep(Duration::from_secs(1));
    let threads = proc_status("Threads:").ok_or("no Threads in /proc/self/status")?;
    let rss_kib = proc_status("VmRSS:").ok_or("no VmRSS in /proc/self/status")?;
    Ok(format!(
        "NODE threads {threads} rss_kib {rss_kib} delivered {delivered}"
    ))
}

/// Starts a master in this process and measures a node with `n` publishers and `n`
/// subscribers in a child process.
pub fn measure(n: usize) -> Result<NodeResources, String> {
    let _ = rlimit::increase_nofile_limit(8 * n as u64 + 256);
    let mut config = crate::master_config()?;
    config.max_grants_per_node = 2 * n + 16;
    let master = zerosmq_master::Master::spawn(config).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["__node", &master.control_port().to_string(), &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    let status = child.wait().map_err(|e| e.to_string())?;
    drop(master);
    if !status.success() {
        return Err(format!("the node process failed ({status})"));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let get = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("no {key} in '{}'", line.trim()))
    };
    Ok(NodeResources {
        threads: get("threads")?,
        rss_mib: get("rss_kib")? as f64 / 1024.0,
        delivered: get("delivered")? as usize,
    })
}
