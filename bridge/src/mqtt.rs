//! The MQTT engine: one MQTT 5 connection (rumqttc) to a broker.
//!
//! - Topic `T` is published as `PREFIX/T`; the bridge subscribes `PREFIX/#` and brings in what
//!   its `--in` patterns match.
//! - Origin mark: every message it publishes carries the user property
//!   `zerosmq-bridge = BRIDGE_ID`; it subscribes with No Local (MQTT 5), and drops a message with
//!   its own id should a broker deliver one anyway. Other bridges' messages are taken.
//! - Typed topics: a message carries content type `application/postcard` and the user property
//!   `zerosmq-schema` = base64 of the topic's schema (see [`Schema`]); a message arriving with
//!   that property is published into the master as a typed topic.
//! - Session: clean start off with a session expiry, so a broker that keeps sessions (mosquitto
//!   with `persistence true`) queues QoS 1 messages for the bridge while it is away, and the
//!   bridge resends its unacknowledged QoS 1 messages after a reconnect.
//! - Loss: while the broker is unreachable a message from the master is dropped and counted;
//!   when the broker comes back without the bridge's session, the QoS 1 messages it had not
//!   acknowledged are counted lost too. QoS 0 messages in the socket when it broke are lost
//!   without a count (at most once).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, ClientError, Connection, Event, MqttOptions};
use rumqttc::{Outgoing, Transport};
use tracing::{info, warn};

use crate::bridge::{Bridge, Engine, RateLimited, Schema, SendError, CONTENT_TYPE};
use crate::counters::Counters;

/// The user property that marks a message's origin bridge.
pub const ORIGIN_PROPERTY: &str = "zerosmq-bridge";

/// The user property with a typed topic's schema (base64, see [`Schema`]).
pub const SCHEMA_PROPERTY: &str = "zerosmq-schema";

/// Largest MQTT packet the bridge accepts from the broker (and tells it in CONNECT). Payloads
/// over `--max-payload` but under this are refused by the bridge with a count and a log line.
pub const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// Requests queued towards the broker; past this a message is counted as lost.
const QUEUE: usize = 10_000;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// 0 or 1.
    pub qos: u8,
    pub credentials: Option<(String, String)>,
    pub client_id: String,
    pub keep_alive: Duration,
    /// How long the broker keeps the session after a disconnect.
    pub session_expiry: u32,
    /// `mqtts://`: TLS (rustls) with these certificates.
    pub tls: Option<Tls>,
}

/// A broker address: `mqtt://HOST:PORT` (or `HOST:PORT`, or `HOST` for port 1883), or
/// `mqtts://HOST:PORT` for TLS (port 8883 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Parses a broker address (see [`BrokerUrl`]).
pub fn parse_url(url: &str) -> Result<BrokerUrl, String> {
    let (rest, tls) = match url.strip_prefix("mqtts://") {
        Some(r) => (r, true),
        None => (url.strip_prefix("mqtt://").unwrap_or(url), false),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "invalid MQTT address '{url}' (expected mqtt://HOST:PORT or mqtts://HOST:PORT)"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (
            h.to_owned(),
            p.parse().map_err(|_| format!("invalid port in '{url}'"))?,
        ),
        Some(_) => return Err(format!("invalid MQTT address '{url}'")),
        None => (rest.to_owned(), if tls { 8883 } else { 1883 }),
    };
    Ok(BrokerUrl { host, port, tls })
}

/// TLS towards the broker (`mqtts://`).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// CA certificates (PEM) the broker's certificate must chain to; `None`: the system's.
    pub ca: Option<Vec<u8>>,
    /// The bridge's certificate and private key (PEM), for a broker that asks for one.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

/// The MQTT side of a bridge.
pub struct Mqtt {
    client: Client,
    prefix: String,
    qos: QoS,
    origin: String,
    up: AtomicBool,
    /// Messages handed to rumqttc, and those it finished (QoS 0 written, QoS 1 acknowledged).
    handed: AtomicU64,
    done: AtomicU64,
}

impl Mqtt {
    /// Connects (in the background: the event loop thread retries until the broker answers)
    /// and starts bringing messages in to `bridge`.
    pub fn start(
        config: MqttConfig,
        origin: String,
        bridge: Arc<Bridge>,
    ) -> std::io::Result<Arc<Mqtt>> {
        let mut opts = MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
        opts.set_keep_alive(config.keep_alive)
            .set_clean_start(false)
            .set_session_expiry_interval(Some(config.session_expiry))
            .set_max_packet_size(Some(MAX_PACKET))
            .set_request_channel_capacity(QUEUE);
        // Without TCP_NODELAY a QoS 1 PUBACK waits behind Nagle and the peer's delayed ACK:
        // ~100 ms more per round trip through two bridges (measured in tests/bench.rs).
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        opts.set_network_options(net);
        if let Some((u, p)) = &config.credentials {
            opts.set_credentials(u.clone(), p.clone());
        }
        if let Some(tls) = &config.tls {
            // rumqttc builds its rustls configuration with the process's default provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            opts.set_transport(match &tls.ca {
                Some(ca) => Transport::tls(ca.clone(), tls.client_auth.clone(), None),
                None => Transport::tls_with_default_config(),
            });
        }
        let (client, connection) = Client::new(opts, QUEUE);
        let mqtt = Arc::new(Mqtt {
            client,
            prefix: bridge.opts.prefix.clone(),
            qos: if config.qos >= 1 {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            origin,
            up: AtomicBool::new(false),
            handed: AtomicU64::new(0),
            done: AtomicU64::new(0),
        });
        let m = mqtt.clone();
        let scheme = if config.tls.is_some() {
            "mqtts"
        } else {
            "mqtt"
        };
        let address = format!("{scheme}://{}:{}", config.host, config.port);
        std::thread::Builder::new()
            .name("bridge-mqtt".into())
            .spawn(move || m.event_loop(connection, &bridge, &address))?;
        Ok(mqtt)
    }

    fn event_loop(&self, mut connection: Connection, bridge: &Bridge, address: &str) {
        let c = &bridge.counters;
        // Messages not finished when the link broke: lost if the broker lost the session.
        let mut unsettled = 0u64;
        let connect_log = RateLimited::default();
        let head = format!("{}/", self.prefix);
        loop {
            let event = match connection.recv() {
                Ok(e) => e,
                Err(_) => return, // every client handle is gone
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if !ack.session_present && unsettled > 0 {
                        Counters::lose(&c.out_lost, &c.out_session_lost, unsettled);
                        self.done.fetch_add(unsettled, Ordering::Relaxed);
                        warn!(
                            lost = unsettled,
                            "the broker did not keep the session: unacknowledged messages are lost"
                        );
                    }
                    unsettled = 0;
                    let mut filter = Filter::new(format!("{}/#", self.prefix), self.qos);
                    filter.nolocal = true;
                    if let Err(e) = self.client.try_subscribe_many(vec![filter]) {
                        warn!("cannot subscribe on the broker: {e}");
                    }
                    self.up.store(true, Ordering::Release);
                    Counters::bump(&c.engine_connects);
                    info!(
                        broker = address,
                        session_present = ack.session_present,
                        "mqtt connected; {}",
                        c.line()
                    );
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => info!("mqtt subscribed {head}#"),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let props = p
                        .properties
                        .as_ref()
                        .map(|props| &props.user_properties[..]);
                    let property = |name: &str| {
                        props
                            .unwrap_or_default()
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.as_str())
                    };
                    let own = property(ORIGIN_PROPERTY) == Some(self.origin.as_str());
                    if own {
                        Counters::bump(&c.engine_echoes);
                    } else if let Some(name) = p.topic.strip_prefix(head.as_bytes()) {
                        bridge.from_engine(name, &p.payload, property(SCHEMA_PROPERTY));
                    } else {
                        Counters::bump(&c.in_bad_name);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) if self.qos == QoS::AtLeastOnce => {
                    self.done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(Outgoing::Publish(_))) if self.qos == QoS::AtMostOnce => {
                    self.done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    if !self.up.load(Ordering::Acquire) {
                        // Not connected yet or again: a refused TLS certificate or login, or no
                        // broker listening; rumqttc retries.
                        if let Some(n) = connect_log.due() {
                            warn!(broker = address, count = n, "mqtt cannot connect: {e}");
                        }
                    }
                    if self.up.swap(false, Ordering::AcqRel) {
                        let handed = self.handed.load(Ordering::Relaxed);
                        let done = self.done.load(Ordering::Relaxed);
                        unsettled = handed.saturating_sub(done);
                        warn!(
                            broker = address,
                            unsettled,
                            "mqtt link down: {e}; {}",
                            c.line()
                        );
                    }
                    // rumqttc reconnects on the next poll; do not spin against a dead broker.
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
    }
}

/// Whether an MQTT topic name may carry this (a zerosmq topic may hold `+` or `#`).
fn mqtt_topic_ok(topic: &str) -> bool {
    !topic.contains(['+', '#'])
}

impl Engine for Mqtt {
    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn key_for(&self, topic: &str) -> Option<String> {
        mqtt_topic_ok(topic).then(|| format!("{}/{topic}", self.prefix))
    }

    fn unsettled(&self) -> u64 {
        let done = self.done.load(Ordering::Relaxed);
        self.handed.load(Ordering::Relaxed).saturating_sub(done)
    }

    fn send(&self, key: &str, payload: &[u8], schema: Option<&Schema>) -> Result<(), SendError> {
        if !self.up.load(Ordering::Acquire) {
            return Err(SendError::LinkDown);
        }
        let mut props = PublishProperties {
            user_properties: vec![(ORIGIN_PROPERTY.to_owned(), self.origin.clone())],
            ..Default::default()
        };
        if let Some(s) = schema {
            props.content_type = Some(CONTENT_TYPE.to_owned());
            props
                .user_properties
                .push((SCHEMA_PROPERTY.to_owned(), s.text.clone()));
        }
        match self
            .client
            .try_publish_with_properties(key, self.qos, false, payload.to_vec(), props)
        {
            Ok(()) => {
                self.handed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            // The broker does not take messages as fast as they come (QoS 1: its receive
            // maximum of unacknowledged messages is reached) and the request queue filled up.
            Err(ClientError::TryRequest(_)) if self.up.load(Ordering::Acquire) => {
                Err(SendError::QueueFull)
            }
            Err(_) => Err(SendError::LinkDown),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls() {
        use super::{parse_url, BrokerUrl};
        let url = |host: &str, port, tls| BrokerUrl {
            host: host.into(),
            port,
            tls,
        };
        assert_eq!(parse_url("mqtt://h:1884").unwrap(), url("h", 1884, false));
        assert_eq!(parse_url("h").unwrap(), url("h", 1883, false));
        assert_eq!(parse_url("mqtts://h").unwrap(), url("h", 8883, true));
        assert_eq!(parse_url("mqtts://h:9").unwrap(), url("h", 9, true));
        assert!(parse_url("mqtt://").is_err());
        assert!(parse_url("mqtt://h:x").is_err());
    }
}
