//! `zerosmq topic list|info|echo|pub|hz|bw`.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write as _;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::{
    cli_node, cli_node_as, parse_rate, parse_seconds, require_topic, stop_flag, stopped, Cli,
    CliResult,
};

#[derive(Debug, clap::Subcommand)]
pub enum TopicCommand {
    /// List topics with their publisher and subscriber counts and traffic so far.
    List,
    /// Who publishes and subscribes a topic, its ports, and what the master forwarded.
    Info { topic: String },
    /// Print messages of a topic: a typed topic's payloads as JSON (one line each), others as
    /// text when UTF-8, else as 0x-prefixed hex.
    Echo {
        /// The topic.
        topic: String,
        /// Exit after N messages.
        #[arg(short = 'n', long)]
        count: Option<u64>,
        /// Always print payloads as hex.
        #[arg(long)]
        hex: bool,
        /// Prefix each message with its topic.
        #[arg(short, long)]
        verbose: bool,
        /// Wait for a topic the master does not know yet instead of failing.
        #[arg(long)]
        wait: bool,
    },
    /// Publish a text message once, or repeatedly at a rate.
    Pub {
        /// The topic.
        topic: String,
        /// The payload (sent as its UTF-8 bytes).
        message: String,
        /// Publish repeatedly at this rate (Hz) until --count or Ctrl-C.
        #[arg(short, long, value_parser = parse_rate)]
        rate: Option<f64>,
        /// Number of messages (default: 1 without --rate, unlimited with it).
        #[arg(short = 'n', long)]
        count: Option<u64>,
        /// First wait until the topic has at least this many subscribers.
        #[arg(long, default_value_t = 0)]
        wait_subscribers: usize,
    },
    /// Message rate of a topic, with min/max/std-dev of the intervals over a window.
    Hz(WatchArgs),
    /// Bandwidth of a topic (payload bytes per second) over a window.
    Bw(WatchArgs),
}

/// What `topic hz` and `topic bw` take.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The topic.
    topic: String,
    /// Window: the last N messages.
    #[arg(short, long, default_value_t = 100)]
    window: usize,
    /// Seconds between reports.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    interval: Duration,
    /// Stop after this many seconds.
    #[arg(short, long, value_parser = parse_seconds)]
    duration: Option<Duration>,
    /// Wait for a topic the master does not know yet instead of failing.
    #[arg(long)]
    wait: bool,
}

pub fn run(cli: &Cli, cmd: &TopicCommand) -> CliResult {
    match cmd {
        TopicCommand::List => list(cli),
        TopicCommand::Info { topic } => info(cli, topic),
        TopicCommand::Echo {
            topic,
            count,
            hex,
            verbose,
            wait,
        } => echo(cli, topic, *count, *hex, *verbose, *wait),
        TopicCommand::Pub {
            topic,
            message,
            rate,
            count,
            wait_subscribers,
        } => publish(cli, topic, message, *rate, *count, *wait_subscribers),
        TopicCommand::Hz(args) => watch(cli, Stat::Rate, args),
        TopicCommand::Bw(args) => watch(cli, Stat::Bandwidth, args),
    }
}

/// Every topic the master knows: those with a publisher (its topic list) and those that only
/// have subscribers (from the nodes' subscriptions).
fn all_topics(node: &zerosmq::Node) -> zerosmq::Result<BTreeSet<String>> {
    let mut topics: BTreeSet<String> = node.topics()?.into_iter().collect();
    for name in node.nodes()? {
        // A node that left between the two requests is simply skipped.
        if let Ok(info) = node.node_info(&name) {
            topics.extend(info.subscribes);
        }
    }
    Ok(topics)
}

fn list(cli: &Cli) -> CliResult {
    let node = cli_node(cli)?;
    let mut rows = Vec::new();
    for topic in all_topics(&node)? {
        match node.topic_info(&topic) {
            Ok(info) => rows.push(info),
            // Gone since the listing.
            Err(zerosmq::Error::Refused { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let width = rows.iter().map(|r| r.topic.len()).max().unwrap_or(0).max(5);
    println!(
        "{:<width$}  {:>10}  {:>11}  {:>10}  {:>12}",
        "TOPIC", "PUBLISHERS", "SUBSCRIBERS", "MESSAGES", "BYTES"
    );
    for r in rows {
        println!(
            "{:<width$}  {:>10}  {:>11}  {:>10}  {:>12}",
            r.topic,
            r.publishers.len(),
            r.subscribers.len(),
            r.messages,
            r.bytes
        );
    }
    Ok(())
}

fn info(cli: &Cli, topic: &str) -> CliResult {
    let node = cli_node(cli)?;
    require_topic(&node, topic, false)?;
    let info = node.topic_info(topic)?;
    println!("Topic: {}", info.topic);
    println!("Publish port: {}", info.publish_port);
    println!("Subscribe port: {}", info.subscribe_port);
    for (title, names) in [
        ("Publishers", &info.publishers),
        ("Subscribers", &info.subscribers),
    ] {
        if names.is_empty() {
            println!("{title}: none");
        } else {
            println!("{title}:");
            for n in names {
                println!(" * {n}");
            }
        }
    }
    println!("Messages forwarded: {}", info.messages);
    println!("Bytes forwarded: {}", info.bytes);
    if info.refused > 0 {
        println!(
            "Connections refused: {} (the master's connection limit was reached)",
            info.refused
        );
    }
    match info.idle {
        Some(idle) => println!("Last message: {:.3} s ago", idle.as_secs_f64()),
        None => println!("Last message: never"),
    }
    if let Some(schema) = &info.schema {
        println!("Type: {}", schema.name);
        println!("Schema: {}", schema.to_pseudocode());
    }
    Ok(())
}

/// The JSON decoder of a typed topic's payloads; `None` while it is untyped, or (with a warning)
/// when its type cannot be shown as JSON.
pub fn json_decoder(
    node: &zerosmq::Node,
    topic: &str,
) -> zerosmq::Result<Option<zerosmq_recording::typed::JsonDecoder>> {
    let Some(schema) = node.topic_schema(topic)? else {
        return Ok(None);
    };
    match zerosmq_recording::typed::JsonDecoder::new(schema) {
        Ok(d) => Ok(Some(d)),
        Err(e) => {
            eprintln!("zerosmq: topic '{topic}': {e}; payloads shown raw");
            Ok(None)
        }
    }
}

/// Opens a ready subscriber for a CLI command (`role` names the node).
fn ready_subscriber(
    cli: &Cli,
    role: &str,
    topic: &str,
    wait: bool,
) -> Result<zerosmq::Subscriber, Box<dyn std::error::Error>> {
    let node = cli_node_as(cli, role)?;
    require_topic(&node, topic, wait)?;
    let mut sub = node.subscribe(topic)?;
    sub.wait_ready(cli.timeout)?;
    eprintln!("zerosmq: subscribed to '{topic}'");
    Ok(sub)
}

/// How often blocking loops look at the stop flag.
pub const POLL: Duration = Duration::from_millis(100);

/// Receives until `stop`, the deadline, or `each` returns false.
pub fn receive_loop(
    sub: &mut zerosmq::Subscriber,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    mut each: impl FnMut(zerosmq::Message, Instant) -> Result<bool, Box<dyn std::error::Error>>,
) -> CliResult {
    while !stopped(stop) {
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.min(POLL)
            }
            None => POLL,
        };
        if let Some(msg) = sub.recv_timeout(wait)? {
            let at = Instant::now();
            if !each(msg, at)? {
                break;
            }
        }
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn echo(
    cli: &Cli,
    topic: &str,
    count: Option<u64>,
    force_hex: bool,
    verbose: bool,
    wait: bool,
) -> CliResult {
    let stop = stop_flag()?;
    let node = cli_node_as(cli, "echo")?;
    require_topic(&node, topic, wait)?;
    let mut sub = node.subscribe(topic)?;
    sub.wait_ready(cli.timeout)?;
    eprintln!("zerosmq: subscribed to '{topic}'");
    if count == Some(0) {
        return Ok(());
    }
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    // Typed payloads are printed as JSON; the schema is asked again (at most once a second)
    // while the topic is untyped, for a typed publisher that comes later.
    let mut typed = if force_hex {
        None
    } else {
        json_decoder(&node, topic)?
    };
    let mut asked = Instant::now();
    receive_loop(&mut sub, &stop, None, |msg, _| {
        if typed.is_none() && !force_hex && asked.elapsed() >= Duration::from_secs(1) {
            typed = json_decoder(&node, topic)?;
            asked = Instant::now();
        }
        let mut out = stdout.lock();
        if verbose {
            write!(out, "{}: ", msg.topic())?;
        }
        let json = typed.as_ref().map(|d| d.decode(msg.payload()));
        match (json, msg.text()) {
            (Some(Ok(value)), _) => writeln!(out, "{value}")?,
            (Some(Err(e)), _) => {
                eprintln!("zerosmq: {e}");
                writeln!(out, "{}", hex(msg.payload()))?
            }
            (None, Some(text)) if !force_hex => writeln!(out, "{text}")?,
            _ => writeln!(out, "{}", hex(msg.payload()))?,
        }
        out.flush()?;
        seen += 1;
        Ok(count.is_none_or(|n| seen < n))
    })
}

fn publish(
    cli: &Cli,
    topic: &str,
    message: &str,
    rate: Option<f64>,
    count: Option<u64>,
    wait_subscribers: usize,
) -> CliResult {
    let stop = stop_flag()?;
    let node = cli_node_as(cli, "pub")?;
    let mut publisher = node.advertise(topic)?;
    publisher.wait_ready(cli.timeout)?;
    if wait_subscribers > 0 {
        eprintln!("zerosmq: waiting for {wait_subscribers} subscriber(s) of '{topic}'");
        while node.topic_info(topic)?.subscribers.len() < wait_subscribers {
            if stopped(&stop) {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
    let count = count.unwrap_or(if rate.is_some() { u64::MAX } else { 1 });
    let period = rate.map(|hz| Duration::from_secs_f64(1.0 / hz));
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < count && !stopped(&stop) {
        if let Some(period) = period {
            // Deadline-based, so the rate does not drift with the time publishing takes.
            let due = start + period.mul_f64(sent as f64);
            while !stopped(&stop) {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(POLL));
            }
            if stopped(&stop) {
                break;
            }
        }
        publisher.publish(message.as_bytes())?;
        sent += 1;
    }
    eprintln!("zerosmq: published {sent} message(s) on '{topic}'");
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Stat {
    Rate,
    Bandwidth,
}

/// Arrival times and sizes of the last `window` messages.
struct Window {
    capacity: usize,
    samples: VecDeque<(Instant, usize)>,
}

impl Window {
    fn push(&mut self, at: Instant, bytes: usize) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back((at, bytes));
    }

    /// Intervals between consecutive messages, in seconds.
    fn intervals(&self) -> Vec<f64> {
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| b.0.duration_since(a.0).as_secs_f64())
            .collect()
    }
}

/// One report line of `topic hz`: rate from the mean interval, as rostopic hz does.
fn rate_report(w: &Window) -> Option<String> {
    let iv = w.intervals();
    if iv.is_empty() {
        return None;
    }
    let n = iv.len() as f64;
    let mean = iv.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return None;
    }
    let min = iv.iter().copied().fold(f64::INFINITY, f64::min);
    let max = iv.iter().copied().fold(0.0, f64::max);
    let std = (iv.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    Some(format!(
        "average rate: {:.3} Hz  min: {min:.4} s  max: {max:.4} s  std dev: {std:.5} s  window: {}",
        1.0 / mean,
        w.samples.len()
    ))
}

/// One report line of `topic bw`: payload bytes after the first message over the time they took.
fn bandwidth_report(w: &Window) -> Option<String> {
    let (first, last) = (w.samples.front()?, w.samples.back()?);
    let span = last.0.duration_since(first.0).as_secs_f64();
    if w.samples.len() < 2 || span <= 0.0 {
        return None;
    }
    let bytes: usize = w.samples.iter().skip(1).map(|s| s.1).sum();
    let sizes = w.samples.iter().map(|s| s.1);
    let min = sizes.clone().min().unwrap_or(0);
    let max = sizes.clone().max().unwrap_or(0);
    let mean = sizes.sum::<usize>() as f64 / w.samples.len() as f64;
    Some(format!(
        "average: {}/s  mean: {mean:.1} B  min: {min} B  max: {max} B  window: {}",
        human_bytes(bytes as f64 / span),
        w.samples.len()
    ))
}

fn human_bytes(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.2} KB", b / 1e3)
    } else {
        format!("{b:.1} B")
    }
}

fn watch(cli: &Cli, stat: Stat, args: &WatchArgs) -> CliResult {
    let WatchArgs {
        topic,
        window,
        interval,
        duration,
        wait,
    } = args;
    let (topic, window, interval, duration, wait) =
        (topic.as_str(), *window, *interval, *duration, *wait);
    if window < 2 {
        return Err("the window must hold at least 2 messages".into());
    }
    let stop = stop_flag()?;
    let role = match stat {
        Stat::Rate => "hz",
        Stat::Bandwidth => "bw",
    };
    let mut sub = ready_subscriber(cli, role, topic, wait)?;
    let deadline = duration.map(|d| Instant::now() + d);
    let mut w = Window {
        capacity: window,
        // The window fills as messages come; a huge --window must not allocate up front.
        samples: VecDeque::with_capacity(window.min(4096)),
    };
    let mut next_report = Instant::now() + interval;
    let mut new_since_report = 0u64;
    let report = |w: &Window, new: u64| {
        let line = match stat {
            Stat::Rate => rate_report(w),
            Stat::Bandwidth => bandwidth_report(w),
        };
        match line {
            Some(line) if new > 0 => println!("{line}"),
            _ => println!("no new messages"),
        }
    };
    while !stopped(&stop) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= next_report {
            report(&w, new_since_report);
            new_since_report = 0;
            next_report += interval;
            continue;
        }
        let mut until = next_report;
        if let Some(d) = deadline {
            until = until.min(d);
        }
        let wait = until.saturating_duration_since(now).min(POLL);
        if let Some(msg) = sub.recv_timeout(wait)? {
            let at = Instant::now();
            let bytes = msg.payload().len() + msg.parts().map(<[u8]>::len).sum::<usize>();
            w.push(at, bytes);
            new_since_report += 1;
        }
    }
    // A final report of the whole run's window.
    report(&w, new_since_report.max(1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_statistics() {
        let t0 = Instant::now();
        let mut w = Window {
            capacity: 3,
            samples: VecDeque::new(),
        };
        assert_eq!(rate_report(&w), None);
        for ms in [0, 100, 300, 400] {
            w.push(t0 + Duration::from_millis(ms), 10);
        }
        // Window keeps 100, 300, 400: intervals 0.2 and 0.1.
        let line = rate_report(&w).unwrap();
        assert!(line.starts_with("average rate: 6.667 Hz"), "{line}");
        assert!(line.contains("min: 0.1000 s  max: 0.2000 s"), "{line}");
        assert!(line.contains("std dev: 0.05000 s  window: 3"), "{line}");
        let line = bandwidth_report(&w).unwrap();
        assert!(line.starts_with("average: 66.7 B/s"), "{line}");
    }

    #[test]
    fn hex_has_a_prefix() {
        assert_eq!(hex(&[0, 0xff, 0x10]), "0x00ff10");
    }
}
