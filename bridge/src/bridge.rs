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
use zerosmq::{Node, Publisher};

use crate::counters::Counters;
use crate::echo::EchoFilter;
use crate::glob::{any_matches, Glob};

/// How long a new publisher or subscriber waits for the master to connect it.
const READY_WAIT: Duration = Duration::from_secs(3);

/// Messages waiting for the master writer thread; past this they are counted as lost.
const TO_MASTER_QUEUE: usize = 10_000;

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
    /// Sends one message, or says why it was dropped.
    fn send(&self, key: &str, payload: &[u8]) -> Result<(), SendError>;
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

/// One bridge: a master node and the counters; shared by its threads and the engine's.
pub struct Bridge {
    pub opts: Options,
    pub counters: Counters,
    node: Node,
    echo: EchoFilter,
    to_master: SyncSender<(String, Vec<u8>)>,
    /// Topics brought in so far (bounded by `max_topics`).
    in_topics: Mutex<HashSet<String>>,
    refused_log: RateLimited,
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

    /// A message from the engine: `name` is the key without `PREFIX/`. Checks the name, the
    /// size, the topic budget and the `--in` patterns, then queues it for the master.
    pub fn from_engine(&self, name: &[u8], payload: &[u8]) {
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
            .try_send((topic.to_owned(), payload.to_vec()))
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

    fn lost_in(&self, topic: &str, loss: InLoss, why: &str) {
        let c = &self.counters;
        let reason = match loss {
            InLoss::QueueFull => &c.in_queue_full,
            InLoss::NotReady => &c.in_not_ready,
            InLoss::Failed => &c.in_failed,
        };
        Counters::lose(&c.in_lost, reason, 1);
        if let Some(n) = self.lost_log.due() {
            warn!(
                topic,
                count = n,
                "lost messages from the engine: {why}; {}",
                self.counters.line()
            );
        }
    }

    /// Publishes what the engine brought in, one publisher per topic.
    fn master_writer(&self, rx: Receiver<(String, Vec<u8>)>) {
        let mut pubs: HashMap<String, Publisher> = HashMap::new();
        let mut retry_at: HashMap<String, Instant> = HashMap::new();
        for (topic, payload) in rx {
            if !pubs.contains_key(&topic) {
                if retry_at.get(&topic).is_some_and(|t| Instant::now() < *t) {
                    self.lost_in(&topic, InLoss::NotReady, "no publisher on the master yet");
                    continue;
                }
                match self.node.advertise(&topic) {
                    Ok(mut p) => {
                        if let Err(e) = p.wait_ready(READY_WAIT) {
                            warn!(topic, "publisher not ready yet: {e}");
                        }
                        info!(topic, "bridging in");
                        pubs.insert(topic.clone(), p);
                        retry_at.remove(&topic);
                    }
                    Err(e) => {
                        warn!(topic, "cannot publish into the master: {e}");
                        retry_at.insert(topic.clone(), Instant::now() + Duration::from_secs(1));
                        self.lost_in(&topic, InLoss::NotReady, "no publisher on the master");
                        continue;
                    }
                }
            }
            let Some(p) = pubs.get_mut(&topic) else {
                continue;
            };
            if !p.is_ready().unwrap_or(false) {
                self.lost_in(&topic, InLoss::NotReady, "the master is not connected");
                continue;
            }
            self.echo.expect(&topic, &payload);
            match p.publish(&payload) {
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
        info!(topic, key, "bridging out");
        let c = &self.counters;
        let recv_log = RateLimited::default();
        while !self.stop.load(Ordering::Relaxed) {
            match sub.recv_timeout(Duration::from_millis(500)) {
                Ok(Some(m)) => {
                    if self.echo.is_echo(topic, m.payload()) {
                        Counters::bump(&c.echoes);
                    } else {
                        match engine.send(key, m.payload()) {
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
}
