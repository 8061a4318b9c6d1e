//! `demo`: a master and the whole example system in one process.
//!
//! Starts the master (default 0.0.0.0:5555, so the `zerosmq` CLI and other nodes can join), runs
//! two sensors, the processor and the monitor (which stops the sensors with `STOP`), prints the
//! traffic and the topic graph (also written as `zerosmq-graph.svg` when Graphviz is installed),
//! then keeps a talker and a listener chatting until Ctrl+C (or `--duration`).

use std::io::IsTerminal as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use zerosmq_examples as ex;
use zerosmq_master::{Master, MasterConfig};

#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Address the master binds.
    #[arg(long, default_value = "0.0.0.0")]
    bind: String,
    /// Control port of the master.
    #[arg(long, default_value_t = 5555)]
    port: u16,
    /// Readings the monitor waits for before it sends STOP.
    #[arg(long, default_value_t = 20)]
    readings: usize,
    /// Stop after this many seconds instead of running until Ctrl+C.
    #[arg(long)]
    duration: Option<f64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to stderr, coloured only when it is a terminal (not in a file or a pipe).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let master = Master::spawn(MasterConfig {
        bind: args.bind.clone(),
        port: args.port,
        ..Default::default()
    })?;
    let url = master.control_endpoint();
    println!("master: control service on {url} (try: ZEROSMQ_MASTER={url} zerosmq graph)");

    // The demo owns the example nodes and keeps them (heartbeating, with no topic left) until
    // it stops the master: a node dropped while the master runs looks like a crash to it, which
    // warns "node stopped sending heartbeats" after --node-timeout.
    let (tx, rx) = mpsc::channel();
    let mut finished_nodes = Vec::new();
    let mut workers = Vec::new();
    for id in [1u8, 2] {
        let node = ex::node(&ex::sensor_name(id), Some(&url))?;
        finished_nodes.push(node.clone());
        workers.push(std::thread::spawn(move || {
            let sent = ex::sensor_on(&node, id, Duration::from_millis(100))?;
            println!("sensor{id}: STOP received after {sent} readings");
            Ok::<(), zerosmq::Error>(())
        }));
    }
    let processor = ex::node("processor.py", Some(&url))?;
    finished_nodes.push(processor.clone());
    workers.push(std::thread::spawn(move || {
        let n = ex::processor_on(&processor)?;
        println!("processor: STOP received after {n} readings");
        Ok(())
    }));
    let monitor_node = ex::node("monitor.py", Some(&url))?;
    finished_nodes.push(monitor_node.clone());
    let readings = args.readings;
    let monitor = std::thread::spawn(move || {
        ex::monitor_on(&monitor_node, readings, |r| {
            let _ = tx.send(*r);
        })
    });

    let viewer = ex::node("demo-viewer", Some(&url))?;
    for (i, r) in rx.iter().enumerate() {
        println!(
            "monitor: sensor{} #{:<3} doubled value {}",
            r.sensor, r.seq, r.value
        );
        if i == 0 {
            show_graph(&viewer.graph()?);
        }
    }
    let seen = monitor.join().map_err(|_| "monitor panicked")??;
    println!("monitor: sent STOP after {} readings", seen.len());
    for w in workers {
        w.join().map_err(|_| "node panicked")??;
    }

    println!("talker and listener now chat on 'chatter'; Ctrl+C stops the demo");
    let turl = url.clone();
    std::thread::spawn(move || ex::talker(Some(&turl), Duration::from_millis(500), None));
    let lurl = url.clone();
    std::thread::spawn(move || {
        ex::listener(Some(&lurl), None, |t| println!("listener: I heard {t}"))
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let started = Instant::now();
    let limit = args.duration.map(Duration::from_secs_f64);
    while !stop.load(std::sync::atomic::Ordering::Relaxed)
        && limit.is_none_or(|l| started.elapsed() < l)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    master.shutdown()?;
    drop(finished_nodes);
    println!("demo stopped");
    // Talker and listener threads block on the stopped master; leave without joining them.
    std::process::exit(0)
}

fn show_graph(dot: &str) {
    println!("topic graph (DOT):\n{dot}");
    let out = std::process::Command::new("dot")
        .args(["-Tsvg", "-o", "zerosmq-graph.svg"])
        .stdin(std::process::Stdio::piped())
        .spawn();
    match out {
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write as _;
                let _ = stdin.write_all(dot.as_bytes());
            }
            match child.wait() {
                Ok(s) if s.success() => println!("topic graph written to zerosmq-graph.svg"),
                _ => println!("Graphviz could not render the graph"),
            }
        }
        Err(_) => {
            println!("install Graphviz (apt-get install graphviz) to get the graph as a picture")
        }
    }
}
