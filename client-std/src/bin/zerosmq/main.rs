//! `zerosmq`: the command-line tool for a running zerosmq system.

mod graph;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// See and drive a running zerosmq system.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Master address (tcp://HOST:PORT).
    #[arg(long, global = true, env = zerosmq::MASTER_ENV, default_value = zerosmq::DEFAULT_MASTER)]
    master: String,
    /// Seconds to wait for the master before giving up.
    #[arg(long, global = true, default_value_t = 3.0)]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the topic graph as Graphviz DOT and optionally render it to a picture.
    Graph(graph::GraphArgs),
}

/// A node for the CLI's own requests; listing does not register it with the master.
fn cli_node(cli: &Cli) -> zerosmq::Result<zerosmq::Node> {
    let timeout =
        std::time::Duration::try_from_secs_f64(cli.timeout).unwrap_or(zerosmq::DEFAULT_TIMEOUT);
    zerosmq::Node::builder(&format!("zerosmq-cli-{}", std::process::id()))
        .master(&cli.master)
        .timeout(timeout)
        .connect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Graph(args) => graph::run(&cli, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zerosmq: {e}");
            ExitCode::FAILURE
        }
    }
}
