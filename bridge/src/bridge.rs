//! The master side of a bridge: a node that subscribes the master's topics matching `--out`
//! (polling the topic list, so topics that appear later are picked up) and hands their messages
//! to an [`Engine`], and publishes what the engine brings in (keys matching `--in`) into the
//! master. Every message that does not cross is counted (see [`Counters`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use zerosmq::{ErrorCode, Node, Publisher, Subscriber};

use crate::counters::Counters;
use crate::echo::EchoFilter;
use crate::glob::{any_matches, Glob};

/// How long a new publisher or subscriber waits for the master to connect it.
const READY_WAIT: Duration = Duration::from_secs(3);

/// Messages waiting for the master writer thread; past this they are counted as lost.
const TO_MASTER_QUEUE: usize = 10_000;

/// How often an out thread asks the master for its topic's schema again (a typed publisher may
/// come after the bridge subscribed, or the topic may close and come back with another type).
const SCHEMA_RECHECK: Duration = Duration::from_secs(2);

/// A refused schema is not offered to the master again for this long (its messages are
/// refused meanwhile), so a peer sending another type does not cost a request per message.
const SCHEMA_RETRY: Duration = Duration::from_secs(1);

/// What a typed topic's messages say in the engine: MQTT 5 content type, and the Zenoh
/// encoding's name (its schema part, after `;`, is [`Schema::text`]).
pub const CONTENT_TYPE: &str = "application/postcard";

/// A typed topic's schema as it crosses the bridge: the bytes a master keeps for the topic
/// (postcard of postcard-schema's owned type) and their base64 text, which the engines carry
/// (MQTT: user property [`crate::mqtt::SCHEMA_PROPERTY`]; Zenoh: the encoding's schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub bytes: Vec<u8>,
    pub text: String,
}

impl Schema {
    /// From the master's schema of a topic.
    pub fn from_bytes(bytes: Vec<u8>) -> Schema {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        Schema { bytes, text }
    }

    /// From the engine's text: standard base64 of at most the master's schema length.
    pub fn from_text(text: &str) -> Result<Schema, SchemaError> {
        use base64::Engine as _;
        // Checked before decoding: a peer's oversized property is refused without the work.
        if text.len() > zerosmq_core::limits::MAX_SCHEMA_LEN.div_ceil(3) * 4 {
            return Err(SchemaError::TooLong { len: text.len() });
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(SchemaError::NotBase64)?;
        Ok(Schema {
            bytes,
            text: text.to_owned(),
        })
    }
}

/// Why a schema from the engine is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// More base64 than the master's schema length can take.
    TooLong { len: usize },
    /// Not standard base64 (with padding).
    NotBase64(base64::DecodeError),
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaError::TooLong { len } => write!(
                f,
                "{len} characters of base64, over the {} bytes a schema may have",
                zerosmq_core::limits::MAX_SCHEMA_LEN
            ),
            SchemaError::NotBase64(e) => write!(f, "not base64: {e}"),
        }
    }
}

impl std::error::Error for SchemaError {}

/// A publisher the bridge holds on its master, and the schema it declared.
struct InPublisher {
    publisher: Publisher,
    schema: Option<Vec<u8>>,
    /// `Publisher::dropped` when last looked at: what it dropped since was counted sent.
    dropped: u64,
}

/// What the bridge carries and how much it takes from the engine.
#[derive(Debug, Clone)]
pub struct Options {
    /// Engine keys are `PREFIX/TOPIC`.
    pub prefix: String,
    /// Master topics sent to the engine.
    pub out: Vec<Glob>,
    /// Engine keys (topic part) published into the master.
    pub inn: Vec<Glob>,
    /// How often the master's topic list is read for new `--out` topics.
    pub poll: Duration,
    /// Largest payload taken from the engine.
    pub max_payload: usize,
    /// Most distinct topics brought in from the engine.
    pub max_topics: usize,
}

/// An engine the bridge sends to; it calls [`Bridge::from_engine`] for what it receives.
pub trait Engine: Send + Sync + 'static {
    /// `mqtt` or `zenoh`.
    fn kind(&self) -> &'static str;
    /// The engine's name for master topic `topic`, or `None` when the engine cannot carry it.
    fn key_for(&self, topic: &str) -> Option<String>;
    /// Sends one message (with the topic's schema when it is typed), or says why it was dropped.
    fn send(&self, key: &str, payload: &[u8], schema: Option<&Schema>) -> Result<(), SendError>;
    /// Called once per key before its first message (an engine may declare a publisher).
    fn open(&self, _key: &str) {}
    /// Messages it took but has not finished (MQTT: queued, or QoS 1 not acknowledged), which
    /// an exit now would lose.
    fn unsettled(&self) -> u64 {
        0
    }
}

/// Why an engine did not take a message; each reason has its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No broker connection, or no Zenoh subscriber matching the key (the link is down).
    LinkDown,
    /// The engine's queue is full (the broker does not take messages as fast as they come).
    QueueFull,
    /// The engine refused the message (a Zenoh put or publisher declaration failed).
    Failed,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::LinkDown => "the engine link is down",
            SendError::QueueFull => "the engine's queue is full",
            SendError::Failed => "the engine refused the message",
        })
    }
}

/// Why a message from the engine was not published into the master.
#[derive(Debug, Clone, Copy)]
enum InLoss {
    QueueFull,
    NotReady,
    Failed,
    Dropped,
}

/// Logs at most once a second, with the number of events since the last line.
pub struct RateLimited {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for RateLimited {
    fn default() -> Self {
        RateLimited {
            state: Mutex::new((None, 0)),
        }
    }
}

impl RateLimited {
    /// Returns `Some(n)` (events since the last line, this one included) when a line is due.
    pub fn due(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 += 1;
        let now = Instant::now();
        if s.0
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            s.0 = Some(now);
            let n = s.1;
            s.1 = 0;
            Some(n)
        } else {
            None
        }
    }
}

/// A message from the engine for the master: topic, payload, schema.
type ToMaster = (String, Vec<u8>, Option<Schema>);

/// One bridge: a master node and the counters; shared by its threads and the engine's.
pub struct Bridge {
    pub opts: Options,
    pub counters: Counters,
    node: Node,
    echo: EchoFilter,
    to_master: SyncSender<ToMaster>,
    /// Topics brought in so far (bounded by `max_topics`).
    in_topics: Mutex<HashSet<String>>,
    refused_log: RateLimited,
    schema_log: RateLimited,
    lost_log: RateLimited,
    out_lost_log: RateLimited,
    stop: AtomicBool,
}

impl Bridge {
    /// Starts the master writer thread; call [`Bridge::run_out`] once the engine exists.
    pub fn start(node: Node, opts: Options) -> std::io::Result<Arc<Bridge>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(TO_MASTER_QUEUE);
        let bridge = Arc::new(Bridge {
            opts,
            counters: Counters::default(),
            node,
            echo: EchoFilter::default(),
            to_master: tx,
            in_topics: Mutex::new(HashSet::new()),
            refused_log: RateLimited::default(),
            schema_log: RateLimited::default(),
            lost_log: RateLimited::default(),
            out_lost_log: RateLimited::default(),
            stop: AtomicBool::new(false),
        });
        let b = bridge.clone();
        std::thread::Builder::new()
            .name("bridge-to-master".into())
            .spawn(move || b.master_writer(rx))?;
        Ok(bridge)
    }

    /// The master node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Asks the threads to end (the out threads look at it between receives).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// A message from the engine: `name` is the key without `PREFIX/`, `schema` the base64 text
    /// of a typed message's schema. Checks the name, the size, the schema, the topic budget and
    /// the `--in` patterns, then queues it for the master.
    pub fn from_engine(&self, name: &[u8], payload: &[u8], schema: Option<&str>) {
        let c = &self.counters;
        let topic = match zerosmq_core::name::validate_name(
            name,
            zerosmq_core::limits::MAX_TOPIC_LEN,
        ) {
            Ok(t) => t,
            Err(e) => {
                Counters::bump(&c.in_bad_name);
                if let Some(n) = self.refused_log.due() {
                    warn!(key = %String::from_utf8_lossy(name), count = n, "refused a key from the engine: not a topic name: {e}");
                }
                return;
            }
        };
        if payload.len() > self.opts.max_payload {
            Counters::bump(&c.in_oversized);
            if let Some(n) = self.refused_log.due() {
                warn!(
                    topic,
                    len = payload.len(),
                    max = self.opts.max_payload,
                    count = n,
                    "refused a message from the engine: payload over --max-payload"
                );
            }
            return;
        }
        if !any_matches(&self.opts.inn, topic) {
            Counters::bump(&c.in_not_matched);
            return;
        }
        let schema = match schema.map(Schema::from_text).transpose() {
            Ok(s) => s,
            Err(e) => {
                self.schema_refused(topic, &e.to_string());
                return;
            }
        };
        {
            let mut topics = self.in_topics.lock().unwrap_or_else(|e| e.into_inner());
            if !topics.contains(topic) {
                if topics.len() >= self.opts.max_topics {
                    drop(topics);
                    Counters::bump(&c.in_too_many_topics);
                    if let Some(n) = self.refused_log.due() {
                        warn!(
                            topic,
                            max = self.opts.max_topics,
                            count = n,
                            "refused a new topic from the engine: --max-topics reached"
                        );
                    }
                    return;
                }
                topics.insert(topic.to_owned());
            }
        }
        match self
            .to_master
            .try_send((topic.to_owned(), payload.to_vec(), schema))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.lost_in(
                topic,
                InLoss::QueueFull,
                "the queue towards the master is full",
            ),
            // Only when the writer thread is gone (the bridge is stopping).
            Err(TrySendError::Disconnected(_)) => {
                self.lost_in(topic, InLoss::Failed, "the master writer has stopped")
            }
        }
    }

    fn schema_refused(&self, topic: &str, why: &str) {
        Counters::bump(&self.counters.in_schema_refused);
        if let Some(n) = self.schema_log.due() {
            warn!(
                topic,
                count = n,
                "refused a message from the engine: its schema: {why}"
            );
        }
    }

    fn lost_in(&self, topic: &str, loss: InLoss, why: &str) {
        self.lost_in_n(topic, loss, 1, why);
    }

    fn lost_in_n(&self, topic: &str, loss: InLoss, n: u64, why: &str) {
        let c = &self.counters;
        let reason = match loss {
            InLoss::QueueFull => &c.in_queue_full,
            InLoss::NotReady => &c.in_not_ready,
            InLoss::Failed => &c.in_failed,
            InLoss::Dropped => &c.in_dropped,
        };
        Counters::lose(&c.in_lost, reason, n);
        if let Some(n) = self.lost_log.due() {
            warn!(
                topic,
                count = n,
                "lost messages from the engine: {why}; {}",
                self.counters.line()
            );
        }
    }

    /// Publishes what the engine brought in, one publisher per topic. A message with a schema
    /// its topic's publisher has not declared gets a typed publisher with it (replacing the
    /// topic's old one); a message without a schema goes through whichever publisher the topic
    /// has (a master grants untyped publishing on a typed topic as well).
    fn master_writer(&self, rx: Receiver<ToMaster>) {
        let mut pubs: HashMap<String, InPublisher> = HashMap::new();
        let mut retry_at: HashMap<String, Instant> = HashMap::new();
        // The last schema the master refused per topic, and until when it is not offered again.
        let mut refused: HashMap<String, (Vec<u8>, Instant, String)> = HashMap::new();
        for (topic, payload, schema) in rx {
            let fits = pubs.get(&topic).is_some_and(|p| {
                schema
                    .as_ref()
                    .is_none_or(|s| p.schema.as_ref() == Some(&s.bytes))
            });
            if !fits {
                if let Some(s) = &schema {
                    if let Some((bytes, until, why)) = refused.get(&topic) {
                        if *bytes == s.bytes && Instant::now() < *until {
                            self.schema_refused(&topic, why);
                            continue;
                        }
                    }
                }
                if retry_at.get(&topic).is_some_and(|t| Instant::now() < *t) {
                    self.lost_in(&topic, InLoss::NotReady, "no publisher on the master yet");
                    continue;
                }
                let advertised = match &schema {
                    Some(s) => self.node.advertise_with_schema(&topic, &s.bytes),
                    None => self.node.advertise(&topic),
                };
                match advertised {
                    Ok(mut p) => {
                        if let Err(e) = p.wait_ready(READY_WAIT) {
                            warn!(topic, "publisher not ready yet: {e}");
                        }
                        info!(topic, typed = schema.is_some(), "bridging in");
                        pubs.insert(
                            topic.clone(),
                            InPublisher {
                                dropped: p.dropped(),
                                publisher: p,
                                schema: schema.map(|s| s.bytes),
                            },
                        );
                        retry_at.remove(&topic);
                        refused.remove(&topic);
                    }
                    // The topic has another type on this master (or the bytes are no schema):
                    // this message is refused, the topic's publisher (if any) stays.
                    Err(
                        e @ (zerosmq::Error::Refused {
                            code: ErrorCode::SchemaMismatch | ErrorCode::InvalidSchema,
                            ..
                        }
                        | zerosmq::Error::SchemaTooLarge { .. }),
                    ) => {
                        let why = format!("the master refused it: {e}");
                        self.schema_refused(&topic, &why);
                        if let Some(s) = schema {
                            refused.insert(topic, (s.bytes, Instant::now() + SCHEMA_RETRY, why));
                        }
                        continue;
                    }
                    Err(e) => {
                        warn!(topic, "cannot publish into the master: {e}");
                        retry_at.insert(topic.clone(), Instant::now() + Duration::from_secs(1));
                        self.lost_in(&topic, InLoss::NotReady, "no publisher on the master");
                        continue;
                    }
                }
            }
            let Some(entry) = pubs.get_mut(&topic) else {
                continue;
            };
            let p = &mut entry.publisher;
            // Messages handed over earlier that the publisher dropped since (still queued when
            // its connection was lost): counted sent then, lost now.
            let before = p.dropped();
            let later = before - entry.dropped;
            if later > 0 {
                self.counters.in_sent.fetch_sub(later, Ordering::Relaxed);
                self.lost_in_n(
                    &topic,
                    InLoss::Dropped,
                    later,
                    "queued when the master's connection was lost",
                );
            }
            entry.dropped = before;
            if !p.is_ready().unwrap_or(false) {
                self.lost_in(&topic, InLoss::NotReady, "the master is not connected");
                continue;
            }
            self.echo.expect(&topic, &payload);
            match p.publish(&payload) {
                Ok(()) if p.dropped() > before => {
                    entry.dropped = p.dropped();
                    self.lost_in(
                        &topic,
                        InLoss::Dropped,
                        "the master does not read: past the publisher's high-water mark",
                    );
                }
                Ok(()) => Counters::bump(&self.counters.in_sent),
                Err(e) => {
                    debug!(topic, "publish failed: {e}");
                    self.lost_in(&topic, InLoss::Failed, "publish failed");
                }
            }
        }
    }

    /// Runs until [`Bridge::stop`]: reads the master's topic list every `poll` and starts an
    /// out thread for each new topic that matches `--out`, that the engine can name and that
    /// has a publisher other than a bridge (a topic only bridges feed is never sent back out).
    pub fn run_out(self: &Arc<Self>, engine: Arc<dyn Engine>) {
        let mut started: HashSet<String> = HashSet::new();
        let mut unnamed: HashSet<String> = HashSet::new();
        let list_log = RateLimited::default();
        while !self.stop.load(Ordering::Relaxed) {
            match self.node.topics() {
                Ok(topics) => {
                    for t in topics {
                        if started.contains(&t) || !any_matches(&self.opts.out, &t) {
                            continue;
                        }
                        let Some(key) = engine.key_for(&t) else {
                            if unnamed.insert(t.clone()) {
                                Counters::bump(&self.counters.out_bad_name);
                                warn!(
                                    topic = t,
                                    "not bridged out: the engine cannot name this topic"
                                );
                            }
                            continue;
                        };
                        match self.node.topic_info(&t) {
                            Ok(info)
                                if info.publishers.iter().any(|p| !p.starts_with("bridge:")) => {}
                            _ => continue,
                        }
                        let b = self.clone();
                        let e = engine.clone();
                        let topic = t.clone();
                        let spawned = std::thread::Builder::new()
                            .name(format!("bridge-out-{t}"))
                            .spawn(move || b.out_loop(&topic, &key, &*e));
                        if spawned.is_ok() {
                            started.insert(t);
                        }
                    }
                }
                // A master away (restarting) or refusing the bridge's credentials: new `--out`
                // topics are not picked up meanwhile; topics already bridged keep their threads.
                Err(e) => {
                    if let Some(n) = list_log.due() {
                        warn!(count = n, "cannot read the master's topic list: {e}");
                    }
                }
            }
            std::thread::sleep(self.opts.poll);
        }
    }

    fn out_loop(&self, topic: &str, key: &str, engine: &dyn Engine) {
        let mut sub = loop {
            match self.node.subscribe(topic) {
                Ok(s) => break s,
                Err(e) => {
                    warn!(topic, "cannot subscribe: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        if let Err(e) = sub.wait_ready(READY_WAIT) {
            warn!(topic, "subscriber not ready yet: {e}");
        }
        engine.open(key);
        let mut schema = None;
        let mut schema_at = Instant::now();
        self.refresh_schema(topic, &sub, &mut schema);
        info!(topic, key, typed = schema.is_some(), "bridging out");
        let c = &self.counters;
        let recv_log = RateLimited::default();
        while !self.stop.load(Ordering::Relaxed) {
            match sub.recv_timeout(Duration::from_millis(500)) {
                Ok(Some(m)) => {
                    if schema_at.elapsed() >= SCHEMA_RECHECK {
                        self.refresh_schema(topic, &sub, &mut schema);
                        schema_at = Instant::now();
                    }
                    if self.echo.is_echo(topic, m.payload()) {
                        Counters::bump(&c.echoes);
                    } else {
                        match engine.send(key, m.payload(), schema.as_ref()) {
                            Ok(()) => Counters::bump(&c.out_sent),
                            Err(e) => {
                                let reason = match e {
                                    SendError::LinkDown => &c.out_link_down,
                                    SendError::QueueFull => &c.out_queue_full,
                                    SendError::Failed => &c.out_failed,
                                };
                                Counters::lose(&c.out_lost, reason, 1);
                                if let Some(n) = self.out_lost_log.due() {
                                    warn!(
                                        topic,
                                        count = n,
                                        "lost messages towards the engine: {e}; {}",
                                        c.line()
                                    );
                                }
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    Counters::bump(&c.out_recv_errors);
                    if let Some(n) = recv_log.due() {
                        warn!(topic, count = n, "receive from the master failed: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Asks the master for `topic`'s schema; keeps the one known when the master does not
    /// answer (away, restarting).
    fn refresh_schema(&self, topic: &str, sub: &Subscriber, schema: &mut Option<Schema>) {
        let now = match sub.schema() {
            Ok(s) => s,
            Err(e) => {
                debug!(topic, "cannot ask the topic's schema: {e}");
                return;
            }
        };
        // Encoded as the master encodes it: postcard is canonical, so these are its bytes.
        let now = match now.map(|s| postcard::to_stdvec(&s)).transpose() {
            Ok(b) => b.map(Schema::from_bytes),
            Err(e) => {
                warn!(topic, "cannot encode the topic's schema: {e}");
                return;
            }
        };
        if now != *schema {
            if let Some(s) = &now {
                info!(
                    topic,
                    schema_bytes = s.bytes.len(),
                    "typed: its schema goes out with each message"
                );
            }
            *schema = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Schema, SchemaError};

    #[test]
    fn schema_text() {
        let s = Schema::from_bytes(vec![0, 1, 2, 255]);
        assert_eq!(Schema::from_text(&s.text), Ok(s));
        assert!(matches!(
            Schema::from_text("not*base64"),
            Err(SchemaError::NotBase64(_))
        ));
        let long = "A".repeat(1000);
        assert_eq!(
            Schema::from_text(&long),
            Err(SchemaError::TooLong { len: 1000 })
        );
    }
}
