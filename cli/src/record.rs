//! `zerosmq record`: subscribe to topics (all of them, including ones that appear later, when none
//! is named) and write every message with its receipt time to a recording.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zerosmq_recording::{RecordingError, RecordingFormat, RecordingWriter, WriterOptions};

use crate::topic::POLL;
use crate::{cli_node_as, parse_seconds, stop_flag, stopped, Cli, CliResult};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// MCAP: lossless, precise timestamps; Foxglove and ROS 2 read it.
    Mcap,
    /// The original's `milliseconds,topic,message` lines.
    Text,
}

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Topics to record; none: every topic, including topics that appear while recording.
    topics: Vec<String>,
    /// The recording's file (default: zerosmq-UNIXSECONDS.mcap).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// File format (default: from the extension: .txt, .csv, .log are text, anything else MCAP).
    #[arg(short, long, value_enum)]
    format: Option<FormatArg>,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(short, long, value_parser = parse_seconds)]
    duration: Option<Duration>,
    /// Stop after this many messages in all (received, including any the format cannot hold).
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// How often to look for new topics when recording all of them, in seconds.
    #[arg(long, default_value = "0.2", value_parser = parse_seconds)]
    poll_interval: Duration,
    /// MCAP: do not compress chunks.
    #[arg(long)]
    no_compress: bool,
}

/// The recording clock: wall time at the start, advanced by the monotonic clock, in nanoseconds
/// since the UNIX epoch. Monotonic, so intervals are exact even if the wall clock is adjusted.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    start_ns: u64,
}

impl Clock {
    fn new() -> Self {
        let start_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Clock {
            start: Instant::now(),
            start_ns,
        }
    }

    fn ns(&self, at: Instant) -> u64 {
        self.start_ns + at.duration_since(self.start).as_nanos() as u64
    }
}

struct Received {
    time_ns: u64,
    topic: Arc<str>,
    payload: Vec<u8>,
    /// Frames after the first of a multipart message.
    parts: Vec<Vec<u8>>,
}

impl Received {
    fn write(&self, writer: &mut RecordingWriter) -> Result<bool, RecordingError> {
        let parts: Vec<&[u8]> = self.parts.iter().map(Vec::as_slice).collect();
        writer.write_parts(self.time_ns, &self.topic, &self.payload, &parts)
    }
}

pub fn run(cli: &Cli, args: &RecordArgs) -> CliResult {
    let stop = stop_flag()?;
    let clock = Clock::new();
    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!("zerosmq-{}.mcap", clock.start_ns / 1_000_000_000))
    });
    let format = match args.format {
        Some(FormatArg::Mcap) => RecordingFormat::Mcap,
        Some(FormatArg::Text) => RecordingFormat::Text,
        None => RecordingFormat::from_path(&output),
    };
    for topic in &args.topics {
        zerosmq_core::Topic::new(topic).map_err(|e| format!("cannot record '{topic}': {e}"))?;
    }
    let node = cli_node_as(cli, "record")?;
    // Ask the master before creating the file, so a dead master leaves no empty file behind.
    let mut pending: BTreeSet<String> = if args.topics.is_empty() {
        node.topics()?.into_iter().collect()
    } else {
        args.topics.iter().cloned().collect()
    };
    let options = WriterOptions {
        compress: !args.no_compress,
        ..WriterOptions::default()
    };
    let mut writer = RecordingWriter::create(&output, format, clock.start_ns, &options)?;
    eprintln!(
        "zerosmq: recording to {} ({})",
        output.display(),
        format.name()
    );

    let (tx, rx) = mpsc::channel::<Received>();
    let done = Arc::new(AtomicBool::new(false));
    let mut recorded: BTreeSet<String> = BTreeSet::new();
    let mut threads: Vec<JoinHandle<zerosmq::Result<()>>> = Vec::new();
    let deadline = args.duration.map(|d| clock.start + d);
    let mut next_poll = Instant::now();
    let mut failure: Option<Box<dyn std::error::Error>> = None;
    let mut master_lost = false;

    'recording: loop {
        if stopped(&stop)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || args.count.is_some_and(|n| writer.offered() >= n)
        {
            break;
        }
        // New topics: subscribe, wait until the path is live, then hand the subscriber to a
        // thread of its own that stamps each message as it arrives.
        for topic in std::mem::take(&mut pending) {
            if recorded.contains(&topic) {
                continue;
            }
            let mut sub = match node.subscribe(&topic) {
                Ok(s) => s,
                Err(e) => {
                    failure = Some(format!("cannot subscribe to '{topic}': {e}").into());
                    break 'recording;
                }
            };
            if let Err(e) = sub.wait_ready(cli.timeout) {
                failure = Some(e.into());
                break 'recording;
            }
            eprintln!("zerosmq: recording '{topic}'");
            // A typed topic is recorded as JSON with its schema, which Foxglove decodes.
            match node.topic_schema(&topic) {
                Ok(Some(schema)) => {
                    let name = schema.name.clone();
                    match writer.set_schema(&topic, schema) {
                        Ok(()) => eprintln!("zerosmq: '{topic}' is typed ({name}): stored as JSON"),
                        Err(e) => eprintln!("zerosmq: '{topic}': {e}; stored raw"),
                    }
                }
                Ok(None) => {}
                Err(e) => eprintln!("zerosmq: cannot ask for the schema of '{topic}': {e}"),
            }
            recorded.insert(topic.clone());
            threads.push(spawn_receiver(
                sub,
                topic.into(),
                clock,
                tx.clone(),
                done.clone(),
            ));
        }
        if args.topics.is_empty() && Instant::now() >= next_poll {
            match node.topics() {
                Ok(topics) => {
                    if std::mem::take(&mut master_lost) {
                        eprintln!("zerosmq: the master answers again");
                    }
                    pending.extend(topics.into_iter().filter(|t| !recorded.contains(t)));
                }
                // The subscriptions made so far keep recording (they reconnect when a restarted
                // master hands out the topic again); new topics wait for the master.
                Err(e) if !master_lost => {
                    eprintln!("zerosmq: {e}; still recording the topics subscribed so far");
                    master_lost = true;
                }
                Err(_) => {}
            }
            next_poll = Instant::now() + args.poll_interval;
        }
        if !pending.is_empty() {
            continue;
        }
        let mut wait = POLL.min(next_poll.saturating_duration_since(Instant::now()));
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(Instant::now()));
        }
        match rx.recv_timeout(wait) {
            Ok(m) => {
                if let Err(e) = m.write(&mut writer) {
                    failure = Some(e.into());
                    break;
                }
                // Write whatever else is queued before looking at the clock again.
                while let Ok(m) = rx.try_recv() {
                    if args.count.is_some_and(|n| writer.offered() >= n) {
                        break;
                    }
                    if let Err(e) = m.write(&mut writer) {
                        failure = Some(e.into());
                        break 'recording;
                    }
                }
            }
            // The main thread holds a sender, so only a timeout comes here.
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
        }
    }

    done.store(true, Ordering::Relaxed);
    drop(tx);
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("zerosmq: a receiver failed: {e}"),
            Err(_) => eprintln!("zerosmq: a receiver thread panicked"),
        }
    }
    // Messages that arrived before the stop are kept, up to --count.
    for m in rx.try_iter() {
        if args.count.is_some_and(|n| writer.offered() >= n) {
            break;
        }
        m.write(&mut writer)?;
    }
    let summary = writer.finish()?;
    eprintln!(
        "zerosmq: recorded {} message(s) on {} topic(s) to {}",
        summary.messages,
        summary.per_topic.len(),
        output.display()
    );
    for (topic, n) in &summary.per_topic {
        eprintln!("  {topic}: {n}");
    }
    if summary.skipped > 0 {
        eprintln!(
            "zerosmq: {} message(s) not written: the text format cannot hold line breaks, \
             bytes that are not UTF-8 or multipart messages (record to .mcap to keep them)",
            summary.skipped
        );
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn spawn_receiver(
    mut sub: zerosmq::Subscriber,
    topic: Arc<str>,
    clock: Clock,
    tx: mpsc::Sender<Received>,
    done: Arc<AtomicBool>,
) -> JoinHandle<zerosmq::Result<()>> {
    std::thread::spawn(move || {
        let send = |msg: zerosmq::Message| {
            let received = Received {
                time_ns: clock.ns(Instant::now()),
                topic: topic.clone(),
                payload: msg.payload().to_vec(),
                parts: msg.parts().map(<[u8]>::to_vec).collect(),
            };
            tx.send(received).is_ok()
        };
        while !done.load(Ordering::Relaxed) {
            if let Some(msg) = sub.recv_timeout(POLL)? {
                if !send(msg) {
                    return sub.stop();
                }
            }
        }
        // What already arrived when the recording stopped is kept.
        while let Some(msg) = sub.try_recv()? {
            if !send(msg) {
                break;
            }
        }
        sub.stop()
    })
}
