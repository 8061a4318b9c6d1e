//! Echo cancellation: the bridge subscribes to the topics it sends out, and on a topic that it
//! also brings in, the master hands it back its own messages. It remembers what it put in (a
//! hash per message, per topic) and drops the first message that matches.
//!
//! zerosmq frames carry no header to mark an origin, so the match is by content. Two byte-equal
//! messages cannot be told apart, and need not be: dropping either one sends the same bytes out.
//! A message the master never handed back (a subscriber overflow) is forgotten when a later one
//! matches, or after [`ECHO_TTL`].

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an injected message is expected back.
pub const ECHO_TTL: Duration = Duration::from_secs(5);

/// How many of a topic's expected messages a match is looked for in (the master keeps one
/// publisher's order, so ours come back in order, interleaved with others').
const SEARCH: usize = 64;

/// Most expected messages kept per topic.
const CAP: usize = 65_536;

/// What the bridge put into the master and expects back.
#[derive(Default)]
pub struct EchoFilter {
    topics: Mutex<HashMap<String, VecDeque<(u64, Instant)>>>,
}

fn digest(payload: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    payload.hash(&mut h);
    h.finish()
}

impl EchoFilter {
    /// Notes that the bridge is about to publish `payload` on `topic`.
    pub fn expect(&self, topic: &str, payload: &[u8]) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let q = topics.entry(topic.to_owned()).or_default();
        if q.len() >= CAP {
            q.pop_front();
        }
        q.push_back((digest(payload), Instant::now()));
    }

    /// Whether `payload` received on `topic` is one the bridge put in (and forgets it).
    pub fn is_echo(&self, topic: &str, payload: &[u8]) -> bool {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = topics.get_mut(topic) else {
            return false;
        };
        let now = Instant::now();
        while q
            .front()
            .is_some_and(|(_, t)| now.duration_since(*t) > ECHO_TTL)
        {
            q.pop_front();
        }
        let d = digest(payload);
        match q.iter().take(SEARCH).position(|(h, _)| *h == d) {
            Some(i) => {
                q.drain(..=i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EchoFilter;

    #[test]
    fn own_messages_once() {
        let f = EchoFilter::default();
        f.expect("t", b"a");
        f.expect("t", b"b");
        assert!(!f.is_echo("t", b"local"));
        assert!(!f.is_echo("u", b"a"));
        assert!(f.is_echo("t", b"a"));
        assert!(!f.is_echo("t", b"a"), "only as often as it was put in");
        assert!(f.is_echo("t", b"b"));
        // A lost echo is skipped when a later one matches.
        f.expect("t", b"c");
        f.expect("t", b"d");
        assert!(f.is_echo("t", b"d"));
        assert!(!f.is_echo("t", b"c"));
    }
}
