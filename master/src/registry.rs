//! Who publishes and subscribes what, and what each topic carried: pure data, no sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

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
    /// Declared by the first typed publisher (postcard of a postcard-schema `OwnedNamedType`,
    /// checked when declared); kept while the topic has users.
    pub schema: Option<Vec<u8>>,
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

impl NodeEntry {
    /// Whether the node holds `role` on `topic`.
    pub fn holds(&self, topic: &Topic, role: Role) -> bool {
        match role {
            Role::Publisher => self.publishes.contains(topic),
            Role::Subscriber => self.subscribes.contains(topic),
        }
    }

    /// Publish and subscribe grants held.
    pub fn grants(&self) -> usize {
        self.publishes.len() + self.subscribes.len()
    }
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

/// Why a request under a node name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRefusal {
    /// The name is bound to another authenticated user.
    Owned { owner: String },
    /// The name is held by another session that is still alive.
    InUse {
        /// How long ago the holder was last heard from.
        last_seen_ago: Duration,
    },
    /// The name has roles registered without heartbeats (an original-protocol node) for longer
    /// than the node timeout: a heartbeat may not turn it into a node that expires.
    NoHeartbeats {
        /// How long ago the name was first registered.
        registered_ago: Duration,
    },
}

/// What the master keeps about a node name besides its roles. The name is taken while it has
/// roles or a live heartbeat session.
#[derive(Debug, Clone)]
struct NameEntry {
    /// When the name was first used (a grant or a heartbeat).
    since: Instant,
    /// Set for nodes that send heartbeats; the others (original nodes) are never expired.
    liveness: Option<Liveness>,
    /// The authenticated user the name is bound to (with `--passwords`): its first user.
    owner: Option<String>,
}

/// The graph of nodes and topics. Sorted maps keep every listing stable.
#[derive(Debug, Default)]
pub struct Registry {
    topics: BTreeMap<Topic, TopicEntry>,
    nodes: BTreeMap<NodeName, NodeEntry>,
    /// Every name the master keeps: those with roles and those that only send heartbeats.
    names: BTreeMap<NodeName, NameEntry>,
    /// Heartbeating names by their last heartbeat, oldest first, so that expiry looks only at
    /// the names that expired (O(expired · log n), not a scan of every name).
    deadlines: BTreeSet<(Instant, NodeName)>,
    /// Names the state file listed as sending heartbeats that have not sent one to this run: one
    /// that is granted again after its restored deadline dropped it still sends heartbeats (it
    /// is not an original node), so it gets a deadline again instead of never expiring.
    restored: BTreeSet<NodeName>,
    /// Changes with every role added or removed, so that replies built from the graph can be
    /// reused until it changes.
    generation: u64,
}

impl Registry {
    /// Records that `node` plays `role` on `topic` (idempotent).
    pub fn add(&mut self, node: &NodeName, topic: &Topic, role: Role) {
        self.add_at(node, topic, role, Instant::now());
    }

    /// [`add`](Self::add) at `now` (when the name is new, it was first used then).
    pub fn add_at(&mut self, node: &NodeName, topic: &Topic, role: Role, now: Instant) {
        if !self.names.contains_key(node) && self.restored.remove(node) {
            // Once: should it expire again, a later grant makes it an original node.
            self.set_liveness(node, RESTORED_SESSION, now);
        }
        self.names.entry(node.clone()).or_insert_with(|| NameEntry {
            since: now,
            liveness: None,
            owner: None,
        });
        self.generation += 1;
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
    /// left and was dropped from the registry. A node with no role left is dropped too (and its
    /// name freed unless it sends heartbeats).
    pub fn remove(&mut self, node: &NodeName, topic: &Topic, role: Role) -> bool {
        self.generation += 1;
        if let Some(n) = self.nodes.get_mut(node) {
            match role {
                Role::Publisher => n.publishes.remove(topic),
                Role::Subscriber => n.subscribes.remove(topic),
            };
            if n.publishes.is_empty() && n.subscribes.is_empty() {
                self.nodes.remove(node);
                self.forget_if_unused(node);
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

    /// Sets the schema of `topic` (registered already) when it has none.
    pub fn set_schema(&mut self, topic: &Topic, schema: &[u8]) {
        if let Some(t) = self.topics.get_mut(topic) {
            if t.schema.is_none() {
                t.schema = Some(schema.to_vec());
            }
        }
    }

    /// Drops the name of `node` when it has neither roles nor a heartbeat session.
    fn forget_if_unused(&mut self, node: &NodeName) {
        let unused = !self.nodes.contains_key(node)
            && self.names.get(node).is_some_and(|e| e.liveness.is_none());
        if unused {
            self.names.remove(node);
        }
    }

    /// Whether `user` (the authenticated user, `None` without authentication) may act under
    /// `node`: not when the name is bound to another user.
    pub fn check_owner(&self, node: &NodeName, user: Option<&str>) -> Result<(), NameRefusal> {
        match (self.owner(node), user) {
            (Some(owner), Some(user)) if owner != user => Err(NameRefusal::Owned {
                owner: owner.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Binds `node` to `user` if it is not bound yet (the name must be known).
    pub fn bind_owner(&mut self, node: &NodeName, user: &str) {
        if let Some(entry) = self.names.get_mut(node) {
            entry.owner.get_or_insert_with(|| user.to_owned());
        }
    }

    /// The user `node` is bound to.
    pub fn owner(&self, node: &NodeName) -> Option<&str> {
        self.names.get(node)?.owner.as_deref()
    }

    /// Names bound to a user, with the user.
    pub fn owners(&self) -> impl Iterator<Item = (&NodeName, &str)> {
        self.names
            .iter()
            .filter_map(|(n, e)| Some((n, e.owner.as_deref()?)))
    }

    /// Records a heartbeat of `node` from `session` (sent by `user` when authenticated) at
    /// `now`. Another session may take the name only when the holder has been silent for
    /// `timeout` (it crashed), and then replaces it. A name bound to another user is refused,
    /// and so is a name whose roles were registered without heartbeats, unless its owner sends
    /// the heartbeat or it comes within `timeout` of the first grant (a node that sends its
    /// first heartbeat with its first message, as the embedded client with a clock does).
    pub fn heartbeat(
        &mut self,
        node: &NodeName,
        session: u64,
        user: Option<&str>,
        now: Instant,
        timeout: Duration,
    ) -> Result<Heartbeat, NameRefusal> {
        self.check_owner(node, user)?;
        let entry = self.names.get(node);
        let outcome = match (entry, entry.and_then(|e| e.liveness)) {
            // Roles without heartbeats: an original node, or one about to send its first.
            (Some(e), None) if self.nodes.contains_key(node) => {
                let owner_beats = user.is_some() && e.owner.as_deref() == user;
                let ago = now.saturating_duration_since(e.since);
                if !owner_beats && ago >= timeout {
                    return Err(NameRefusal::NoHeartbeats {
                        registered_ago: ago,
                    });
                }
                Heartbeat::Claimed
            }
            (_, None) => Heartbeat::Claimed,
            (_, Some(l)) if l.session == session || l.session == RESTORED_SESSION => {
                Heartbeat::Refreshed
            }
            (_, Some(l)) => {
                let ago = now.saturating_duration_since(l.last_seen);
                if ago < timeout {
                    return Err(NameRefusal::InUse { last_seen_ago: ago });
                }
                Heartbeat::Replaced {
                    closed: self.remove_node(node),
                }
            }
        };
        self.set_liveness(node, session, now);
        self.restored.remove(node);
        if let Some(user) = user {
            self.bind_owner(node, user);
        }
        Ok(outcome)
    }

    /// Sets `node`'s heartbeat session and last heartbeat, creating the name if it is new.
    fn set_liveness(&mut self, node: &NodeName, session: u64, now: Instant) {
        let entry = self.names.entry(node.clone()).or_insert_with(|| NameEntry {
            since: now,
            liveness: None,
            owner: None,
        });
        if let Some(old) = entry.liveness.replace(Liveness {
            session,
            last_seen: now,
        }) {
            self.deadlines.remove(&(old.last_seen, node.clone()));
        }
        self.deadlines.insert((now, node.clone()));
    }

    /// Drops nodes whose last heartbeat is `timeout` or more before `now`, with all their roles.
    /// Returns each dropped node and the topics that lost their last user. Looks only at the
    /// expired names.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<(NodeName, Vec<Topic>)> {
        let mut dropped = Vec::new();
        while let Some((last_seen, _)) = self.deadlines.first() {
            if now.saturating_duration_since(*last_seen) < timeout {
                break;
            }
            let Some((_, node)) = self.deadlines.pop_first() else {
                break;
            };
            if let Some(entry) = self.names.get_mut(&node) {
                entry.liveness = None;
            }
            let closed = self.remove_node(&node);
            self.forget_if_unused(&node);
            dropped.push((node, closed));
        }
        dropped
    }

    /// When the next node expires, if any sends heartbeats.
    pub fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at + timeout)
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
        self.set_liveness(node, RESTORED_SESSION, now);
        self.restored.insert(node.clone());
    }

    /// Nodes that send heartbeats.
    pub fn live_nodes(&self) -> impl Iterator<Item = &NodeName> {
        self.names
            .iter()
            .filter(|(_, e)| e.liveness.is_some())
            .map(|(n, _)| n)
    }

    /// Whether `node` sends heartbeats.
    pub fn liveness(&self, node: &NodeName) -> Option<&Liveness> {
        self.names.get(node)?.liveness.as_ref()
    }

    /// Whether the master keeps `node` (with roles or heartbeats).
    pub fn knows(&self, node: &NodeName) -> bool {
        self.names.contains_key(node)
    }

    /// A number that changes whenever a role is added or removed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many names the master keeps: nodes with roles and names that only send heartbeats.
    pub fn name_count(&self) -> usize {
        self.names.len()
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
        assert_eq!(
            r.heartbeat(&n("a"), 1, None, t0, timeout),
            Ok(Heartbeat::Claimed)
        );
        r.add(&n("a"), &t("x"), Role::Publisher);
        assert_eq!(
            r.heartbeat(&n("a"), 1, None, t0 + Duration::from_secs(1), timeout),
            Ok(Heartbeat::Refreshed)
        );
        // A second live instance under the same name is refused.
        assert!(r
            .heartbeat(&n("a"), 2, None, t0 + Duration::from_secs(2), timeout)
            .is_err());
        assert_eq!(r.next_expiry(timeout), Some(t0 + Duration::from_secs(4)));
        // Once the first is silent for the timeout, a new instance replaces it and its roles.
        assert_eq!(
            r.heartbeat(&n("a"), 2, None, t0 + Duration::from_secs(4), timeout),
            Ok(Heartbeat::Replaced {
                closed: vec![t("x")]
            })
        );
        assert!(r.node(&n("a")).is_none());
        // A node that stops sending heartbeats is dropped with its roles.
        r.add_at(
            &n("a"),
            &t("y"),
            Role::Subscriber,
            t0 + Duration::from_secs(4),
        );
        r.add_at(&n("legacy"), &t("y"), Role::Subscriber, t0);
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

    #[test]
    fn names_are_bound_to_their_first_user() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(3);
        let mut r = Registry::default();
        r.add_at(&n("a-pub"), &t("x"), Role::Publisher, t0);
        r.bind_owner(&n("a-pub"), "alice");
        assert_eq!(r.check_owner(&n("a-pub"), Some("alice")), Ok(()));
        assert_eq!(
            r.check_owner(&n("a-pub"), Some("mallory")),
            Err(NameRefusal::Owned {
                owner: "alice".into()
            })
        );
        assert_eq!(r.check_owner(&n("free"), Some("mallory")), Ok(()));
        // Another user's heartbeat is refused, the owner's adopts the node even late.
        let late = t0 + Duration::from_secs(10);
        assert!(matches!(
            r.heartbeat(&n("a-pub"), 7, Some("mallory"), late, timeout),
            Err(NameRefusal::Owned { .. })
        ));
        assert!(r.liveness(&n("a-pub")).is_none());
        assert_eq!(
            r.heartbeat(&n("a-pub"), 7, Some("alice"), late, timeout),
            Ok(Heartbeat::Claimed)
        );
        // A heartbeat claims a new name for its user; the name goes with its last role and
        // heartbeat.
        assert_eq!(
            r.heartbeat(&n("b-node"), 8, Some("bob"), t0, timeout),
            Ok(Heartbeat::Claimed)
        );
        assert_eq!(r.owner(&n("b-node")), Some("bob"));
        assert_eq!(r.name_count(), 2);
        let owners: Vec<_> = r.owners().map(|(n, u)| (n.as_str(), u)).collect();
        assert_eq!(owners, vec![("a-pub", "alice"), ("b-node", "bob")]);
        assert_eq!(
            r.expire(t0 + Duration::from_secs(3), timeout),
            vec![(n("b-node"), vec![])]
        );
        assert!(!r.knows(&n("b-node")));
        r.add_at(&n("c"), &t("z"), Role::Subscriber, t0);
        assert!(r.remove(&n("c"), &t("z"), Role::Subscriber));
        assert!(
            !r.knows(&n("c")),
            "a name without roles or heartbeats is freed"
        );
    }

    #[test]
    fn a_heartbeat_does_not_hijack_a_node_registered_without_heartbeats() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(3);
        let mut r = Registry::default();
        r.add_at(&n("legacy"), &t("x"), Role::Publisher, t0);
        assert_eq!(
            r.heartbeat(&n("legacy"), 9, None, t0 + Duration::from_secs(60), timeout),
            Err(NameRefusal::NoHeartbeats {
                registered_ago: Duration::from_secs(60)
            })
        );
        assert_eq!(
            r.next_expiry(timeout),
            None,
            "still a node that never expires"
        );
        // Within the node timeout of its first grant a node may start heartbeats (the
        // embedded client sends its first with its first message).
        r.add_at(&n("mcu"), &t("x"), Role::Publisher, t0);
        assert_eq!(
            r.heartbeat(&n("mcu"), 5, None, t0 + Duration::from_secs(1), timeout),
            Ok(Heartbeat::Claimed)
        );
    }

    #[test]
    fn expiry_looks_only_at_expired_names() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(3);
        let mut r = Registry::default();
        for i in 0..1000u64 {
            let at = t0 + Duration::from_millis(i);
            r.heartbeat(&n(&format!("n{i:04}")), i + 1, None, at, timeout)
                .unwrap();
        }
        // Refreshing moves a name to the back of the queue.
        r.heartbeat(&n("n0000"), 1, None, t0 + Duration::from_secs(1), timeout)
            .unwrap();
        assert_eq!(
            r.next_expiry(timeout),
            Some(t0 + Duration::from_millis(3001))
        );
        let dropped = r.expire(t0 + Duration::from_millis(3010), timeout);
        let names: Vec<_> = dropped.iter().map(|(n, _)| n.as_str().to_owned()).collect();
        assert_eq!(
            names,
            (1..=10).map(|i| format!("n{i:04}")).collect::<Vec<_>>()
        );
        assert_eq!(r.name_count(), 990);
        assert!(r.liveness(&n("n0000")).is_some());
    }

    #[test]
    fn a_restored_name_granted_after_its_deadline_expires_again_once() {
        let (t0, timeout) = (Instant::now(), Duration::from_secs(2));
        let mut r = Registry::default();
        r.add_at(&n("late"), &t("t"), Role::Publisher, t0);
        r.restore_live(&n("late"), t0);
        assert_eq!(r.expire(t0 + timeout, timeout).len(), 1);
        assert!(!r.knows(&n("late")));
        // Granted again later, never heartbeating: it has a deadline, and goes at it.
        let t1 = t0 + 2 * timeout;
        r.add_at(&n("late"), &t("t"), Role::Publisher, t1);
        assert!(r.liveness(&n("late")).is_some());
        assert_eq!(r.expire(t1 + timeout, timeout).len(), 1);
        // A third grant is an original node's: it never expires.
        r.add_at(&n("late"), &t("t"), Role::Publisher, t1 + timeout);
        assert!(r.liveness(&n("late")).is_none());
        // One that heartbeats after its restore is an ordinary heartbeating node.
        r.add_at(&n("beats"), &t("t"), Role::Publisher, t0);
        r.restore_live(&n("beats"), t0);
        r.heartbeat(&n("beats"), 7, None, t0, timeout).unwrap();
        r.expire(t0 + timeout, timeout);
        r.add_at(&n("beats"), &t("t"), Role::Publisher, t1);
        assert!(r.liveness(&n("beats")).is_none());
    }
}
