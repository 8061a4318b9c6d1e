//! The master's Foxglove endpoint (`--foxglove`) against the official protocol client
//! (`@foxglove/ws-protocol` on Node.js): channels for a std publisher's and an original pyzmq
//! node's topics, their payloads as JSON Foxglove decodes, the connection graph, unsubscribing,
//! channels removed with their topic, and client publishing only with `--foxglove-publish`; an
//! embedded node's topic (blocking driver over std TCP) too, in both directions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use zerosmq::Node;
use zerosmq_tests::foxglove::{endpoint_port, FoxgloveClient};
use zerosmq_tests::{wait_until, MasterProcess, PythonPeer, WAIT};

const SENSOR: &str = include_str!("../python/original_sensor.py");

/// A std publisher sending `payload(i)` at a sensor's pace until stopped.
struct Stream {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stream {
    fn start(node: &Node, topic: &str, payload: fn(u64) -> String) -> Stream {
        let mut publisher = node.advertise(topic).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            while !flag.load(Ordering::Relaxed) {
                publisher.publish(payload(i).as_bytes()).unwrap();
                i += 1;
                // A sensor's pace, not a synchronisation: the test waits for what arrives.
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Stream {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The connection graph as the client has it: the first update is the whole graph, later ones
/// replace the topics they name and remove `removedTopics`.
#[derive(Default)]
struct Graph {
    published: BTreeMap<String, BTreeSet<String>>,
    subscribed: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn apply(&mut self, update: &Value) {
        let ids = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        for t in update["publishedTopics"].as_array().into_iter().flatten() {
            let name = t["name"].as_str().unwrap().to_owned();
            self.published.insert(name, ids(&t["publisherIds"]));
        }
        for t in update["subscribedTopics"].as_array().into_iter().flatten() {
            let name = t["name"].as_str().unwrap().to_owned();
            self.subscribed.insert(name, ids(&t["subscriberIds"]));
        }
        for t in update["removedTopics"].as_array().into_iter().flatten() {
            let name = t.as_str().unwrap();
            self.published.remove(name);
            self.subscribed.remove(name);
        }
    }

    fn publishes(&self, topic: &str, node: &str) -> bool {
        self.published.get(topic).is_some_and(|s| s.contains(node))
    }

    fn subscribes(&self, topic: &str, node: &str) -> bool {
        self.subscribed.get(topic).is_some_and(|s| s.contains(node))
    }
}

fn subscribers(observer: &Node, topic: &str) -> Vec<String> {
    observer
        .topic_info(topic)
        .map(|t| t.subscribers)
        .unwrap_or_default()
}

#[test]
fn foxglove_client_sees_topics_payloads_graph_and_publishes() {
    let master = MasterProcess::start(&["--foxglove", "127.0.0.1:0", "--foxglove-publish"]);
    let port = endpoint_port(&master);
    let talker = Node::builder("talker")
        .master(master.endpoint())
        .connect()
        .unwrap();
    let observer = Node::builder("observer")
        .master(master.endpoint())
        .connect()
        .unwrap();
    let temperature = Stream::start(&talker, "temperature", |i| format!("{}", 20 + i % 5));
    let chatter = Stream::start(&talker, "chatter", |i| format!("hello {i}"));
    let mut sensor = PythonPeer::start(SENSOR, &[&master.endpoint(), "pyzmq_sensor"]);
    assert_eq!(sensor.line(), "READY");

    let mut fox = FoxgloveClient::connect(port);
    let info = fox.server_info.clone();
    let caps = info["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("connectionGraph")), "{info}");
    assert!(caps.contains(&json!("clientPublish")), "{info}");
    assert_eq!(info["supportedEncodings"], json!(["json"]));

    // Every topic is a channel with the untyped JSON schema.
    let start = now_ns();
    for topic in ["temperature", "chatter", "pyzmq_sensor"] {
        fox.send(json!({"cmd": "subscribe", "topic": topic}));
    }
    let mut channels = BTreeSet::new();
    while channels.len() < 3 {
        let ad = fox.wait_for("channels of all three topics", |e| e["ev"] == "advertise");
        assert_eq!(ad["encoding"], "json", "{ad}");
        assert_eq!(ad["schemaName"], "zerosmq.Untyped", "{ad}");
        assert_eq!(ad["schemaEncoding"], "jsonschema", "{ad}");
        let schema: Value = serde_json::from_str(ad["schema"].as_str().unwrap()).unwrap();
        assert_eq!(schema["properties"]["value"]["type"], "number", "{ad}");
        channels.insert(ad["topic"].as_str().unwrap().to_owned());
    }
    assert!(
        channels.is_superset(
            &["temperature", "chatter", "pyzmq_sensor"]
                .map(String::from)
                .into()
        ),
        "{channels:?}"
    );

    // Numbers in text (the std publisher's and the original pyzmq node's) arrive as numbers,
    // other text as text, each stamped with its receive time.
    let mut received = BTreeSet::new();
    while received.len() < 3 {
        let m = fox.wait_for("messages on all three topics", |e| e["ev"] == "message");
        let topic = m["topic"].as_str().unwrap().to_owned();
        match topic.as_str() {
            "temperature" => {
                let v = m["data"]["value"].as_f64().expect("a number");
                assert!((20.0..25.0).contains(&v), "{m}");
            }
            "pyzmq_sensor" => {
                let v = m["data"]["value"].as_f64().expect("a number");
                assert_eq!(v % 0.5, 0.0, "{m}");
            }
            "chatter" => {
                let text = m["data"]["text"].as_str().expect("text");
                assert!(text.starts_with("hello "), "{m}");
            }
            other => panic!("message on {other}: {m}"),
        }
        let log_time: u64 = m["logTime"].as_str().unwrap().parse().unwrap();
        assert!(
            (start..=now_ns()).contains(&log_time),
            "log time is not the receive time: {m}"
        );
        received.insert(topic);
    }
    // The endpoint is one subscriber of each topic at the master, named for what it is.
    assert!(subscribers(&observer, "temperature").contains(&"foxglove".to_owned()));

    // The connection graph, from the master's registry.
    fox.send(json!({"cmd": "graph"}));
    let mut graph = Graph::default();
    fox.wait_for("the graph with talker, pySensor and foxglove", |e| {
        if e["ev"] == "graph" {
            graph.apply(e);
        }
        graph.publishes("temperature", "talker")
            && graph.publishes("chatter", "talker")
            && graph.publishes("pyzmq_sensor", "pySensor")
            && graph.subscribes("temperature", "foxglove")
    });

    // Unsubscribing the last client's subscription unsubscribes the endpoint at the master.
    fox.send(json!({"cmd": "unsubscribe", "topic": "chatter"}));
    assert!(
        wait_until(WAIT, || !subscribers(&observer, "chatter")
            .contains(&"foxglove".to_owned()))
        .is_some(),
        "the endpoint still subscribes chatter: {:?}",
        subscribers(&observer, "chatter")
    );
    assert!(subscribers(&observer, "temperature").contains(&"foxglove".to_owned()));

    // A topic that goes away takes its channel with it.
    drop(chatter);
    fox.wait_for("chatter unadvertised", |e| {
        e["ev"] == "unadvertise" && e["topic"] == "chatter"
    });

    // Publishing from Foxglove reaches a std subscriber, as text and as a number in text.
    let mut listener = observer.subscribe("from_foxglove").unwrap();
    listener.wait_ready(WAIT).unwrap();
    fox.send(json!({"cmd": "advertise", "topic": "from_foxglove"}));
    let mut previous: &[u8] = b"";
    for (sent, expected) in [
        (
            json!({"text": "hi from foxglove"}),
            &b"hi from foxglove"[..],
        ),
        (json!({"value": 2.5}), &b"2.5"[..]),
    ] {
        // The endpoint's publisher becomes ready on its own time: resend until one arrives
        // (resends of the previous value may still be on their way).
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "{sent} published from Foxglove never arrived"
            );
            fox.send(json!({"cmd": "send", "topic": "from_foxglove", "json": sent}));
            match listener.recv_timeout(Duration::from_millis(100)).unwrap() {
                Some(m) if m.payload() == expected => break,
                Some(m) => assert_eq!(m.payload(), previous),
                None => {}
            }
        }
        previous = expected;
    }
    drop(temperature);
}

#[test]
fn foxglove_client_publishing_is_refused_without_the_flag() {
    let master = MasterProcess::start(&["--foxglove", "127.0.0.1:0"]);
    let port = endpoint_port(&master);
    let mut fox = FoxgloveClient::connect(port);
    let caps = fox.server_info["capabilities"].clone();
    assert!(
        !caps.as_array().unwrap().contains(&json!("clientPublish")),
        "{caps}"
    );
    fox.send(json!({"cmd": "advertise", "topic": "from_foxglove"}));
    let status = fox.wait_for("a refusal", |e| e["ev"] == "status");
    assert_eq!(status["level"], 2, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("clientPublish"),
        "{status}"
    );
}

/// An embedded node (the no_std client's blocking driver over std TCP) publishes readings that
/// the Foxglove client receives as numbers, and receives what the Foxglove client publishes.
#[test]
fn foxglove_client_sees_an_embedded_node_and_publishes_to_it() {
    let master = MasterProcess::start(&["--foxglove", "127.0.0.1:0", "--foxglove-publish"]);
    let port = endpoint_port(&master);
    let control: std::net::SocketAddr = format!("127.0.0.1:{}", master.port).parse().unwrap();
    let stack = zerosmq_embedded::StdConnect {
        read_timeout: Some(Duration::from_millis(100)),
    };
    let mcu = zerosmq_embedded::Node::new(&stack, control, "mcu").unwrap();
    let mut pub_buf = [0u8; 128];
    let mut reading = mcu.advertise("mcu_temperature", &mut pub_buf).unwrap();
    reading.wait_ready().unwrap();
    let mut sub_buf = [0u8; 256];
    let mut command = mcu.subscribe("mcu_command", &mut sub_buf).unwrap();
    command.wait_ready().unwrap();

    let mut fox = FoxgloveClient::connect(port);
    fox.send(json!({"cmd": "subscribe", "topic": "mcu_temperature"}));
    fox.wait_for("the embedded node's channel", |e| {
        e["ev"] == "advertise" && e["topic"] == "mcu_temperature"
    });
    // Readings at a sensor's pace until one arrives (the endpoint subscribes on its poll).
    let deadline = Instant::now() + WAIT;
    let message = loop {
        assert!(Instant::now() < deadline, "no reading reached Foxglove");
        reading.publish(b"23.5").unwrap();
        if let Some(e) = fox.next_event(Duration::from_millis(50)) {
            if e["ev"] == "message" {
                break e;
            }
        }
    };
    assert_eq!(message["topic"], "mcu_temperature");
    assert_eq!(message["data"]["value"], 23.5, "{message}");

    // Foxglove -> the embedded node: resent until the endpoint's publisher is ready.
    fox.send(json!({"cmd": "advertise", "topic": "mcu_command"}));
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the command never reached the node"
        );
        fox.send(json!({"cmd": "send", "topic": "mcu_command", "json": {"text": "led on"}}));
        match command.recv() {
            Ok(payload) => {
                assert_eq!(payload, b"led on");
                break;
            }
            // The read timeout: nothing yet.
            Err(zerosmq_embedded::Error::TimedOut) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
}
