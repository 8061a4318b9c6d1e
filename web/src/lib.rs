//! The master's web page and Prometheus metrics (`zerosmq-master --web HOST:PORT`).
//!
//! The server is a node of the master like any other (through the std client), as the Foxglove
//! endpoint is: a poller reads the node list, every node's topics and every topic's counters
//! over the control protocol, and the HTTP handlers answer from that sample. The master's
//! forwarding path has no web code in it; a plotted topic costs the master one subscriber while
//! a page asks for it. Counters the control protocol does not carry (connections, control
//! requests, uptime) come from the master in the same process through [`MasterCounters`].
//!
//! - `/`: one page (HTML and JS built into the binary): the topic graph as SVG, the topic table
//!   and a live plot of one topic whose payloads are numbers in text.
//! - `/metrics`: the Prometheus text format (see [`metrics`]).
//! - `/api/topics`: the sample as JSON; `/api/plot?topic=NAME`: a topic's recent numbers.

mod metrics;
mod plot;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, Server};
use zerosmq::{Node, NodeBuilder};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");

/// Threads answering HTTP requests (tiny_http reads and parses each request on its own
/// threads, so a slow client holds none of these until its request is whole).
const HANDLERS: usize = 4;

/// What the server serves, and where.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Address the HTTP server binds to (port 0 picks a free one, see [`WebServer::port`]).
    pub addr: SocketAddr,
    /// The master's control endpoint (`tcp://HOST:PORT`).
    pub master: String,
    /// The node the server joins the master as (`web`, at `master`): its name is what the ACL
    /// applies to; the master gives it credentials when it runs PLAIN or CURVE.
    pub node: NodeBuilder,
    /// How often the master's nodes, topics and counters are read.
    pub poll: Duration,
    /// Numbers kept per plotted topic.
    pub plot_points: usize,
}

impl WebConfig {
    /// Defaults for a server at `addr` for the master at `master`.
    pub fn new(addr: SocketAddr, master: impl Into<String>) -> Self {
        let master: String = master.into();
        WebConfig {
            addr,
            master: master.clone(),
            node: Node::builder("web").master(master.clone()),
            poll: Duration::from_millis(500),
            plot_points: 600,
        }
    }
}

/// The master's counters outside its topics, as the metrics show them.
#[derive(Debug, Clone, Default)]
pub struct ServerCounters {
    pub uptime: Duration,
    /// The data ports' mechanism (`NULL`, `PLAIN` or `CURVE`).
    pub mechanism: String,
    /// Data connections open.
    pub data_connections: u64,
    /// Control requests by kind.
    pub control_requests: Vec<(String, u64)>,
    /// Refused control requests by error code.
    pub control_errors: Vec<(String, u64)>,
}

/// Reads the master's own counters (given by the master, which runs in the same process).
pub type MasterCounters = Box<dyn Fn() -> ServerCounters + Send + Sync>;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    #[error("the web server cannot join the master as a node: {0}")]
    Node(#[from] zerosmq::Error),
    #[error("the web server cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("the web server's threads did not start: {0}")]
    Thread(std::io::Error),
}

/// A running server; stopped when dropped.
pub struct WebServer {
    shared: Arc<Shared>,
    server: Arc<Server>,
    threads: Vec<JoinHandle<()>>,
    port: u16,
}

impl std::fmt::Debug for WebServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebServer")
            .field("port", &self.port)
            .finish()
    }
}

/// One topic as the page and the metrics show it.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct TopicRow {
    pub name: String,
    pub publishers: Vec<String>,
    pub subscribers: Vec<String>,
    pub messages: u64,
    pub bytes: u64,
    pub overflows: u64,
    pub refused: u64,
    /// Messages per second over the last poll.
    pub rate: f64,
    /// Bytes per second over the last poll.
    pub bandwidth: f64,
}

/// The master as last read.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Sample {
    pub nodes: Vec<String>,
    pub topics: Vec<TopicRow>,
    /// The last poll's error, if it failed (the page shows it).
    pub error: Option<String>,
}

pub(crate) struct Shared {
    node: Node,
    sample: Mutex<Sample>,
    counters: Option<MasterCounters>,
    plots: plot::Plots,
    stop: AtomicBool,
}

/// A poisoned lock only means a handler panicked; the data stays usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WebServer {
    /// Joins the master as a node and starts the HTTP server and its poller.
    pub fn start(config: WebConfig, counters: Option<MasterCounters>) -> Result<Self, WebError> {
        let node = config.node.clone().connect()?;
        let server = Server::http(config.addr).map_err(|e| WebError::Bind {
            addr: config.addr,
            reason: e.to_string(),
        })?;
        let port = server
            .server_addr()
            .to_ip()
            .map_or(config.addr.port(), |a| a.port());
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            node,
            sample: Mutex::new(Sample::default()),
            counters,
            plots: plot::Plots::new(config.plot_points.max(2)),
            stop: AtomicBool::new(false),
        });
        let mut web = WebServer {
            shared: shared.clone(),
            server: server.clone(),
            threads: Vec::new(),
            port,
        };
        let poll = config.poll.max(Duration::from_millis(10));
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(WebError::Thread)
        };
        {
            let shared = shared.clone();
            web.threads.push(spawn(
                "web-poll",
                Box::new(move || poll_master(&shared, poll)),
            )?);
        }
        for _ in 0..HANDLERS {
            let (shared, server) = (shared.clone(), server.clone());
            web.threads.push(spawn(
                "web-http",
                Box::new(move || serve(&shared, &server)),
            )?);
        }
        tracing::info!(port, "web page and /metrics listening");
        Ok(web)
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for _ in 0..HANDLERS {
            self.server.unblock();
        }
        // The poller is the first thread started.
        if let Some(poller) = self.threads.first() {
            poller.thread().unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.shared.plots.stop_all();
    }
}

fn serve(shared: &Shared, server: &Server) {
    while !shared.stop.load(Ordering::Relaxed) {
        match server.recv() {
            Ok(request) => answer(shared, request),
            // Woken to stop.
            Err(_) if shared.stop.load(Ordering::Relaxed) => break,
            // Accepting failed (out of descriptors, for one): a pause, so a failure that repeats
            // does not become a busy loop of log lines.
            Err(e) => {
                tracing::warn!("web server: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants of ours.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("an ASCII header")
}

fn answer(shared: &Shared, request: Request) {
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let (status, kind, body) = if *request.method() != Method::Get {
        (405, "text/plain", "only GET is served\n".to_owned())
    } else {
        match path {
            "/" | "/index.html" => (200, "text/html; charset=utf-8", PAGE.to_owned()),
            "/page.js" => (200, "text/javascript; charset=utf-8", SCRIPT.to_owned()),
            "/metrics" => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::render(&lock(&shared.sample), shared.counters.as_ref()),
            ),
            "/api/topics" => (
                200,
                "application/json",
                serde_json::to_string(&*lock(&shared.sample)).unwrap_or_default(),
            ),
            "/api/plot" => match query_param(query, "topic") {
                Some(topic) => match shared.plots.points(&shared.node, &topic) {
                    Ok(points) => (200, "application/json", points),
                    Err(e) => (
                        400,
                        "application/json",
                        serde_json::json!({ "error": e.to_string() }).to_string(),
                    ),
                },
                None => (
                    400,
                    "application/json",
                    r#"{"error":"/api/plot needs ?topic=NAME"}"#.to_owned(),
                ),
            },
            _ => (404, "text/plain", format!("no page at {path}\n")),
        }
    };
    let response = Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", kind))
        .with_header(header("Cache-Control", "no-store"));
    if let Err(e) = request.respond(response) {
        tracing::debug!("web client left before its answer: {e}");
    }
}

/// A query parameter, percent-decoded (`+` is a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    let value = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)?
        .1;
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn poll_master(shared: &Shared, poll: Duration) {
    // Topic -> (messages, bytes, when) at the previous poll, for the rates.
    let mut before: HashMap<String, (u64, u64, Instant)> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let sample = read_master(&shared.node, &mut before).unwrap_or_else(|e| {
            tracing::warn!("web server: reading the master: {e}");
            Sample {
                error: Some(e.to_string()),
                ..std::mem::take(&mut *lock(&shared.sample))
            }
        });
        *lock(&shared.sample) = sample;
        shared.plots.expire();
        // Woken early when the server stops (a spurious wake-up only polls sooner).
        std::thread::park_timeout(poll);
    }
}

fn read_master(
    node: &Node,
    before: &mut HashMap<String, (u64, u64, Instant)>,
) -> zerosmq::Result<Sample> {
    let nodes = node.nodes()?;
    // The topic list names published topics only; a node's own account adds the others.
    let mut topics: BTreeSet<String> = node.topics()?.into_iter().collect();
    for name in &nodes {
        match node.node_info(name) {
            Ok(info) => topics.extend(info.publishes.into_iter().chain(info.subscribes)),
            // A node that left between the two requests.
            Err(zerosmq::Error::Refused { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut rows = Vec::with_capacity(topics.len());
    let mut seen = BTreeMap::new();
    for topic in topics {
        let info = match node.topic_info(&topic) {
            Ok(info) => info,
            Err(zerosmq::Error::Refused { .. }) => continue,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        let (rate, bandwidth) = match before.get(&topic) {
            // A lower count: the topic was closed and opened again.
            Some(&(m, b, t)) if info.messages >= m && info.bytes >= b => {
                let dt = now.duration_since(t).as_secs_f64().max(1e-3);
                (
                    (info.messages - m) as f64 / dt,
                    (info.bytes - b) as f64 / dt,
                )
            }
            _ => (0.0, 0.0),
        };
        seen.insert(topic.clone(), (info.messages, info.bytes, now));
        rows.push(TopicRow {
            name: topic,
            publishers: info.publishers,
            subscribers: info.subscribers,
            messages: info.messages,
            bytes: info.bytes,
            overflows: info.overflows,
            refused: info.refused,
            rate,
            bandwidth,
        });
    }
    *before = seen.into_iter().collect();
    Ok(Sample {
        nodes,
        topics: rows,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_parameters_decode() {
        assert_eq!(
            query_param("topic=a%2Fb&x=1", "topic").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            query_param("x=1&topic=imu+x", "topic").as_deref(),
            Some("imu x")
        );
        assert_eq!(query_param("topic=%zz", "topic"), None);
        assert_eq!(query_param("topic=%4", "topic"), None);
        assert_eq!(query_param("other=1", "topic"), None);
    }
}
