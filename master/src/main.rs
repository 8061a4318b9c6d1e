//! `zerosmq-master`: the master as a command.

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use tracing_subscriber::EnvFilter;
use zerosmq_master::{Master, MasterConfig};

/// The zerosmq master: brokers one socket pair per topic and forwards every message.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to bind the control and data sockets to. The default exposes the master on every
    /// interface, as the original; use 127.0.0.1 to keep it to this host.
    #[arg(long, default_value = "0.0.0.0")]
    bind: String,
    /// Control port (0 picks a free one and logs it).
    #[arg(long, default_value_t = zerosmq_core::limits::DEFAULT_CONTROL_PORT)]
    port: u16,
    /// Port range for per-topic sockets, e.g. 40000-40999 (default: any free port).
    #[arg(long, value_name = "LOW-HIGH", value_parser = parse_range)]
    data_ports: Option<(u16, u16)>,
    /// High-water mark per connection, in messages: a subscriber this far behind misses new
    /// messages (0: no limit).
    #[arg(long, default_value_t = MasterConfig::default().hwm)]
    hwm: u32,
    /// Seconds of silence after which a node that sends heartbeats is dropped.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    node_timeout: std::time::Duration,
    /// Keep topics, their ports and node roles in this file, so that a restarted master rebinds
    /// the same ports and nodes reconnect on their own.
    #[arg(long, value_name = "FILE")]
    state: Option<std::path::PathBuf>,
    /// Largest message in bytes a peer may send on a topic (a peer sending more is disconnected).
    #[arg(long, default_value_t = MasterConfig::default().max_message_size)]
    max_message_size: usize,
    /// Most nodes registered at once.
    #[arg(long, default_value_t = MasterConfig::default().max_nodes)]
    max_nodes: usize,
    /// Most publish and subscribe grants one node may hold (a request past it is refused with
    /// `limit-reached`).
    #[arg(long, default_value_t = MasterConfig::default().max_grants_per_node)]
    max_grants_per_node: usize,
    /// PLAIN passwords file (`user:password` lines): every socket then requires authentication.
    #[arg(long, value_name = "FILE")]
    passwords: Option<std::path::PathBuf>,
    /// Access list (mosquitto-style `user NAME` / `topic read|write|readwrite PATTERN`).
    #[arg(long, value_name = "FILE")]
    acl: Option<std::path::PathBuf>,
    /// CURVE key file (public key, then secret key, Z85, one per line): encrypt every topic
    /// port; clients must know the public key.
    #[arg(long, value_name = "FILE")]
    curve_keys: Option<std::path::PathBuf>,
    /// Directory of admitted CURVE client keys (`NAME.pub`, one Z85 public key each); the ACL
    /// names such a client NAME. Without it any client that knows the master's key connects.
    #[arg(long, value_name = "DIR", requires = "curve_keys")]
    curve_clients: Option<std::path::PathBuf>,
    /// Write a new CURVE key pair to FILE (mode 0600, not overwritten), print its public key
    /// (for clients) and exit.
    #[arg(long, value_name = "FILE")]
    curve_keygen: Option<std::path::PathBuf>,
    /// Seconds between ZMTP PINGs on every connection (a connection silent for three of them
    /// after a PING is closed: half-open TCP).
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    zmtp_heartbeat: std::time::Duration,
    /// Removed: the master has one forwarding engine. `native` is still accepted, so scripts
    /// that passed it keep working; `libzmq` is refused.
    #[arg(long, env = "ZEROSMQ_ENGINE", hide = true, value_parser = parse_engine)]
    engine: Option<String>,
    /// Microseconds the master polls before it sleeps while messages arrive
    /// less than this apart (lower round-trip latency for some CPU under dense traffic; sparse
    /// traffic and an idle master never spin). 0: never spin.
    #[arg(long, default_value = "50", value_name = "MICROSECONDS")]
    spin_us: u64,
    /// Most topics served at once.
    #[arg(long, default_value_t = MasterConfig::default().max_topics)]
    max_topics: usize,
    /// Most data connections at once over all topics (also kept below the descriptor limit);
    /// one past it is closed at once.
    #[arg(long, default_value_t = MasterConfig::default().max_connections)]
    max_connections: usize,
    /// Most data connections on one topic.
    #[arg(long, default_value_t = MasterConfig::default().max_topic_connections)]
    max_topic_connections: usize,
    /// Most subscriptions one subscriber connection may hold (a peer sending more is dropped).
    #[arg(long, default_value_t = MasterConfig::default().max_subscriptions)]
    max_subscriptions: usize,
    /// Seconds after which a silent ZMTP 3.0 publisher connection, or a subscriber connection
    /// without a subscription, is closed.
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    idle_timeout: std::time::Duration,
    /// Serve the Foxglove WebSocket protocol on HOST:PORT (e.g. 127.0.0.1:8765; port 0 picks a
    /// free one and logs it): Foxglove or Lichtblick then shows every topic live. Off by default.
    #[arg(long, value_name = "HOST:PORT")]
    foxglove: Option<std::net::SocketAddr>,
    /// Let Foxglove clients publish (as the node `foxglove`, so the ACL applies to it).
    #[arg(long, requires = "foxglove")]
    foxglove_publish: bool,
    /// Serve a web page (topic graph, topic table, a live plot) and Prometheus `/metrics` over
    /// HTTP on HOST:PORT (e.g. 127.0.0.1:8080; port 0 picks a free one and logs it). Off by
    /// default.
    #[arg(long, value_name = "HOST:PORT")]
    web: Option<std::net::SocketAddr>,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (low, high) = s
        .split_once('-')
        .ok_or("expected LOW-HIGH, e.g. 40000-40999")?;
    let low: u16 = low.trim().parse().map_err(|e| format!("low port: {e}"))?;
    let high: u16 = high.trim().parse().map_err(|e| format!("high port: {e}"))?;
    if low == 0 || low > high {
        return Err(format!("{low}-{high} is not a port range"));
    }
    Ok((low, high))
}

fn parse_engine(s: &str) -> Result<String, String> {
    match s {
        "native" => Ok(s.to_owned()),
        "libzmq" => Err(
            "the libzmq engine was removed (the master has one engine); leave \
                         --engine and ZEROSMQ_ENGINE out"
                .into(),
        ),
        other => Err(format!(
            "unknown engine '{other}': the master has one engine; leave --engine out"
        )),
    }
}

fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    match std::time::Duration::try_from_secs_f64(secs) {
        Ok(d) if d >= std::time::Duration::from_millis(100) => Ok(d),
        _ => Err(format!("{s} is not a duration of at least 0.1 seconds")),
    }
}

fn curve_keygen(path: &std::path::Path) -> std::process::ExitCode {
    match zerosmq_master::keys::generate(path) {
        Ok(public) => {
            println!("{public}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if let Some(path) = &args.curve_keygen {
        return curve_keygen(path);
    }
    if args.engine.is_some() {
        tracing::info!("--engine native: the master's only engine; the flag is no longer needed");
    }
    let config = MasterConfig {
        bind: args.bind,
        port: args.port,
        data_ports: args.data_ports,
        hwm: args.hwm,
        max_topics: args.max_topics,
        node_timeout: args.node_timeout,
        state_file: args.state,
        max_message_size: args.max_message_size,
        max_nodes: args.max_nodes,
        max_grants_per_node: args.max_grants_per_node,
        passwords: args.passwords,
        acl: args.acl,
        curve_keys: args.curve_keys,
        curve_clients: args.curve_clients,
        // The endpoints below join this master as nodes of these names.
        internal_nodes: [
            ("foxglove", args.foxglove.is_some()),
            ("web", args.web.is_some()),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| name.to_owned())
        .collect(),
        zmtp_heartbeat: args.zmtp_heartbeat,
        spin: std::time::Duration::from_micros(args.spin_us),
        max_connections: args.max_connections,
        max_topic_connections: args.max_topic_connections,
        max_subscriptions: args.max_subscriptions,
        idle_timeout: args.idle_timeout,
    };
    // Before the master starts: a signal that comes as soon as it listens is not lost.
    let signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]);
    let master = match Master::spawn(config) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // --- Foxglove endpoint: a node of this master, started once the control service is up ---
    let foxglove = match args.foxglove.map(|addr| {
        let mut config = zerosmq_foxglove::FoxgloveConfig::new(
            addr.ip().to_string(),
            addr.port(),
            master.control_endpoint(),
        );
        config.allow_publish = args.foxglove_publish;
        config.node = with_credentials(config.node, master.internal_credentials("foxglove"));
        zerosmq_foxglove::FoxgloveEndpoint::start(config)
    }) {
        Some(Err(e)) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
        Some(Ok(endpoint)) => Some(endpoint),
        None => None,
    };
    // --- end Foxglove endpoint ---
    // --- web page and metrics: a node of this master, with the master's own counters ---
    let web = match args.web.map(|addr| {
        let metrics = master.metrics();
        let counters: zerosmq_web::MasterCounters = Box::new(move || {
            let m = metrics.snapshot();
            zerosmq_web::ServerCounters {
                uptime: m.uptime,
                mechanism: m.mechanism.to_owned(),
                data_connections: m.data_connections as u64,
                control_requests: m
                    .control_requests
                    .iter()
                    .map(|(k, n)| ((*k).to_owned(), *n))
                    .collect(),
                control_errors: m
                    .control_errors
                    .iter()
                    .map(|(k, n)| ((*k).to_owned(), *n))
                    .collect(),
            }
        });
        let mut config = zerosmq_web::WebConfig::new(addr, master.control_endpoint());
        config.node = with_credentials(config.node, master.internal_credentials("web"));
        zerosmq_web::WebServer::start(config, Some(counters))
    }) {
        Some(Err(e)) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
        Some(Ok(server)) => Some(server),
        None => None,
    };
    // Stopped by the signal thread before the master, so that it leaves while the master answers.
    let web = std::sync::Arc::new(std::sync::Mutex::new(web));
    // --- end web page and metrics ---
    match (master.stopper(), signals) {
        (Ok(stopper), Ok(mut signals)) => {
            let web = web.clone();
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!(signal = sig, "signal received");
                    drop(web.lock().map(|mut w| w.take()));
                    stopper.stop();
                }
            });
        }
        (Err(e), _) => tracing::warn!("no signal handling: {e}"),
        (_, Err(e)) => tracing::warn!("no signal handling: {e}"),
    }
    let result = master.wait();
    drop(web.lock().map(|mut w| w.take()));
    drop(foxglove);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `node` with the credentials the master made for it (none on a master without PLAIN or CURVE).
fn with_credentials(
    node: zerosmq::NodeBuilder,
    credentials: Option<&zerosmq_master::auth::InternalCredentials>,
) -> zerosmq::NodeBuilder {
    use zerosmq_master::auth::InternalCredentials;
    match credentials {
        None => node,
        Some(InternalCredentials::Plain { user, password }) => node.plain(user, password),
        Some(InternalCredentials::Curve {
            server_public,
            keys,
        }) => node.curve(server_public, Some(keys.clone())),
    }
}
