//! The Foxglove endpoint: serves a master's topics over the Foxglove WebSocket protocol (with
//! the official `foxglove` SDK), so Foxglove and Lichtblick show them live. The SDK names the
//! protocol `foxglove.sdk.v1`, the same protocol as `foxglove.websocket.v1` under its new name
//! (as foxglove_bridge 3 does); clients that only offer the old name are answered with a 400.
//!
//! The endpoint is a node of the master like any other (through the std client): it polls the
//! master's topic list and keeps one Foxglove channel per topic, and subscribes a topic at the
//! master only while a Foxglove client subscribes its channel. The master's forwarding path
//! therefore has no Foxglove code in it, and a Foxglove client costs the master one subscriber
//! per topic it watches.
//!
//! Every channel has the `json` encoding. A typed topic's channel has its type's JSON Schema
//! (derived from the postcard schema the master keeps) and its payloads transcoded to JSON
//! (one that does not decode as the type is not forwarded). Untyped topics share one JSON schema
//! ([`UNTYPED_SCHEMA`]): a payload that is a number in text is `{"value": N}` (Foxglove plots
//! it), other UTF-8 text is `{"text": "..."}`, and anything else is `{"base64": "..."}`. A topic
//! that becomes typed after its channel was advertised gets a new channel (untyped channels ask
//! again every [`RETYPE_POLLS`] polls).

mod forward;
mod payload;
mod publish;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use foxglove::websocket::{
    Capability, ChannelView, Client, ClientChannel, ConnectionGraph, ServerListener, Status,
};
use foxglove::{ChannelId, Context, RawChannel, Schema, WebSocketServerHandle};
use zerosmq::{Node, NodeBuilder};

pub use payload::{
    from_foxglove, to_foxglove, UNTYPED_ENCODING, UNTYPED_SCHEMA, UNTYPED_SCHEMA_NAME,
};

/// Polls between two looks at whether an untyped channel's topic has become typed.
pub const RETYPE_POLLS: u32 = 10;

/// A topic's channel, with the decoder of its payloads when the topic is typed.
#[derive(Clone)]
pub(crate) struct TopicChannel {
    pub(crate) raw: Arc<RawChannel>,
    pub(crate) typed: Option<Arc<zerosmq::json::JsonDecoder>>,
}

/// What the endpoint serves, and where.
#[derive(Debug, Clone)]
pub struct FoxgloveConfig {
    /// Host or address the WebSocket server binds to.
    pub host: String,
    /// Port (0 picks a free one, see [`FoxgloveEndpoint::port`]).
    pub port: u16,
    /// The master's control endpoint (`tcp://HOST:PORT`).
    pub master: String,
    /// The node the endpoint joins the master as (`foxglove`, at `master`): its name is what the
    /// ACL applies to; the master gives it credentials when it runs PLAIN or CURVE.
    pub node: NodeBuilder,
    /// Let Foxglove clients publish (`clientPublish`); off by default.
    pub allow_publish: bool,
    /// How often the master's topic list (and, while a client watches it, the graph) is read.
    pub poll: Duration,
    /// Messages queued per WebSocket client before the oldest are dropped, and per
    /// client-published channel before new ones are dropped.
    pub backlog: usize,
}

impl FoxgloveConfig {
    /// Defaults for an endpoint at `host:port` serving the master at `master`.
    pub fn new(host: impl Into<String>, port: u16, master: impl Into<String>) -> Self {
        let master: String = master.into();
        FoxgloveConfig {
            host: host.into(),
            port,
            master: master.clone(),
            node: Node::builder("foxglove").master(master.clone()),
            allow_publish: false,
            poll: Duration::from_millis(500),
            backlog: 1024,
        }
    }
}

/// Why the endpoint did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoxgloveError {
    #[error("the Foxglove endpoint cannot join the master as a node: {0}")]
    Node(#[from] zerosmq::Error),
    #[error("the Foxglove WebSocket server did not start: {0}")]
    Server(#[from] foxglove::FoxgloveError),
    #[error("the Foxglove endpoint's poller thread did not start: {0}")]
    Thread(std::io::Error),
}

/// A running endpoint; stopped when dropped.
pub struct FoxgloveEndpoint {
    shared: Arc<Shared>,
    /// Shared with the poller, which publishes the graph and statuses through it.
    server: Option<Arc<WebSocketServerHandle>>,
    poller: Option<JoinHandle<()>>,
    port: u16,
}

impl std::fmt::Debug for FoxgloveEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoxgloveEndpoint")
            .field("port", &self.port)
            .finish()
    }
}

impl FoxgloveEndpoint {
    /// Joins the master as a node and starts the WebSocket server (with its own tokio runtime).
    pub fn start(config: FoxgloveConfig) -> Result<FoxgloveEndpoint, FoxgloveError> {
        let node = config.node.clone().connect()?;
        // A context of its own, so the endpoint's channels never mix with anything else that
        // logs to the SDK's default context in the same process.
        let ctx = Context::new();
        let shared = Arc::new(Shared {
            node,
            ctx: ctx.clone(),
            backlog: config.backlog.max(1),
            channels: Mutex::new(HashMap::new()),
            forwards: Mutex::new(HashMap::new()),
            publishers: Mutex::new(HashMap::new()),
            graph_watched: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let mut capabilities = vec![Capability::ConnectionGraph];
        if config.allow_publish {
            capabilities.push(Capability::ClientPublish);
        }
        let server = ctx
            .websocket_server()
            .name(format!("zerosmq master {}", config.master))
            .bind(config.host.clone(), config.port)
            .capabilities(capabilities)
            .supported_encodings(if config.allow_publish {
                vec![UNTYPED_ENCODING]
            } else {
                vec![]
            })
            .message_backlog_size(shared.backlog)
            .listener(Arc::new(Listener {
                shared: shared.clone(),
            }))
            .start_blocking()?;
        let server = Arc::new(server);
        let port = server.port();
        let poller = {
            let shared = shared.clone();
            let server = server.clone();
            let poll = config.poll.max(Duration::from_millis(10));
            std::thread::Builder::new()
                .name("foxglove-poll".into())
                .spawn(move || poll_master(&shared, &server, poll))
                .map_err(FoxgloveError::Thread)?
        };
        tracing::info!(
            port,
            "Foxglove endpoint listening (WebSocket subprotocol foxglove.sdk.v1)"
        );
        Ok(FoxgloveEndpoint {
            shared,
            server: Some(server),
            poller: Some(poller),
            port,
        })
    }

    /// The port the WebSocket server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server, the forwards and the poller, and leaves the master.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // The poller holds the other reference to the server; it ends within one poll.
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
        if let Some(server) = self.server.take().and_then(Arc::into_inner) {
            drop(server.stop());
        }
    }
}

impl Drop for FoxgloveEndpoint {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// State the listener callbacks, the poller and the forwards share.
struct Shared {
    node: Node,
    ctx: Arc<Context>,
    backlog: usize,
    /// One channel per topic of the master.
    channels: Mutex<HashMap<String, TopicChannel>>,
    /// Channels some client subscribes, with the forward that feeds them.
    forwards: Mutex<HashMap<ChannelId, forward::Forward>>,
    /// Channels clients publish on, each with the queue of its publishing thread.
    publishers: Mutex<HashMap<publish::Key, publish::Queue>>,
    graph_watched: AtomicBool,
    stop: AtomicBool,
}

/// A poisoned lock only means a callback panicked; the maps stay consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The SDK's callbacks run on its client loops and must not block: everything that talks to
/// the master happens on the forward and publisher threads.
struct Listener {
    shared: Arc<Shared>,
}

impl ServerListener for Listener {
    fn on_subscribe(&self, client: Client, channel: ChannelView) {
        let Some(topic) = lock(&self.shared.channels).get(channel.topic()).cloned() else {
            return;
        };
        forward::client_joined(&self.shared, topic, client);
    }

    fn on_unsubscribe(&self, _client: Client, channel: ChannelView) {
        forward::client_left(&self.shared, channel.id());
    }

    fn on_client_advertise(&self, client: Client, channel: &ClientChannel) {
        publish::advertised(&self.shared, client, channel);
    }

    fn on_client_unadvertise(&self, client: Client, channel: &ClientChannel) {
        publish::unadvertised(&self.shared, &client, channel);
    }

    fn on_message_data(&self, client: Client, channel: &ClientChannel, payload: &[u8]) {
        publish::message(&self.shared, &client, channel, payload);
    }

    fn on_connection_graph_subscribe(&self) {
        self.shared.graph_watched.store(true, Ordering::Relaxed);
    }

    fn on_connection_graph_unsubscribe(&self) {
        self.shared.graph_watched.store(false, Ordering::Relaxed);
    }
}

/// The poller: keeps the channels in step with the master's topics, the connection graph with
/// its registry while a client watches it, and reports new overflows on watched topics.
fn poll_master(shared: &Shared, server: &WebSocketServerHandle, poll: Duration) {
    let mut graph: Option<Graph> = None;
    let mut overflows: HashMap<String, u64> = HashMap::new();
    let mut polls = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        polls = polls.wrapping_add(1);
        match shared.node.topics() {
            Ok(topics) => sync_channels(shared, &topics, polls.is_multiple_of(RETYPE_POLLS)),
            Err(e) => tracing::warn!("Foxglove endpoint: topic list: {e}"),
        }
        if shared.graph_watched.load(Ordering::Relaxed) {
            match read_graph(&shared.node) {
                Ok(now) if graph.as_ref() != Some(&now) => {
                    let mut update = ConnectionGraph::new();
                    for (topic, (publishers, subscribers)) in &now {
                        if !publishers.is_empty() {
                            update.set_published_topic(topic.as_str(), publishers.iter().cloned());
                        }
                        if !subscribers.is_empty() {
                            update
                                .set_subscribed_topic(topic.as_str(), subscribers.iter().cloned());
                        }
                    }
                    if let Err(e) = server.publish_connection_graph(update) {
                        tracing::warn!("Foxglove endpoint: connection graph: {e}");
                    }
                    graph = Some(now);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("Foxglove endpoint: graph: {e}"),
            }
        } else {
            // A client that subscribes later gets the whole graph again.
            graph = None;
        }
        report_overflows(shared, server, &mut overflows);
        std::thread::sleep(poll);
    }
}

/// Adds a channel for each new topic and closes the channels of topics that are gone.
/// With `retype`, an untyped channel whose topic has become typed is advertised again.
fn sync_channels(shared: &Shared, topics: &[String], retype: bool) {
    let mut channels = lock(&shared.channels);
    channels.retain(|topic, channel| {
        let keep = topics.contains(topic);
        if !keep {
            channel.raw.close();
        }
        keep
    });
    for topic in topics {
        let typed = match channels.get(topic) {
            Some(c) if c.typed.is_some() || !retype => continue,
            Some(_) => match decoder(shared, topic) {
                Some(d) => Some(d),
                None => continue,
            },
            None => decoder(shared, topic),
        };
        let builder = shared
            .ctx
            .channel_builder(topic.as_str())
            .message_encoding(UNTYPED_ENCODING);
        let builder = match &typed {
            Some(d) => builder.schema(Schema::new(
                d.schema().name.as_str(),
                "jsonschema",
                d.json_schema().to_string().into_bytes(),
            )),
            None => builder.schema(Schema::new(
                UNTYPED_SCHEMA_NAME,
                "jsonschema",
                UNTYPED_SCHEMA.as_bytes(),
            )),
        };
        match builder.build_raw() {
            Ok(raw) => {
                if let Some(old) = channels.insert(topic.clone(), TopicChannel { raw, typed }) {
                    old.raw.close();
                }
            }
            Err(e) => tracing::warn!("Foxglove endpoint: channel {topic}: {e}"),
        }
    }
}

/// The JSON decoder of a typed topic; `None` when untyped (or its type has no JSON form).
fn decoder(shared: &Shared, topic: &str) -> Option<Arc<zerosmq::json::JsonDecoder>> {
    let schema = match shared.node.topic_schema(topic) {
        Ok(schema) => schema?,
        Err(e) => {
            tracing::warn!("Foxglove endpoint: schema of {topic}: {e}");
            return None;
        }
    };
    match zerosmq::json::JsonDecoder::new(schema) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) => {
            tracing::warn!("Foxglove endpoint: {topic}: {e}; shown untyped");
            None
        }
    }
}

/// Topic -> (publishing nodes, subscribing nodes), from every node's own account.
type Graph = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

fn read_graph(node: &Node) -> zerosmq::Result<Graph> {
    let mut graph = Graph::new();
    for name in node.nodes()? {
        let info = match node.node_info(&name) {
            Ok(info) => info,
            // A node that left between the two requests.
            Err(zerosmq::Error::Refused { .. }) => continue,
            Err(e) => return Err(e),
        };
        for topic in info.publishes {
            graph.entry(topic).or_default().0.insert(name.clone());
        }
        for topic in info.subscribes {
            graph.entry(topic).or_default().1.insert(name.clone());
        }
    }
    Ok(graph)
}

/// The SDK drops a slow client's oldest messages without counting them; what can be counted is
/// the master's overflow counter of each topic a client watches (a subscriber, this endpoint
/// among them, that fell behind its high-water mark). A rise is reported to every client.
fn report_overflows(
    shared: &Shared,
    server: &WebSocketServerHandle,
    seen: &mut HashMap<String, u64>,
) {
    let watched: Vec<String> = lock(&shared.forwards)
        .values()
        .map(|f| f.topic.clone())
        .collect();
    seen.retain(|topic, _| watched.contains(topic));
    for topic in watched {
        let Ok(info) = shared.node.topic_info(&topic) else {
            continue;
        };
        let before = *seen.entry(topic.clone()).or_insert(info.overflows);
        if info.overflows > before {
            server.publish_status(
                Status::warning(format!(
                    "{topic}: {} messages dropped at the master for subscribers that fell behind \
                     ({} in all)",
                    info.overflows - before,
                    info.overflows
                ))
                .with_id(format!("overflow:{topic}")),
            );
            seen.insert(topic, info.overflows);
        }
    }
}
