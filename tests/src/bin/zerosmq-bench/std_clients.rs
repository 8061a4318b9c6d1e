//! Our own std client at both ends: a `Publisher` per topic, a `Subscriber` per topic, both
//! waiting for their path (`wait_ready`) before the run starts.

use std::time::{Duration, Instant};

use zerosmq::{Node, Publisher, Subscriber};

use crate::harness::{head, Publish, Receive};

pub struct StdPub {
    publishers: Vec<Publisher>,
    _node: Node,
}

impl Publish for StdPub {
    fn send(&mut self, topic: usize, payload: &[u8]) -> Result<(), String> {
        self.publishers[topic]
            .publish(payload)
            .map_err(|e| e.to_string())
    }
}

pub struct StdSub {
    subscribers: Vec<Subscriber>,
    /// Where the round-robin over topics continues.
    next: usize,
    _node: Node,
}

impl Receive for StdSub {
    fn recv(&mut self, timeout: Duration) -> Result<Option<[u8; 8]>, String> {
        if let [only] = &mut self.subscribers[..] {
            return only
                .recv_timeout(timeout)
                .map(|m| m.map(|m| head(m.payload())))
                .map_err(|e| e.to_string());
        }
        // Several topics: one sweep without waiting, then short waits on each in turn.
        let n = self.subscribers.len();
        for _ in 0..n {
            let s = &mut self.subscribers[self.next];
            self.next = (self.next + 1) % n;
            if let Some(m) = s.try_recv().map_err(|e| e.to_string())? {
                return Ok(Some(head(m.payload())));
            }
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let s = &mut self.subscribers[self.next];
            self.next = (self.next + 1) % n;
            if let Some(m) = s
                .recv_timeout(Duration::from_micros(200))
                .map_err(|e| e.to_string())?
            {
                return Ok(Some(head(m.payload())));
            }
        }
        Ok(None)
    }
}

/// A node on `master`; with `curve` (the master's public key) every connection is CURVE, with
/// an ephemeral client key pair.
pub fn node(master: &str, name: &str, curve: Option<&str>) -> Result<Node, String> {
    let mut builder = Node::builder(name)
        .master(master)
        .timeout(Duration::from_secs(10));
    if let Some(key) = curve {
        builder = builder.curve(key, None);
    }
    builder.connect().map_err(|e| e.to_string())
}

const READY: Duration = Duration::from_secs(10);

pub fn publisher(node: &Node, topics: &[String]) -> Result<StdPub, String> {
    let node = node.clone();
    let mut publishers = Vec::with_capacity(topics.len());
    for t in topics {
        publishers.push(
            node.advertise(t)
                .map_err(|e| format!("advertise {t}: {e}"))?,
        );
    }
    for p in &mut publishers {
        p.wait_ready(READY).map_err(|e| e.to_string())?;
    }
    Ok(StdPub {
        publishers,
        _node: node,
    })
}

pub fn subscriber(node: &Node, topics: &[String]) -> Result<StdSub, String> {
    let node = node.clone();
    let mut subscribers = Vec::with_capacity(topics.len());
    for t in topics {
        subscribers.push(
            node.subscribe(t)
                .map_err(|e| format!("subscribe {t}: {e}"))?,
        );
    }
    for s in &mut subscribers {
        s.wait_ready(READY).map_err(|e| e.to_string())?;
    }
    Ok(StdSub {
        subscribers,
        next: 0,
        _node: node,
    })
}
