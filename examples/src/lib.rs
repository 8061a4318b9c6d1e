//! Example nodes, as functions so that the binaries, the demo and the tests share them.
//!
//! The sensor system mirrors the original ZeROSMQ example: two sensors publish readings, a
//! processor republishes each reading doubled, and a monitor publishes `STOP` on the `command`
//! topic once it has seen enough, which the sensors obey.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zerosmq::{Node, Result};

/// How long nodes wait for the master and for their paths to be live.
pub const WAIT: Duration = Duration::from_secs(5);

/// A sensor reading, sent postcard-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub sensor: u8,
    pub seq: u32,
    pub value: f64,
}

/// Topic names of the sensor system.
pub mod topics {
    pub const COMMAND: &str = "command";
    pub const DOUBLED: &str = "doubled";
    pub fn sensor(id: u8) -> String {
        format!("sensor{id}")
    }
}

/// A node on `master` (`None`: `ZEROSMQ_MASTER` or the default).
pub fn node(name: &str, master: Option<&str>) -> Result<Node> {
    let mut b = Node::builder(name).timeout(WAIT);
    if let Some(m) = master {
        b = b.master(m);
    }
    b.connect()
}

/// Publishes a reading every `period` until a `STOP` arrives on `command`; returns how many
/// readings it sent. Waits for its paths first so no reading is lost.
pub fn sensor(master: Option<&str>, id: u8, period: Duration) -> Result<u32> {
    sensor_on(&node(&sensor_name(id), master)?, id, period)
}

/// The node name of sensor `id`, as in the original.
pub fn sensor_name(id: u8) -> String {
    format!("sensor{id}.py")
}

/// [`sensor`] on a node the caller owns (and may keep after the sensor stopped).
pub fn sensor_on(node: &Node, id: u8, period: Duration) -> Result<u32> {
    let mut readings = node.advertise(&topics::sensor(id))?;
    let mut commands = node.subscribe(topics::COMMAND)?;
    readings.wait_ready(WAIT)?;
    commands.wait_ready(WAIT)?;
    let mut seq = 0u32;
    loop {
        if let Some(cmd) = commands.recv_timeout(period)? {
            if cmd.payload() == b"STOP" {
                return Ok(seq);
            }
        }
        let value = f64::from(id) * 100.0 + f64::from(seq % 50);
        readings.publish_value(&Reading {
            sensor: id,
            seq,
            value,
        })?;
        seq += 1;
    }
}

/// Republishes every reading of sensors 1 and 2 on `doubled`, value doubled, until `STOP`.
/// Returns how many readings it processed.
pub fn processor(master: Option<&str>) -> Result<u32> {
    processor_on(&node("processor.py", master)?)
}

/// [`processor`] on a node the caller owns.
pub fn processor_on(node: &Node) -> Result<u32> {
    let mut doubled = node.advertise(topics::DOUBLED)?;
    let mut inputs = [
        node.subscribe(&topics::sensor(1))?,
        node.subscribe(&topics::sensor(2))?,
    ];
    let mut commands = node.subscribe(topics::COMMAND)?;
    doubled.wait_ready(WAIT)?;
    for s in inputs.iter_mut().chain([&mut commands]) {
        s.wait_ready(WAIT)?;
    }
    let mut count = 0;
    loop {
        if let Some(cmd) = commands.try_recv()? {
            if cmd.payload() == b"STOP" {
                return Ok(count);
            }
        }
        for input in &mut inputs {
            if let Some(msg) = input.recv_timeout(Duration::from_millis(5))? {
                let r: Reading = msg.decode()?;
                doubled.publish_value(&Reading {
                    value: r.value * 2.0,
                    ..r
                })?;
                count += 1;
            }
        }
    }
}

/// Watches `doubled`, hands each reading to `on_reading`, and publishes `STOP` on `command`
/// after `stop_after` readings. Returns the readings it saw.
pub fn monitor(
    master: Option<&str>,
    stop_after: usize,
    on_reading: impl FnMut(&Reading),
) -> Result<Vec<Reading>> {
    monitor_on(&node("monitor.py", master)?, stop_after, on_reading)
}

/// [`monitor`] on a node the caller owns.
pub fn monitor_on(
    node: &Node,
    stop_after: usize,
    mut on_reading: impl FnMut(&Reading),
) -> Result<Vec<Reading>> {
    let mut doubled = node.subscribe(topics::DOUBLED)?;
    let mut command = node.advertise(topics::COMMAND)?;
    doubled.wait_ready(WAIT)?;
    command.wait_ready(WAIT)?;
    let mut seen = Vec::with_capacity(stop_after);
    while seen.len() < stop_after {
        let r: Reading = doubled.recv()?.decode()?;
        on_reading(&r);
        seen.push(r);
    }
    command.publish(b"STOP")?;
    Ok(seen)
}

/// Publishes `hello world N` every `period`, `count` times (forever when `None`).
pub fn talker(master: Option<&str>, period: Duration, count: Option<u64>) -> Result<()> {
    let node = node("talker", master)?;
    let mut chatter = node.advertise("chatter")?;
    chatter.wait_ready(WAIT)?;
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        chatter.publish(format!("hello world {n}").as_bytes())?;
        n += 1;
        std::thread::sleep(period);
    }
    Ok(())
}

/// Prints every `chatter` message, `count` of them (forever when `None`).
pub fn listener(
    master: Option<&str>,
    count: Option<u64>,
    mut on_message: impl FnMut(&str),
) -> Result<()> {
    let node = node("listener", master)?;
    let mut chatter = node.subscribe("chatter")?;
    chatter.wait_ready(WAIT)?;
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        let msg = chatter.recv()?;
        on_message(msg.text().unwrap_or("<binary>"));
        n += 1;
    }
    Ok(())
}
