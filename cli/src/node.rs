//! `zerosmq node list|info`.

use crate::{cli_node, Cli, CliResult};

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// List nodes that publish or subscribe something, one a line.
    List,
    /// What a node publishes and subscribes.
    Info {
        /// The node's name.
        node: String,
    },
}

pub fn run(cli: &Cli, cmd: &NodeCommand) -> CliResult {
    let node = cli_node(cli)?;
    match cmd {
        NodeCommand::List => {
            for name in node.nodes()? {
                println!("{name}");
            }
        }
        NodeCommand::Info { node: name } => {
            let info = match node.node_info(name) {
                Err(zerosmq::Error::Refused {
                    code: zerosmq::ErrorCode::UnknownNode,
                    ..
                }) => {
                    let known = node.nodes().unwrap_or_default().join(", ");
                    return Err(format!("unknown node '{name}' (nodes: {known})").into());
                }
                other => other?,
            };
            println!("Node: {}", info.node);
            print_list("Publications", &info.publishes);
            print_list("Subscriptions", &info.subscribes);
        }
    }
    Ok(())
}

fn print_list(title: &str, items: &[String]) {
    if items.is_empty() {
        println!("{title}: none");
        return;
    }
    println!("{title}:");
    for item in items {
        println!(" * {item}");
    }
}
