//! `zerosmq graph`: fetch the DOT from the master, print it, render it with Graphviz.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::Instant;

use crate::topic::POLL;
use crate::{cli_node, parse_seconds, stop_flag, stopped, Cli};

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Write a picture; the format comes from the extension (svg, png, pdf, ...).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Do not print the DOT source.
    #[arg(short, long)]
    quiet: bool,
    /// Keep watching: print the DOT (and rewrite the picture) again whenever the graph changes,
    /// until Ctrl-C.
    #[arg(short, long)]
    watch: bool,
    /// With --watch: seconds between looks at the graph.
    #[arg(long, default_value = "0.5", value_parser = parse_seconds)]
    interval: std::time::Duration,
}

pub fn run(cli: &Cli, args: &GraphArgs) -> Result<(), Box<dyn std::error::Error>> {
    let node = cli_node(cli)?;
    let mut dot = node.graph()?;
    show(&dot, args)?;
    if !args.watch {
        return Ok(());
    }
    let stop = stop_flag()?;
    let mut master_lost = false;
    // The master has no change notification, so poll: one small request per interval.
    while !stopped(&stop) {
        let due = Instant::now() + args.interval;
        while !stopped(&stop) && Instant::now() < due {
            std::thread::sleep(due.saturating_duration_since(Instant::now()).min(POLL));
        }
        if stopped(&stop) {
            break;
        }
        // A master that stops answering (restarting, say) is waited for, not an error.
        let now = match node.graph() {
            Ok(now) => now,
            Err(e) => {
                if !master_lost {
                    eprintln!("zerosmq: {e}; still watching");
                    master_lost = true;
                }
                continue;
            }
        };
        if std::mem::take(&mut master_lost) {
            eprintln!("zerosmq: the master answers again");
        }
        if now != dot {
            dot = now;
            show(&dot, args)?;
        }
    }
    Ok(())
}

/// Prints the DOT (a blank line after it separates versions when watching) and renders it.
fn show(dot: &str, args: &GraphArgs) -> Result<(), Box<dyn std::error::Error>> {
    if !args.quiet {
        let mut out = std::io::stdout().lock();
        write!(out, "{dot}")?;
        if args.watch {
            writeln!(out)?;
        }
        out.flush()?;
    }
    if let Some(path) = &args.output {
        render(dot, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Renders with Graphviz's `dot`, which the README's set-up installs.
pub fn render(dot: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let format = path
        .extension()
        .and_then(|e| e.to_str())
        .ok_or("the output file needs an extension that names the format (.svg, .png)")?;
    let mut child = Command::new("dot")
        .arg(format!("-T{format}"))
        .arg("-o")
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run Graphviz 'dot' ({e}); install it: apt-get install graphviz")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}
