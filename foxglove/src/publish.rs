//! Client publishing (`clientPublish`, only with `--foxglove-publish`): each channel a client
//! advertises gets a zerosmq publisher of the endpoint's node, so the master's ACL judges the
//! node's identity, on a thread of its own fed by a bounded queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use foxglove::websocket::{Client, ClientChannel, ClientChannelId, ClientId, Status};

use crate::{lock, payload, Shared};

/// How long a new publisher waits for the master's socket before its first message.
const READY_WAIT: Duration = Duration::from_secs(5);

/// A client's channel.
pub(crate) type Key = (ClientId, ClientChannelId);

/// The way into a publishing thread, and what was dropped because it was full.
pub(crate) struct Queue {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

pub(crate) fn advertised(shared: &Arc<Shared>, client: Client, channel: &ClientChannel) {
    let (tx, rx) = sync_channel(shared.backlog);
    let dropped = Arc::new(AtomicU64::new(0));
    lock(&shared.publishers).insert((client.id(), channel.id), Queue { tx, dropped });
    let topic = channel.topic.clone();
    let json = channel.encoding == payload::UNTYPED_ENCODING;
    let node_shared = shared.clone();
    let started = std::thread::Builder::new()
        .name(format!("foxglove-pub {topic}"))
        .spawn(move || run(&node_shared, &topic, json, &client, &rx));
    if let Err(e) = started {
        tracing::warn!("Foxglove endpoint: no publisher for {}: {e}", channel.topic);
    }
}

/// Dropping the queue ends its thread, which drops the publisher.
pub(crate) fn unadvertised(shared: &Shared, client: &Client, channel: &ClientChannel) {
    lock(&shared.publishers).remove(&(client.id(), channel.id));
}

/// Never blocks the client's loop: a full queue drops the message and says so, at the first
/// drop and at every power of two after it.
pub(crate) fn message(shared: &Shared, client: &Client, channel: &ClientChannel, data: &[u8]) {
    let publishers = lock(&shared.publishers);
    let Some(queue) = publishers.get(&(client.id(), channel.id)) else {
        return;
    };
    match queue.tx.try_send(data.to_vec()) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            let n = queue.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                client.send_status(Status::warning(format!(
                    "{}: {n} messages dropped: the endpoint's queue to the master is full",
                    channel.topic
                )));
            }
        }
        // The publisher was refused; its thread already told the client.
        Err(TrySendError::Disconnected(_)) => {}
    }
}

fn run(shared: &Shared, topic: &str, json: bool, client: &Client, rx: &Receiver<Vec<u8>>) {
    let mut publisher = match shared.node.advertise(topic) {
        Ok(p) => p,
        Err(e) => {
            client.send_status(Status::error(format!(
                "cannot publish {topic} at the master: {e}"
            )));
            return;
        }
    };
    // Messages wait in the queue until the master's socket takes them, so the first ones are
    // not lost to the slow-joiner effect.
    if let Err(e) = publisher.wait_ready(READY_WAIT) {
        client.send_status(Status::error(format!(
            "cannot publish {topic} at the master: {e}"
        )));
        return;
    }
    while let Ok(data) = rx.recv() {
        let out = if json {
            payload::from_foxglove(&data)
        } else {
            data
        };
        if let Err(e) = publisher.publish(&out) {
            client.send_status(Status::error(format!("publishing {topic} failed: {e}")));
            return;
        }
    }
}
