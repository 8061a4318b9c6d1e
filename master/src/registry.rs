//! Who publishes and subscribes what, and what each topic carried: pure data, no sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use zerosmq_core::{NodeName, Topic};

/// Counters the forwarder keeps per topic.
#[derive(Debug, Clone, Default)]
pub struct TopicCounters {
    /// Whole messages forwarded.
    pub messages: u64,
    /// Bytes forwarded, all frames.
    pub bytes: u64,
    /// Times a subscriber's queue overflowed and it started missing messages.
    pub overflows: u64,
    /// When the last message was forwarded.
    pub last_activity: Option<Instant>,
}

/// One topic's users.
#[derive(Debug, Clone, Default)]
pub struct TopicEntry {
    pub publishers: BTreeSet<NodeName>,
    pub subscribers: BTreeSet<NodeName>,
}

impl TopicEntry {
    /// No publisher and no subscriber: the topic's sockets can go.
    pub fn is_unused(&self) -> bool {
        self.publishers.is_empty() && self.subscribers.is_empty()
    }
}

/// One node's roles.
#[derive(Debug, Clone, Default)]
pub struct NodeEntry {
    pub publishes: BTreeSet<Topic>,
    pub subscribes: BTreeSet<Topic>,
}

/// Which role a registration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
}

/// A node instance that sends heartbeats.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub session: u64,
    pub last_seen: Instant,
}

/// Session of a node restored from a state file: the first heartbeat under its name, from any
/// session, takes it over with its roles (sessions are random and never 0 in practice).
pub const RESTORED_SESSION: u64 = 0;

/// What a heartbeat did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    /// First heartbeat of this session for a free name.
    Claimed,
    /// A later heartbeat of the same session.
    Refreshed,
    /// The name's previous session had gone silent; its roles were dropped and these topics
    /// lost their last user.
    Replaced { closed: Vec<Topic> },
}

/// The name is held by another session that is still alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameInUse {
    /// How long ago the holder was last heard from.
    pub last_seen_ago: std::time::Duration,
}

/// The graph of nodes and topics. Sorted maps keep every listing stable.
#[derive(Debug, Default)]
pub struct Registry {
    topics: BTreeMap<Topic, TopicEntry>,
    nodes: BTreeMap<NodeName, NodeEntry>,
    /// Nodes that send heartbeats; the others (original nodes) are never expired.
    liveness: BTreeMap<NodeName, Liveness>,
}

impl Registry {
    /// Records that `node` plays `role` on `topic` (idempotent).
    pub fn add(&mut self, node: &NodeName, topic: &Topic, role: Role) {
        let t = self.topics.entry(topic.clone()).or_default();
        let n = self.nodes.entry(node.clone()).or_default();
        match role {
            Role::Publisher => {
                t.publishers.insert(node.clone());
                n.publishes.insert(topic.clone());
            }
            Role::Subscriber => {
                t.subscribers.insert(node.clone());
                n.subscribes.insert(topic.clone());
            }
        }
    }

    /// Removes `node`'s `role` on `topic` (idempotent). Returns true when the topic has no user
    /// left and was dropped from the registry. A node with no role left is dropped too.
    pub fn remove(&mut self, node: &NodeName, topic: &Topic, role: Role) -> bool {
        if let Some(n) = self.nodes.get_mut(node) {
            match role {
                Role::Publisher => n.publishes.remove(topic),
                Role::Subscriber => n.subscribes.remove(topic),
            };
            if n.publishes.is_empty() && n.subscribes.is_empty() {
                self.nodes.remove(node);
            }
        }
        let Some(t) = self.topics.get_mut(topic) else {
            return false;
        };
        match role {
            Role::Publisher => t.publishers.remove(node),
            Role::Subscriber => t.subscribers.remove(node),
        };
        if t.is_unused() {
            self.topics.remove(topic);
            return true;
        }
        false
    }

    /// Records a heartbeat of `node` from `session` at `now`. Another session may take the name
    /// only when the holder has been silent for `timeout` (it crashed), and then replaces it.
    pub fn heartbeat(
        &mut self,
        node: &NodeName,
        session: u64,
        now: Instant,
        timeout: std::time::Duration,
    ) -> Result<Heartbeat, NameInUse> {
        let outcome = match self.liveness.get(node) {
            None => Heartbeat::Claimed,
            Some(l) if l.session == session || l.session == RESTORED_SESSION => {
                Heartbeat::Refreshed
            }
            Some(l) => {
                let ago = now.saturating_duration_since(l.last_seen);
                if ago < timeout {
                    return Err(NameInUse { last_seen_ago: ago });
                }
                Heartbeat::Replaced {
                    closed: self.remove_node(node),
                }
            }
        };
        self.liveness.insert(
            node.clone(),
            Liveness {
                session,
                last_seen: now,
            },
        );
        Ok(outcome)
    }

    /// Drops nodes whose last heartbeat is `timeout` or more before `now`, with all their roles.
    /// Returns each dropped node and the topics that lost their last user.
    pub fn expire(
        &mut self,
        now: Instant,
        timeout: std::time::Duration,
    ) -> Vec<(NodeName, Vec<Topic>)> {
        let dead: Vec<NodeName> = self
            .liveness
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_seen) >= timeout)
            .map(|(n, _)| n.clone())
            .collect();
        dead.into_iter()
            .map(|n| {
                self.liveness.remove(&n);
                let closed = self.remove_node(&n);
                (n, closed)
            })
            .collect()
    }

    /// When the next node expires, if any sends heartbeats.
    pub fn next_expiry(&self, timeout: std::time::Duration) -> Option<Instant> {
        self.liveness.values().map(|l| l.last_seen + timeout).min()
    }

    /// Removes every role of `node`; returns the topics that lost their last user.
    pub fn remove_node(&mut self, node: &NodeName) -> Vec<Topic> {
        let Some(entry) = self.nodes.get(node).cloned() else {
            return Vec::new();
        };
        let mut closed = Vec::new();
        for (topics, role) in [
            (entry.publishes, Role::Publisher),
            (entry.subscribes, Role::Subscriber),
        ] {
            for t in topics {
                if self.remove(node, &t, role) {
                    closed.push(t);
                }
            }
        }
        closed
    }

    /// Marks `node`, restored from a state file, as one that sends heartbeats: it keeps its roles
    /// if any session heartbeats under its name within the timeout, and is dropped otherwise.
    pub fn restore_live(&mut self, node: &NodeName, now: Instant) {
        self.liveness.insert(
            node.clone(),
            Liveness {
                session: RESTORED_SESSION,
                last_seen: now,
            },
        );
    }

    /// Nodes that send heartbeats.
    pub fn live_nodes(&self) -> impl Iterator<Item = &NodeName> {
        self.liveness.keys()
    }

    /// Whether `node` sends heartbeats.
    pub fn liveness(&self, node: &NodeName) -> Option<&Liveness> {
        self.liveness.get(node)
    }

    pub fn topic(&self, topic: &Topic) -> Option<&TopicEntry> {
        self.topics.get(topic)
    }

    pub fn node(&self, node: &NodeName) -> Option<&NodeEntry> {
        self.nodes.get(node)
    }

    pub fn topics(&self) -> impl Iterator<Item = (&Topic, &TopicEntry)> {
        self.topics.iter()
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&NodeName, &NodeEntry)> {
        self.nodes.iter()
    }

    /// Topics that have at least one publisher, joined by `,` (the original's `LIST_ALL_TOPICS`).
    pub fn published_topics(&self) -> String {
        join(
            self.topics
                .iter()
                .filter(|(_, e)| !e.publishers.is_empty())
                .map(|(t, _)| t.as_str()),
        )
    }

    /// All node names joined by `,`.
    pub fn node_names(&self) -> String {
        join(self.nodes.keys().map(|n| n.as_str()))
    }
}

/// Joins names with `,`, the list separator of the control protocol.
pub fn join<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }
    fn t(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    #[test]
    fn tracks_roles_and_drops_unused_topics_and_nodes() {
        let mut r = Registry::default();
        r.add(&n("a"), &t("x"), Role::Publisher);
        r.add(&n("a"), &t("x"), Role::Publisher);
        r.add(&n("b"), &t("x"), Role::Subscriber);
        r.add(&n("b"), &t("y"), Role::Subscriber);
        assert_eq!(r.published_topics(), "x");
        assert_eq!(r.node_names(), "a,b");
        assert_eq!(r.topic(&t("x")).unwrap().publishers.len(), 1);
        assert!(!r.remove(&n("a"), &t("x"), Role::Publisher));
        assert_eq!(r.published_topics(), "");
        assert_eq!(r.node_names(), "b");
        assert!(r.remove(&n("b"), &t("x"), Role::Subscriber));
        assert!(r.topic(&t("x")).is_none());
        assert!(!r.remove(&n("zz"), &t("nope"), Role::Publisher));
        assert!(r.remove(&n("b"), &t("y"), Role::Subscriber));
        assert_eq!(r.node_names(), "");
    }

    #[test]
    fn heartbeats_claim_names_expire_silent_nodes_and_let_them_be_replaced() {
        use std::time::Duration;
        let timeout = Duration::from_secs(3);
        let t0 = Instant::now();
        let mut r = Registry::default();
        assert_eq!(r.heartbeat(&n("a"), 1, t0, timeout), Ok(Heartbeat::Claimed));
        r.add(&n("a"), &t("x"), Role::Publisher);
        assert_eq!(
            r.heartbeat(&n("a"), 1, t0 + Duration::from_secs(1), timeout),
            Ok(Heartbeat::Refreshed)
        );
        // A second live instance under the same name is refused.
        assert!(r
            .heartbeat(&n("a"), 2, t0 + Duration::from_secs(2), timeout)
            .is_err());
        assert_eq!(r.next_expiry(timeout), Some(t0 + Duration::from_secs(4)));
        // Once the first is silent for the timeout, a new instance replaces it and its roles.
        assert_eq!(
            r.heartbeat(&n("a"), 2, t0 + Duration::from_secs(4), timeout),
            Ok(Heartbeat::Replaced {
                closed: vec![t("x")]
            })
        );
        assert!(r.node(&n("a")).is_none());
        // A node that stops sending heartbeats is dropped with its roles.
        r.add(&n("a"), &t("y"), Role::Subscriber);
        r.add(&n("legacy"), &t("y"), Role::Subscriber);
        assert!(r.expire(t0 + Duration::from_secs(5), timeout).is_empty());
        assert_eq!(
            r.expire(t0 + Duration::from_secs(7), timeout),
            vec![(n("a"), vec![])]
        );
        assert_eq!(
            r.node_names(),
            "legacy",
            "nodes without heartbeats are never expired"
        );
        assert_eq!(r.next_expiry(timeout), None);
    }
}
