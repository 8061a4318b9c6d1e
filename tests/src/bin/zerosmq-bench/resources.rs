//! Idle CPU, resident memory and threads of a broker running as a child process (this binary re-run as
//! `zerosmq-bench __serve master|reference`), with 1,000 topics open and a libzmq publisher and
//! subscriber connected to every one of them.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::zmq_clients::{self, Control};

/// Serves a broker in this process until stdin closes; prints `PORT n` first.
pub fn serve(which: &str) -> std::process::ExitCode {
    let (port, keep): (u16, Box<dyn std::any::Any>) = match which {
        "master" => match crate::master_config()
            .and_then(|config| zerosmq_master::Master::spawn(config).map_err(|e| e.to_string()))
        {
            Ok(m) => (m.control_port(), Box::new(m)),
            Err(e) => {
                eprintln!("master: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        "reference" => match crate::reference::Reference::spawn() {
            Ok(r) => (r.control_port, Box::new(r)),
            Err(e) => {
                eprintln!("reference: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        other => {
            eprintln!("unknown broker {other}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("PORT {port}");
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    drop(keep);
    std::process::ExitCode::SUCCESS
}

pub struct Resources {
    /// CPU time over the idle period, in percent of one core.
    pub idle_cpu_pct: f64,
    /// Resident set size with the topics open and connected, in MiB.
    pub rss_mib: f64,
    /// Threads of the broker process then.
    pub threads: u64,
}

struct ChildBroker(Child);

impl Drop for ChildBroker {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        if self.0.wait_timeout_ok() {
            return;
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

trait WaitTimeout {
    fn wait_timeout_ok(&mut self) -> bool;
}

impl WaitTimeout for Child {
    fn wait_timeout_ok(&mut self) -> bool {
        for _ in 0..200 {
            if let Ok(Some(_)) = self.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// Nanoseconds every thread of `pid` has run (`/proc/PID/task/*/schedstat`, first field).
fn cpu_ns(pid: u32) -> Result<u64, String> {
    let mut total = 0;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

fn rss_mib(pid: u32) -> Result<f64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("no VmRSS")?;
    Ok(kb / 1024.0)
}

/// Starts `which` as a child, opens `topics` topics, connects to all, then measures.
pub fn measure(which: &str, topics: usize, idle: Duration) -> Result<Resources, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["__serve", which])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {which}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let child = ChildBroker(child);
    let pid = child.0.id();
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("{which} did not report its port: {line:?}"))?;
    let names: Vec<String> = (0..topics).map(|i| format!("t{i:04}")).collect();
    let control = Control::connect(&format!("tcp://127.0.0.1:{port}"))?;
    let pub_eps = control.endpoints(true, "bench-pub", &names)?;
    let sub_eps = control.endpoints(false, "bench-sub", &names)?;
    let _publisher = zmq_clients::publisher(&names, &pub_eps)?;
    let _subscriber = zmq_clients::subscriber(&sub_eps)?;
    // Let the connections and subscriptions settle before measuring.
    std::thread::sleep(Duration::from_millis(1500));
    let rss = rss_mib(pid)?;
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| e.to_string())?
        .count() as u64;
    let before = cpu_ns(pid)?;
    std::thread::sleep(idle);
    let after = cpu_ns(pid)?;
    Ok(Resources {
        idle_cpu_pct: (after.saturating_sub(before)) as f64 / idle.as_nanos() as f64 * 100.0,
        rss_mib: rss,
        threads,
    })
}
