//! `zerosmq graph`: fetch the DOT from the master, print it, render it with Graphviz.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{cli_node, Cli};

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Write a picture; the format comes from the extension (svg, png, pdf, ...).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Do not print the DOT source.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(cli: &Cli, args: &GraphArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dot = cli_node(cli)?.graph()?;
    if !args.quiet {
        print!("{dot}");
    }
    if let Some(path) = &args.output {
        render(&dot, path)?;
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
