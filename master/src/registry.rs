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

/// The graph of nodes and topics. Sorted maps keep every listing stable.
#[derive(Debug, Default)]
pub struct Registry {
    topics: BTreeMap<Topic, TopicEntry>,
    nodes: BTreeMap<NodeName, NodeEntry>,
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
}
