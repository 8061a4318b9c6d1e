//! Forwards: one zerosmq subscriber per channel that Foxglove clients subscribe, on a thread of
//! its own, started by the first client and stopped when the last one leaves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foxglove::websocket::{Client, Status};
use foxglove::{ChannelId, PartialMetadata, RawChannel};

use crate::{lock, payload, Shared, TopicChannel};

/// How long a forward waits for a message before it looks at its stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// A subscribed channel: how many clients watch it, and the stop flag of its thread.
pub(crate) struct Forward {
    pub(crate) topic: String,
    clients: usize,
    stop: Arc<AtomicBool>,
}

/// A client subscribed `channel`: the first one starts its forward.
pub(crate) fn client_joined(shared: &Arc<Shared>, topic: TopicChannel, client: Client) {
    let TopicChannel {
        raw: channel,
        typed,
    } = topic;
    let mut forwards = lock(&shared.forwards);
    if let Some(f) = forwards.get_mut(&channel.id()) {
        f.clients += 1;
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let topic = channel.topic().to_owned();
    forwards.insert(
        channel.id(),
        Forward {
            topic: topic.clone(),
            clients: 1,
            stop: stop.clone(),
        },
    );
    let node_shared = shared.clone();
    let started = std::thread::Builder::new()
        .name(format!("foxglove-fwd {topic}"))
        .spawn(move || run(&node_shared, &channel, typed.as_deref(), &client, &stop));
    if let Err(e) = started {
        tracing::warn!("Foxglove endpoint: no forward for {topic}: {e}");
    }
}

/// A client left `channel` (unsubscribed, disconnected, or the channel closed): the last one
/// stops its forward, which unsubscribes at the master.
pub(crate) fn client_left(shared: &Shared, channel: ChannelId) {
    let mut forwards = lock(&shared.forwards);
    let Some(f) = forwards.get_mut(&channel) else {
        return;
    };
    f.clients -= 1;
    if f.clients == 0 {
        f.stop.store(true, Ordering::Relaxed);
        forwards.remove(&channel);
    }
}

/// Receives the topic and logs each message to the channel with its receive time. Logging never
/// blocks: the SDK queues per client, so a slow client never holds back this subscriber.
fn run(
    shared: &Shared,
    channel: &RawChannel,
    typed: Option<&zerosmq::json::JsonDecoder>,
    client: &Client,
    stop: &AtomicBool,
) {
    let topic = channel.topic();
    let mut sub = match shared.node.subscribe(topic) {
        Ok(sub) => sub,
        Err(e) => {
            // The first client asked for it; the master's refusal (an ACL, a limit) is its answer.
            client.send_status(Status::error(format!(
                "cannot subscribe {topic} at the master: {e}"
            )));
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Relaxed) {
        match sub.recv_timeout(STOP_CHECK) {
            Ok(Some(msg)) => {
                let log_time = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let json = match typed {
                    None => payload::to_foxglove(msg.payload()),
                    Some(d) => match d.decode(msg.payload()) {
                        Ok(value) => value.to_string().into_bytes(),
                        // Foxglove would fail to parse it against the schema: not sent.
                        Err(e) => {
                            tracing::debug!("Foxglove endpoint: {topic}: {e}");
                            continue;
                        }
                    },
                };
                channel.log_with_meta(
                    &json,
                    PartialMetadata {
                        log_time: Some(log_time),
                    },
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("Foxglove endpoint: {topic}: {e}");
                std::thread::sleep(STOP_CHECK);
            }
        }
    }
}
