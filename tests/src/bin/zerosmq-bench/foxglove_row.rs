//! The Foxglove row: the master's 1 KiB throughput to a std subscriber while one Foxglove
//! WebSocket client subscribes the same topic at full rate, beside the same run without it,
//! and the rate that client receives (the endpoint drops the oldest for a slow client).
//!
//! The client speaks the protocol (`foxglove.sdk.v1`, formerly `foxglove.websocket.v1`) over
//! `tungstenite`: it waits for the topic's `advertise`, subscribes, and counts the binary
//! `messageData` frames.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::harness::{self, Load, Receive, Throughput};
use crate::{spawn_master, std_clients};

/// The 1 KiB throughput without and with the Foxglove client, and what the client received.
pub struct FoxgloveRow {
    pub without: Throughput,
    pub with: Throughput,
    pub client_msgs_per_s: f64,
}

pub fn measure(duration: Duration) -> Result<FoxgloveRow, String> {
    let load = Load {
        payload: 1024,
        topics: 1,
        subscribers: 1,
        duration,
    };
    let without = run(load, false)?.0;
    let (with, client) = run(load, true)?;
    Ok(FoxgloveRow {
        without,
        with,
        client_msgs_per_s: client,
    })
}

fn run(load: Load, foxglove: bool) -> Result<(Throughput, f64), String> {
    let master = spawn_master()?;
    let ep = master.control_endpoint();
    let topics = vec!["t0000".to_owned()];
    let endpoint = if foxglove {
        let config = zerosmq_foxglove::FoxgloveConfig::new("127.0.0.1", 0, ep.clone());
        Some(zerosmq_foxglove::FoxgloveEndpoint::start(config).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let sub_node = std_clients::node(&ep, "bench-sub0", None)?;
    let subs: Vec<Box<dyn Receive>> = vec![Box::new(std_clients::subscriber(&sub_node, &topics)?)];
    let pub_node = std_clients::node(&ep, "bench-pub", None)?;
    let mut publisher = std_clients::publisher(&pub_node, &topics)?;
    let counted = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = match &endpoint {
        Some(e) => {
            let mut ws = connect(e.port())?;
            subscribe(&mut ws, &topics[0])?;
            let (counted, stop) = (counted.clone(), stop.clone());
            Some(std::thread::spawn(move || count(ws, &counted, &stop)))
        }
        None => None,
    };
    if client.is_some() {
        // Until the client gets its first message, the endpoint's subscription is not up yet.
        let deadline = Instant::now() + Duration::from_secs(10);
        while counted.load(Ordering::Relaxed) == 0 {
            if Instant::now() > deadline {
                return Err("the Foxglove client received nothing in 10 s".into());
            }
            harness::Publish::send(&mut publisher, 0, &[b'W'; 16])?;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let before = counted.load(Ordering::Relaxed);
    let started = Instant::now();
    let result = harness::throughput(load, Box::new(publisher), subs)?;
    let client_rate =
        (counted.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(c) = client {
        let _ = c.join();
    }
    drop(endpoint);
    Ok((result, client_rate))
}

fn connect(port: u16) -> Result<WebSocket<TcpStream>, String> {
    let mut request = format!("ws://127.0.0.1:{port}/")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "foxglove.sdk.v1".parse().map_err(|_| "header")?,
    );
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client(request, stream).map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Waits for the channel of `topic` (the endpoint polls the master's topics) and subscribes it.
fn subscribe(ws: &mut WebSocket<TcpStream>, topic: &str) -> Result<(), String> {
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    loop {
        let msg = ws
            .read()
            .map_err(|e| format!("waiting for {topic}'s channel: {e}"))?;
        let Message::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if v["op"] != "advertise" {
            continue;
        }
        let Some(channel) = v["channels"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["topic"] == topic)
        else {
            continue;
        };
        let sub = serde_json::json!({
            "op": "subscribe",
            "subscriptions": [{"id": 1, "channelId": channel["id"]}],
        });
        ws.send(Message::text(sub.to_string()))
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
}

/// Counts `messageData` frames (binary, opcode 1) until `stop`.
fn count(mut ws: WebSocket<TcpStream>, counted: &AtomicU64, stop: &AtomicBool) {
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)));
    while !stop.load(Ordering::Relaxed) {
        match ws.read() {
            Ok(Message::Binary(b)) if b.first() == Some(&1) => {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
    let _ = ws.close(None);
}
