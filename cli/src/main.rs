//! `zerosmq`: the command-line tool for a running zerosmq system.
#![forbid(unsafe_code)]

mod graph;
mod node;
mod plot;
mod record;
mod replay;
mod topic;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// See and drive a running zerosmq system.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Master address (tcp://HOST:PORT).
    #[arg(long, global = true, env = zerosmq::MASTER_ENV, default_value = zerosmq::DEFAULT_MASTER)]
    master: String,
    /// Seconds to wait for the master (and for a topic's path to be ready) before giving up.
    #[arg(long, global = true, default_value = "3", value_parser = parse_seconds)]
    timeout: Duration,
    /// The master's CURVE public key (Z85, the first line of its key file): encrypt and
    /// authenticate every connection with CURVE, for a master started with --curve-keys.
    #[arg(long, global = true, env = zerosmq::CURVE_SERVER_KEY_ENV, hide_env_values = true)]
    curve_server_key: Option<String>,
    /// This node's CURVE key file (public key, then secret key, Z85, as `zerosmq-master
    /// --curve-keygen` writes it), for a master with --curve-clients; without it the CLI makes
    /// an ephemeral key pair.
    #[arg(long, global = true, env = zerosmq::CURVE_KEYS_ENV, requires = "curve_server_key")]
    curve_keys: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Topics: list, info, echo, pub, hz, bw.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Nodes: list, info.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Print the topic graph as Graphviz DOT and optionally render it to a picture.
    Graph(graph::GraphArgs),
    /// Record topics to a file (MCAP, or the original's text format).
    Record(record::RecordArgs),
    /// Replay a recording (MCAP or text) with its original timing.
    Replay(replay::ReplayArgs),
    /// Plot numeric topics live in the terminal, or save a PNG.
    Plot(plot::PlotArgs),
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// A node for the CLI's requests, named `zerosmq-ROLE-PID` (like rostopic's `/rostopic_PID`), so
/// what the CLI subscribes or publishes is easy to spot in the graph. Listing registers nothing.
fn cli_node_as(cli: &Cli, role: &str) -> zerosmq::Result<zerosmq::Node> {
    let mut builder = zerosmq::Node::builder(&format!("zerosmq-{role}-{}", std::process::id()))
        .master(&cli.master)
        .timeout(cli.timeout);
    if let Some(server) = &cli.curve_server_key {
        let keys = cli
            .curve_keys
            .as_ref()
            .map(zerosmq::curve::load_keys)
            .transpose()?;
        builder = builder.curve(server, keys);
    }
    builder.connect()
}

fn cli_node(cli: &Cli) -> zerosmq::Result<zerosmq::Node> {
    cli_node_as(cli, "cli")
}

/// The longest time any option takes: a year. Longer would overflow deadlines (`Instant + d`).
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Seconds as a decimal number, above 0 and at most a year.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("'{s}': the number of seconds must be above 0"));
    }
    if secs > MAX_SECONDS {
        return Err(format!("'{s}': at most a year ({MAX_SECONDS} seconds)"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("'{s}': {e}"))
}

/// A rate in Hz: at least one message a year, at most a million a second.
fn parse_rate(s: &str) -> Result<f64, String> {
    let hz: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a rate in Hz"))?;
    if !hz.is_finite() || hz <= 0.0 {
        return Err(format!("'{s}': the rate must be above 0 Hz"));
    }
    if !(1.0 / MAX_SECONDS..=1e6).contains(&hz) {
        return Err(format!(
            "'{s}': the rate must be at most 1000000 Hz and at least one message a year"
        ));
    }
    Ok(hz)
}

/// Set by Ctrl-C (SIGINT) or SIGTERM; long-running commands poll it and stop cleanly (a
/// recording gets its footer, a plot restores the terminal).
fn stop_flag() -> Result<Arc<AtomicBool>, std::io::Error> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}

fn stopped(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// Fails with a clear message when the master knows nothing of `topic` (no publisher, no
/// subscriber), unless `wait` asks to go on and wait for it.
///
/// The check and the list of known topics are two requests: a publisher that registers between
/// them (one started right before the CLI) makes the first say "unknown" and the second list the
/// topic. The list is the later answer, so it decides (see [`unknown_topic_verdict`]).
fn require_topic(node: &zerosmq::Node, topic: &str, wait: bool) -> CliResult {
    match node.topic_info(topic) {
        Ok(_) => Ok(()),
        Err(zerosmq::Error::Refused {
            code: zerosmq::ErrorCode::UnknownTopic,
            ..
        }) => {
            if wait {
                eprintln!("topic '{topic}' is not known to the master yet; waiting for it");
                return Ok(());
            }
            let known = node.topics().unwrap_or_default();
            unknown_topic_verdict(topic, &known).map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}

/// After the master said `topic` is unknown: `Ok` when its later list of topics has it (it
/// appeared in between), else the error that lists what is known.
fn unknown_topic_verdict(topic: &str, known: &[String]) -> Result<(), String> {
    if known.iter().any(|t| t == topic) {
        return Ok(());
    }
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    Err(format!(
        "unknown topic '{topic}' (topics with a publisher: {known}); \
         pass --wait to wait for it to appear"
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Topic(cmd) => topic::run(&cli, cmd),
        Command::Node(cmd) => node::run(&cli, cmd),
        Command::Graph(args) => graph::run(&cli, args),
        Command::Record(args) => record::run(&cli, args),
        Command::Replay(args) => replay::run(&cli, args),
        Command::Plot(args) => plot::run(&cli, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `zerosmq topic echo t | head -3`: the reader left, which ends the command normally.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zerosmq: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_rates_refuse_nonsense() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["0", "-1", "x", "inf", "NaN", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rate("100"), Ok(100.0));
        assert!(parse_seconds("1e19").is_err());
        assert!(parse_rate("1e-300").is_err());
        assert!(parse_rate("1e7").is_err());
    }

    #[test]
    fn a_topic_listed_after_unknown_is_known() {
        let known = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(unknown_topic_verdict("T", &known(&["a", "T"])), Ok(()));
        let e = unknown_topic_verdict("T", &known(&["a", "T2"])).unwrap_err();
        assert!(
            e.starts_with("unknown topic 'T' (topics with a publisher: a, T2)"),
            "{e}"
        );
        let e = unknown_topic_verdict("T", &[]).unwrap_err();
        assert!(e.contains("topics with a publisher: none"), "{e}");
    }
}
