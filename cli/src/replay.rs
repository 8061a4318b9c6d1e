//! `zerosmq replay`: publish a recording's messages again, in order, with the recorded intervals
//! divided by `--speed`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use zerosmq_recording::{read_recording, RecordedMessage};

use crate::{cli_node_as, stop_flag, stopped, Cli, CliResult};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The recording (MCAP or the original's text format; told apart by content).
    file: PathBuf,
    /// Speed factor: 2 plays twice as fast, 0.5 half as fast. Must be above 0.
    #[arg(short, long, default_value = "1", value_parser = parse_speed, allow_hyphen_values = true)]
    speed: f64,
    /// Start again from the beginning after the last message, until Ctrl-C.
    #[arg(short = 'l', long = "loop")]
    repeat: bool,
    /// Replay only these topics.
    #[arg(short, long, num_args = 1..)]
    topics: Vec<String>,
    /// Replay the intact messages before the damage of a truncated or corrupt recording.
    #[arg(long)]
    salvage: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let speed: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number (use 1 for real time, 2 for twice as fast)"))?;
    if !speed.is_finite() || speed <= 0.0 {
        return Err(format!(
            "the speed must be above 0, got {s} (0.5 is half speed, 1 real time, 10 ten times faster)"
        ));
    }
    if !(0.001..=1e6).contains(&speed) {
        return Err(format!("the speed must be from 0.001 to 1000000, got {s}"));
    }
    Ok(speed)
}

/// How close to a message's due time the replayer stops sleeping and spins. On an idle machine a
/// sleep ends within about 100 µs of its time, so a short spin makes the publish exact to
/// microseconds. Longer spins do not help on a busy machine: a thread that spins uses up its time
/// slice and is preempted, while a thread that wakes from sleep is scheduled first (measured
/// with 1000 and 2500 µs spins at a load of 3.5 on 2 cores: worse tails than 300 µs).
const SPIN: Duration = Duration::from_micros(300);

/// Timing error statistics: actual publish time minus due time, with a histogram of 10 µs
/// buckets up to 100 ms for percentiles (so `--loop` runs in constant memory).
struct TimingError {
    n: u64,
    sum_ns: f64,
    max: Duration,
    buckets: Vec<u64>,
}

const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 10_000;

impl TimingError {
    fn new() -> Self {
        TimingError {
            n: 0,
            sum_ns: 0.0,
            max: Duration::ZERO,
            buckets: vec![0; BUCKETS + 1],
        }
    }

    fn add(&mut self, late: Duration) {
        self.n += 1;
        self.sum_ns += late.as_nanos() as f64;
        self.max = self.max.max(late);
        let bucket = (late.as_nanos() as u64 / BUCKET_NS).min(BUCKETS as u64) as usize;
        self.buckets[bucket] += 1;
    }

    fn mean_ms(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum_ns / self.n as f64 / 1e6
        }
    }

    /// Upper edge of the bucket holding the `q` quantile, in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        let rank = (self.n as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return ((i as u64 + 1) * BUCKET_NS) as f64 / 1e6;
            }
        }
        self.max.as_secs_f64() * 1e3
    }
}

pub fn run(cli: &Cli, args: &ReplayArgs) -> CliResult {
    let stop = stop_flag()?;
    let recording = read_recording(&args.file)?;
    let file = args.file.display();
    if let Some(damage) = &recording.damage {
        let intact = recording.messages.len();
        if !args.salvage {
            return Err(format!(
                "{file} is damaged: {damage}; nothing was replayed. {intact} message(s) before \
                 the damage are intact: pass --salvage to replay them"
            )
            .into());
        }
        eprintln!("zerosmq: {file} is damaged: {damage}; replaying the {intact} intact message(s) before it");
    }
    let mut messages = recording.messages;
    let in_file: BTreeSet<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
    if let Some(missing) = args.topics.iter().find(|t| !in_file.contains(t.as_str())) {
        let has: Vec<&str> = in_file.into_iter().collect();
        return Err(format!(
            "topic '{missing}' is not in {file} (it has: {})",
            if has.is_empty() {
                "no messages".to_owned()
            } else {
                has.join(", ")
            }
        )
        .into());
    }
    messages = replay_order(messages, &args.topics);
    if messages.is_empty() {
        return Err(format!("{file} holds no messages to replay").into());
    }

    let node = cli_node_as(cli, "replay")?;
    // One publisher per topic, each ready (the master's socket connected) before the first
    // message, so nothing is lost to the slow joiner.
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    let mut publishers: Vec<zerosmq::Publisher> = Vec::new();
    for m in &messages {
        if !index_of.contains_key(m.topic.as_str()) {
            let mut p = node.advertise(&m.topic)?;
            p.wait_ready(cli.timeout)?;
            index_of.insert(&m.topic, publishers.len());
            publishers.push(p);
        }
    }
    let order: Vec<(&RecordedMessage, usize)> = messages
        .iter()
        .map(|m| {
            (
                m,
                index_of.get(m.topic.as_str()).copied().unwrap_or_default(),
            )
        })
        .collect();

    let first = messages[0].time_ns;
    let span = Duration::from_nanos(messages[messages.len() - 1].time_ns - first);
    eprintln!(
        "zerosmq: replaying {} message(s) on {} topic(s) from {file} ({}, {:.3} s recorded) at speed {}",
        messages.len(),
        publishers.len(),
        recording.format.name(),
        span.as_secs_f64(),
        args.speed
    );
    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(messages.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} messages ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };

    let mut error = TimingError::new();
    let mut published = 0u64;
    let started = Instant::now();
    'passes: loop {
        progress.set_position(0);
        let t0 = Instant::now();
        for &(m, index) in &order {
            // `as u64` saturates; a due time past what the clock holds is refused, not a panic.
            let offset = Duration::from_nanos(((m.time_ns - first) as f64 / args.speed) as u64);
            let due = t0.checked_add(offset).ok_or_else(|| {
                format!(
                    "message {} is due {:.0} s after the start at speed {}: too far",
                    published + 1,
                    offset.as_secs_f64(),
                    args.speed
                )
            })?;
            if !wait_until(due, &stop) {
                break 'passes;
            }
            let late = Instant::now().saturating_duration_since(due);
            if m.parts.is_empty() {
                publishers[index].publish(&m.payload)?;
            } else {
                let parts: Vec<&[u8]> = m.parts.iter().map(Vec::as_slice).collect();
                publishers[index].publish_parts(&m.payload, &parts)?;
            }
            error.add(late);
            published += 1;
            progress.inc(1);
        }
        if !args.repeat || stopped(&stop) {
            break;
        }
    }
    progress.finish_and_clear();
    eprintln!(
        "zerosmq: replayed {published} message(s) in {:.3} s; timing error against the recording: mean {:.3} ms, median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.3} ms",
        started.elapsed().as_secs_f64(),
        error.mean_ms(),
        error.quantile_ms(0.5),
        error.quantile_ms(0.9),
        error.quantile_ms(0.99),
        error.max.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The messages to publish, in the order to publish them: those of `topics` (all when empty), by
/// time, and in file order among equal times (a stable sort). A recorder's file is in arrival
/// order, which can differ from time order by a scheduler stall between its receiving threads.
fn replay_order(mut messages: Vec<RecordedMessage>, topics: &[String]) -> Vec<RecordedMessage> {
    if !topics.is_empty() {
        messages.retain(|m| topics.contains(&m.topic));
    }
    messages.sort_by_key(|m| m.time_ns);
    messages
}

/// Sleeps until shortly before `due`, then spins to it. False when stopped by a signal.
fn wait_until(due: Instant, stop: &std::sync::atomic::AtomicBool) -> bool {
    loop {
        if stopped(stop) {
            return false;
        }
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let spin = std::env::var("SPIN_US")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_micros)
            .unwrap_or(SPIN);
        if left > spin {
            std::thread::sleep((left - spin).min(crate::topic::POLL));
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(time_ns: u64, topic: &str, payload: &str) -> RecordedMessage {
        RecordedMessage {
            time_ns,
            topic: topic.into(),
            payload: payload.into(),
            parts: Vec::new(),
        }
    }

    #[test]
    fn order_is_by_time_then_file_order_across_topics() {
        let file = vec![
            m(10, "a", "1"),
            m(10, "b", "2"),
            m(30, "a", "4"),
            m(20, "b", "3"),
            m(30, "b", "5"),
            m(30, "a", "6"),
        ];
        let order: Vec<String> = replay_order(file.clone(), &[])
            .iter()
            .map(|m| format!("{}{}", m.topic, String::from_utf8_lossy(&m.payload)))
            .collect();
        assert_eq!(order, ["a1", "b2", "b3", "a4", "b5", "a6"]);
        let only_b: Vec<u64> = replay_order(file, &["b".into()])
            .iter()
            .map(|m| m.time_ns)
            .collect();
        assert_eq!(only_b, [10, 20, 30]);
    }

    #[test]
    fn speed_refuses_zero_negative_and_nonsense() {
        assert_eq!(parse_speed("0.1"), Ok(0.1));
        assert_eq!(parse_speed("100"), Ok(100.0));
        for bad in ["0", "-1", "-0.0", "inf", "NaN", "fast", "", "1e-9", "1e9"] {
            assert!(parse_speed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lateness_quantiles() {
        let mut e = TimingError::new();
        for us in [5, 5, 5, 5, 5, 5, 5, 5, 5, 2_000] {
            e.add(Duration::from_micros(us));
        }
        assert_eq!(e.quantile_ms(0.5), 0.01);
        assert_eq!(e.quantile_ms(0.9), 0.01);
        assert_eq!(e.quantile_ms(0.99), 2.01);
        assert_eq!(e.max, Duration::from_millis(2));
    }
}
