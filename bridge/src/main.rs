//! `zerosmq-bridge`: one master, one engine (MQTT or Zenoh).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tracing::{error, info, warn};
use zerosmq_bridge::mqtt::{self, Mqtt, MqttConfig};
use zerosmq_bridge::zenoh_engine::{Zenoh, ZenohConfig};
use zerosmq_bridge::{Bridge, Engine, Glob, Options};

/// How long an exit waits for the engine to finish what it took.
const EXIT_DRAIN: Duration = Duration::from_secs(2);

/// Bridges zerosmq topics into MQTT or Zenoh and back.
#[derive(Parser, Debug)]
#[command(name = "zerosmq-bridge", version)]
struct Args {
    /// The master (tcp://HOST:PORT); default ZEROSMQ_MASTER or tcp://127.0.0.1:5555.
    #[arg(long)]
    master: Option<String>,
    /// Node name in the master's graph (default bridge:mqtt or bridge:zenoh).
    #[arg(long)]
    name: Option<String>,
    /// Engine keys are PREFIX/TOPIC.
    #[arg(long, default_value = "zerosmq")]
    prefix: String,
    /// Master topics sent to the engine (glob: * within a level, ** across levels); repeatable.
    #[arg(long = "out", value_name = "PATTERN")]
    out: Vec<String>,
    /// Engine keys (the part after PREFIX/) published into the master; repeatable.
    #[arg(long = "in", value_name = "PATTERN")]
    inn: Vec<String>,
    /// How often the master's topic list is read for new --out topics, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// Largest payload taken from the engine, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_payload: usize,
    /// Most distinct topics brought in from the engine; new keys past it are refused.
    #[arg(long, default_value_t = 256)]
    max_topics: usize,
    /// Bridge id, the origin mark of its messages in the engine (default: random).
    #[arg(long)]
    id: Option<String>,
    /// Print the counters every SECS seconds when they changed (0: only on link changes and exit).
    #[arg(long, default_value_t = 10)]
    stats_secs: u64,

    /// The master's CURVE public key (Z85, the first line of its key file): encrypt and
    /// authenticate every master connection with CURVE, for a master started with --curve-keys.
    #[arg(long, env = zerosmq::CURVE_SERVER_KEY_ENV, hide_env_values = true, value_name = "KEY")]
    curve_server_key: Option<String>,
    /// The bridge's CURVE key file (public key, then secret key, Z85, as `zerosmq-master
    /// --curve-keygen` writes it), for a master with --curve-clients; without it the bridge makes
    /// an ephemeral key pair.
    #[arg(long, env = zerosmq::CURVE_KEYS_ENV, requires = "curve_server_key", value_name = "FILE")]
    curve_keys: Option<std::path::PathBuf>,
    /// PLAIN user name towards a master started with --passwords.
    #[arg(long, env = "ZEROSMQ_PLAIN_USER", conflicts_with = "curve_server_key")]
    plain_user: Option<String>,
    /// PLAIN password (better: the environment variable).
    #[arg(
        long,
        env = "ZEROSMQ_PLAIN_PASSWORD",
        hide_env_values = true,
        requires = "plain_user"
    )]
    plain_password: Option<String>,

    /// MQTT broker: mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS.
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// mqtts: CA certificates (PEM) the broker's certificate must chain to (default: the
    /// system's).
    #[arg(long, value_name = "FILE")]
    mqtt_ca: Option<std::path::PathBuf>,
    /// mqtts: the bridge's client certificate (PEM), for a broker that requires one.
    #[arg(long, value_name = "FILE", requires_all = ["mqtt_key", "mqtt_ca"])]
    mqtt_cert: Option<std::path::PathBuf>,
    /// mqtts: the private key (PEM) of --mqtt-cert.
    #[arg(long, value_name = "FILE", requires = "mqtt_cert")]
    mqtt_key: Option<std::path::PathBuf>,
    /// MQTT QoS of what the bridge publishes and subscribes: 0 or 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// MQTT user name.
    #[arg(long)]
    mqtt_user: Option<String>,
    /// MQTT password (better: the environment variable).
    #[arg(long, env = "ZEROSMQ_BRIDGE_MQTT_PASSWORD", hide_env_values = true)]
    mqtt_password: Option<String>,
    /// MQTT client id (default zerosmq-bridge-ID).
    #[arg(long)]
    mqtt_client_id: Option<String>,
    /// How long the broker keeps the bridge's session while it is away, in seconds.
    #[arg(long, default_value_t = 300)]
    mqtt_session_expiry: u32,

    /// Join Zenoh as a peer or a client (of a zenohd router).
    #[arg(long, value_name = "peer|client")]
    zenoh_mode: Option<String>,
    /// Zenoh endpoint to connect to (tcp/HOST:PORT); repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    zenoh_connect: Vec<String>,
    /// Zenoh endpoint to listen on (tcp/HOST:PORT); repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    zenoh_listen: Vec<String>,
    /// Zenoh configuration file (JSON5), read before the options above.
    #[arg(long, value_name = "FILE")]
    zenoh_config: Option<String>,
    /// Turn Zenoh's multicast scouting on (off by default).
    #[arg(long)]
    zenoh_scouting: bool,
}

impl Args {
    fn zenoh(&self) -> bool {
        self.zenoh_mode.is_some()
            || !self.zenoh_connect.is_empty()
            || !self.zenoh_listen.is_empty()
            || self.zenoh_config.is_some()
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        error!("{e}");
        std::process::exit(2);
    }
}

/// Asks the master once before anything is bridged: credentials it refuses (a wrong CURVE server
/// key, a key or PLAIN user it does not admit) stop the bridge with the reason, since retrying
/// cannot fix them; a master that does not answer yet is waited for (it may start later).
fn check_master(node: &zerosmq::Node) -> Result<(), String> {
    use zerosmq::Error;
    match node.topics() {
        Ok(_) => Ok(()),
        Err(
            e @ (Error::AuthFailed { .. }
            | Error::WrongServerKey { .. }
            | Error::CurveRefused { .. }
            | Error::InvalidKey
            | Error::KeyFile { .. }),
        ) => Err(format!("cannot join the master: {e}")),
        Err(e) => {
            warn!("the master does not answer yet ({e}); the bridge keeps trying");
            Ok(())
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let kind = match (args.mqtt.is_some(), args.zenoh()) {
        (true, false) => "mqtt",
        (false, true) => "zenoh",
        (true, true) => return Err("one engine per bridge: --mqtt or --zenoh-*, not both".into()),
        (false, false) => {
            return Err(
                "choose an engine: --mqtt mqtt://HOST:PORT or --zenoh-mode peer|client".into(),
            )
        }
    };
    if args.out.is_empty() && args.inn.is_empty() {
        return Err("nothing to bridge: give --out PATTERN and/or --in PATTERN".into());
    }
    let id = args.id.clone().unwrap_or_else(zerosmq_bridge::random_id);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("bridge:{kind}"));
    let mut builder = zerosmq::Node::builder(&name);
    if let Some(m) = &args.master {
        builder = builder.master(m.clone());
    }
    if let Some(server) = &args.curve_server_key {
        let keys = args
            .curve_keys
            .as_ref()
            .map(zerosmq::curve::load_keys)
            .transpose()
            .map_err(|e| e.to_string())?;
        builder = builder.curve(server, keys);
    }
    if let Some(user) = &args.plain_user {
        builder = builder.plain(user, args.plain_password.clone().unwrap_or_default());
    }
    let node = builder.connect().map_err(|e| e.to_string())?;
    check_master(&node)?;
    let opts = Options {
        prefix: args.prefix.trim_end_matches('/').to_owned(),
        out: args.out.iter().map(|p| Glob::new(p)).collect(),
        inn: args.inn.iter().map(|p| Glob::new(p)).collect(),
        poll: Duration::from_millis(args.poll_ms.max(10)),
        max_payload: args.max_payload,
        max_topics: args.max_topics,
    };
    let bridge = Bridge::start(node, opts).map_err(|e| e.to_string())?;
    let engine: Arc<dyn Engine> = if kind == "zenoh" {
        let config = ZenohConfig {
            mode: args.zenoh_mode.clone().unwrap_or_else(|| "peer".into()),
            connect: args.zenoh_connect.clone(),
            listen: args.zenoh_listen.clone(),
            scouting: args.zenoh_scouting,
            file: args.zenoh_config.clone(),
        };
        Zenoh::start(&config, id.clone(), bridge.clone())?
    } else {
        let url = args.mqtt.as_deref().unwrap_or_default();
        let broker = mqtt::parse_url(url)?;
        let read = |p: &std::path::PathBuf| {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let tls = if broker.tls {
            let client_auth = match (&args.mqtt_cert, &args.mqtt_key) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                _ => None,
            };
            Some(mqtt::Tls {
                ca: args.mqtt_ca.as_ref().map(read).transpose()?,
                client_auth,
            })
        } else if args.mqtt_ca.is_some() || args.mqtt_cert.is_some() {
            return Err("--mqtt-ca and --mqtt-cert need an mqtts:// broker address".into());
        } else {
            None
        };
        let credentials = match (&args.mqtt_user, &args.mqtt_password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (Some(u), None) => Some((u.clone(), String::new())),
            _ => None,
        };
        let config = MqttConfig {
            host: broker.host,
            port: broker.port,
            tls,
            qos: args.qos,
            credentials,
            client_id: args
                .mqtt_client_id
                .clone()
                .unwrap_or_else(|| format!("zerosmq-bridge-{id}")),
            keep_alive: Duration::from_secs(5),
            session_expiry: args.mqtt_session_expiry,
        };
        Mqtt::start(config, id.clone(), bridge.clone()).map_err(|e| e.to_string())?
    };
    info!(
        node = name,
        master = bridge.node().master(),
        id,
        engine = engine.kind(),
        "bridge started"
    );
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let b = bridge.clone();
    let e = engine.clone();
    std::thread::Builder::new()
        .name("bridge-topics".into())
        .spawn(move || b.run_out(e))
        .map_err(|e| e.to_string())?;
    let mut last = bridge.counters.line();
    let mut printed = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if args.stats_secs > 0 && printed.elapsed() >= Duration::from_secs(args.stats_secs) {
            printed = Instant::now();
            let now = bridge.counters.line();
            if now != last {
                info!("counters: {now}");
                last = now;
            }
        }
    }
    bridge.stop();
    // What the engine still holds (MQTT's queue, unacknowledged QoS 1) gets a moment to leave;
    // what is left then is lost with the exit, and counted.
    let drain = Instant::now() + EXIT_DRAIN;
    while engine.unsettled() > 0 && Instant::now() < drain {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = engine.unsettled();
    if left > 0 {
        warn!(
            lost = left,
            "exiting with messages the engine had not finished"
        );
    }
    // The final line, which tests and operators read.
    println!(
        "counters: final {} out_unsettled_at_exit={left}",
        bridge.counters.line()
    );
    Ok(())
}
