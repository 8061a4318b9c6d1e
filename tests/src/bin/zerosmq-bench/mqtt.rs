//! mosquitto, started by the bench on 127.0.0.1 and a free port, with rumqttc's sync client at
//! QoS 0 on both ends (topics `bench/NAME`; a subscriber of several topics uses `bench/#`).

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};

use crate::harness::{head, Publish, Receive};

pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Mosquitto {
    pub fn start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir =
            std::env::temp_dir().join(format!("zerosmq-bench-mosquitto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let conf = dir.join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).map_err(|e| e.to_string())?;
        writeln!(
            f,
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest none"
        )
        .map_err(|e| e.to_string())?;
        let bin = ["mosquitto", "/usr/sbin/mosquitto"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("-h")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            })
            .ok_or("mosquitto is not installed (apt-get install -y mosquitto)")?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start mosquitto: {e}"))?;
        let mut m = Mosquitto {
            child,
            port,
            _dir: TempDir(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = m.child.try_wait() {
                return Err(format!("mosquitto exited: {status}"));
            }
            if Instant::now() > deadline {
                return Err("mosquitto did not listen within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(m)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(2 << 20, 2 << 20);
    o.set_request_channel_capacity(10_000);
    o
}

/// Drives a connection until ConnAck (and SubAck when `subscribed`).
fn wait_for(conn: &mut Connection, suback: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut connected = false;
    while Instant::now() < deadline {
        match conn.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                connected = true;
                if !suback {
                    return Ok(());
                }
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if connected => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("mqtt: {e}")),
            Err(_) => {}
        }
    }
    Err("mqtt: no ConnAck/SubAck within 10 s".into())
}

pub fn topic_name(t: &str) -> String {
    format!("bench/{t}")
}

pub struct MqttPub {
    client: Client,
    topics: Vec<String>,
    driver: Option<std::thread::JoinHandle<()>>,
}

impl Publish for MqttPub {
    fn send(&mut self, topic: usize, payload: &[u8]) -> Result<(), String> {
        self.client
            .publish(
                self.topics[topic].as_str(),
                QoS::AtMostOnce,
                false,
                payload.to_vec(),
            )
            .map_err(|e| format!("mqtt publish: {e}"))
    }
}

impl Drop for MqttPub {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
        if let Some(t) = self.driver.take() {
            let _ = t.join();
        }
    }
}

/// A publisher whose connection is driven by a thread of its own.
pub fn publisher(port: u16, id: &str, topics: &[String]) -> Result<MqttPub, String> {
    let (client, mut conn) = Client::new(options(id, port), 10_000);
    wait_for(&mut conn, false)?;
    let driver = std::thread::spawn(move || {
        for event in conn.iter() {
            if event.is_err() {
                return;
            }
        }
    });
    Ok(MqttPub {
        client,
        topics: topics.iter().map(|t| topic_name(t)).collect(),
        driver: Some(driver),
    })
}

pub struct MqttSub {
    _client: Client,
    conn: Connection,
}

/// The head of the next PUBLISH that arrives on `conn` within `timeout`; other events are
/// skipped.
fn next_publish(conn: &mut Connection, timeout: Duration) -> Result<Option<[u8; 8]>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match conn.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => return Ok(Some(head(&p.payload))),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("mqtt: {e}")),
            Err(_) => return Ok(None),
        }
    }
}

impl Receive for MqttSub {
    fn recv(&mut self, timeout: Duration) -> Result<Option<[u8; 8]>, String> {
        next_publish(&mut self.conn, timeout)
    }
}

/// A subscriber of `topics` (one topic exactly, several with `bench/#`), subscribed when this
/// returns.
pub fn subscriber(port: u16, id: &str, topics: &[String]) -> Result<MqttSub, String> {
    let (client, mut conn) = Client::new(options(id, port), 100);
    let filter = match topics {
        [one] => topic_name(one),
        _ => "bench/#".to_owned(),
    };
    client
        .subscribe(filter, QoS::AtMostOnce)
        .map_err(|e| format!("mqtt subscribe: {e}"))?;
    wait_for(&mut conn, true)?;
    Ok(MqttSub {
        _client: client,
        conn,
    })
}

/// An echo/ping endpoint: a client that publishes on one topic and receives another, driven in
/// the receiving thread (publishing only queues; receiving drives the connection).
pub struct MqttPeer {
    client: Client,
    conn: Connection,
    out_topic: String,
}

impl Publish for MqttPeer {
    fn send(&mut self, _topic: usize, payload: &[u8]) -> Result<(), String> {
        self.client
            .publish(
                self.out_topic.as_str(),
                QoS::AtMostOnce,
                false,
                payload.to_vec(),
            )
            .map_err(|e| format!("mqtt publish: {e}"))
    }
}

impl Receive for MqttPeer {
    fn recv(&mut self, timeout: Duration) -> Result<Option<[u8; 8]>, String> {
        next_publish(&mut self.conn, timeout)
    }
}

pub fn peer(port: u16, id: &str, publish: &str, subscribe: &str) -> Result<MqttPeer, String> {
    let (client, mut conn) = Client::new(options(id, port), 100);
    client
        .subscribe(topic_name(subscribe), QoS::AtMostOnce)
        .map_err(|e| format!("mqtt subscribe: {e}"))?;
    wait_for(&mut conn, true)?;
    Ok(MqttPeer {
        client,
        conn,
        out_topic: topic_name(publish),
    })
}
