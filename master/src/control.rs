//! The control service: every request gets exactly one reply, in the encoding it came in.

use std::time::Instant;

use tracing::{debug, info, warn};
use zerosmq_core::control::{ControlReply, ControlRequest, Encoding, ErrorCode, ErrorReply};
use zerosmq_core::limits::MAX_ERROR_DETAIL_LEN;
use zerosmq_core::{decode_request, NodeInfo, NodeName, Topic, TopicInfo};

use crate::auth::Access;
use crate::broker::Broker;
use crate::graph;
use crate::ratelimit::PerPeer;
use crate::registry::{join, Heartbeat, NameRefusal, Role};
use crate::replies::{
    OverBudget, Reply, ReplyCache, Shared, MAX_QUEUED_PER_PEER, MAX_SHARED_BYTES,
};

/// What the control service keeps between requests.
pub(crate) struct ControlService {
    /// Large replies shared by their queued copies, and the bound on their bytes.
    pub replies: ReplyCache,
    /// Rate limits of the warnings about refused requests and new names, per peer.
    pub logs: PerPeer,
    /// The address of the peer whose request is being answered.
    pub peer: String,
}

impl ControlService {
    pub fn new() -> ControlService {
        crate::replies::return_large_buffers_to_the_system();
        ControlService {
            replies: ReplyCache::default(),
            logs: PerPeer::default(),
            peer: String::new(),
        }
    }
}

impl From<Vec<u8>> for Reply {
    fn from(bytes: Vec<u8>) -> Reply {
        Reply::Owned(bytes)
    }
}

impl Broker {
    /// Answers up to `batch` pending requests, in the control connections' turns.
    pub(crate) fn serve_control(&mut self, batch: usize, now: Instant) {
        let mut served = 0;
        while served < batch {
            let Some(request) = self.control.next_request(self.poll.registry(), now) else {
                break;
            };
            served += 1;
            self.service.peer.clear();
            self.service.peer.push_str(&request.peer);
            let reply = self.answer(request.body(), request.frames, request.user.as_deref());
            self.control.reply(request, reply);
        }
        self.control.flush_touched();
        if served > 0 {
            self.service.replies.trim();
        }
    }

    fn answer(&mut self, request: &[u8], frames: usize, user: Option<&str>) -> Reply {
        let encoding = Encoding::of(request);
        if frames > 1 {
            let detail = format!("a control request is one frame, this one had {frames}");
            self.metrics.malformed_request();
            return self
                .refused(encoding, ErrorCode::BadRequest, &detail)
                .into();
        }
        match decode_request(request) {
            Ok(req) => {
                debug!(?req, "control request");
                self.metrics.request(&req);
                self.execute(req, encoding, user)
            }
            Err(e) => {
                self.metrics.malformed_request();
                self.refused(encoding, e.code(), &e.to_string()).into()
            }
        }
    }

    /// A refusal, with a warning rate-limited per peer (a flood of bad requests must not become
    /// a flood of log lines).
    fn refused(&mut self, enc: Encoding, code: ErrorCode, detail: &str) -> Vec<u8> {
        let peer = &self.service.peer;
        if let Some(unlogged) = self.service.logs.hit(peer, "refused", Instant::now()) {
            warn!(%peer, code = code.as_str(), unlogged, "refused control request: {detail}");
        }
        self.refuse_quietly(enc, code, detail)
    }

    /// A refusal not worth a warning (an unknown topic or node asked about), counted.
    fn refuse_quietly(&self, enc: Encoding, code: ErrorCode, detail: &str) -> Vec<u8> {
        self.metrics.refused(code);
        refuse(enc, code, detail)
    }

    /// A list or graph reply: built once per registry change and shared by every queued copy.
    fn shared_reply(&mut self, kind: Shared, enc: Encoding) -> Reply {
        let registry = &self.registry;
        let service = &mut self.service;
        let built =
            service.replies.get(
                kind,
                enc,
                registry.generation(),
                &service.peer,
                || match kind {
                    Shared::Graph => encode(&ControlReply::Graph(&graph::to_dot(registry)), enc),
                    Shared::Nodes => encode(&ControlReply::Nodes(&registry.node_names()), enc),
                    Shared::Topics => {
                        encode(&ControlReply::Topics(&registry.published_topics()), enc)
                    }
                },
            );
        match built {
            Ok(reply) => reply,
            Err(OverBudget::Total { alive }) => {
                let detail = format!(
                    "{} MiB of large replies are queued for peers that do not read them (at most \
                     {} MiB); try again later",
                    alive >> 20,
                    MAX_SHARED_BYTES >> 20
                );
                self.refused(enc, ErrorCode::LimitReached, &detail).into()
            }
            Err(OverBudget::Peer) => {
                let detail = format!(
                    "{MAX_QUEUED_PER_PEER} large replies to this address are queued unread; read \
                     them first"
                );
                self.refused(enc, ErrorCode::LimitReached, &detail).into()
            }
        }
    }

    fn execute(&mut self, req: ControlRequest, enc: Encoding, user: Option<&str>) -> Reply {
        // A stop, like a grant, is allowed only for a role the requester may hold: otherwise any
        // user could close another user's topic.
        let checked = match &req {
            ControlRequest::Publish { node, topic }
            | ControlRequest::PublishTyped { node, topic, .. } => {
                Some((node, topic, Access::Write, "publish"))
            }
            ControlRequest::Subscribe { node, topic } => {
                Some((node, topic, Access::Read, "subscribe to"))
            }
            ControlRequest::StopPublish { node, topic } => {
                Some((node, topic, Access::Write, "stop publishing"))
            }
            ControlRequest::StopSubscribe { node, topic } => {
                Some((node, topic, Access::Read, "stop subscribing to"))
            }
            _ => None,
        };
        if let Some((node, topic, access, what)) = checked {
            if !self.security.allows(user, node, topic, access) {
                let who = user.map_or_else(|| format!("node '{node}'"), |u| format!("user '{u}'"));
                let detail = format!("{who} may not {what} '{topic}' (ACL)");
                return self.refused(enc, ErrorCode::Refused, &detail).into();
            }
            if let Some(refusal) = self.check_name(node, user, enc) {
                return refusal.into();
            }
        }
        let reply = match req {
            ControlRequest::Publish { node, topic } => {
                if self
                    .registry
                    .topic(&topic)
                    .is_some_and(|t| t.schema.is_some())
                {
                    // Allowed: original nodes cannot declare a schema, and refusing them would
                    // change what they see on the wire; typed readers skip what does not decode.
                    debug!(%node, %topic, "untyped publisher on a typed topic");
                }
                self.register(&node, &topic, Role::Publisher, user, enc)
            }
            ControlRequest::PublishTyped {
                node,
                topic,
                schema,
            } => self.register_typed(&node, &topic, &schema, user, enc),
            ControlRequest::TopicSchema { topic } => match self.registry.topic(&topic) {
                Some(t) => encode(
                    &ControlReply::Schema(t.schema.as_deref().unwrap_or_default()),
                    enc,
                ),
                None => refuse(enc, ErrorCode::UnknownTopic, &format!("no topic '{topic}'")),
            },
            ControlRequest::Subscribe { node, topic } => {
                self.register(&node, &topic, Role::Subscriber, user, enc)
            }
            ControlRequest::StopPublish { node, topic } => {
                self.unregister(&node, &topic, Role::Publisher, enc)
            }
            ControlRequest::StopSubscribe { node, topic } => {
                self.unregister(&node, &topic, Role::Subscriber, enc)
            }
            ControlRequest::ListTopics { .. } => return self.shared_reply(Shared::Topics, enc),
            ControlRequest::ListNodes => return self.shared_reply(Shared::Nodes, enc),
            ControlRequest::Graph => return self.shared_reply(Shared::Graph, enc),
            ControlRequest::TopicInfo { topic } => self.topic_info(&topic, enc),
            ControlRequest::NodeInfo { node } => self.node_info(&node, enc),
            ControlRequest::Heartbeat { node, session } => {
                self.heartbeat(&node, session, user, enc)
            }
        };
        reply.into()
    }

    /// Refuses a request under `node` from `user` when the ACL's `node` lines do not give the
    /// user that name, or the name is bound to another user (a stop, like a grant, only for
    /// one's own nodes).
    fn check_name(
        &mut self,
        node: &NodeName,
        user: Option<&str>,
        enc: Encoding,
    ) -> Option<Vec<u8>> {
        let user_name = user?;
        if !self.security.allows_name(user, node) {
            let detail = format!("user '{user_name}' may not use node name '{node}' (ACL)");
            return Some(self.refused(enc, ErrorCode::Refused, &detail));
        }
        if let Err(NameRefusal::Owned { owner }) = self.registry.check_owner(node, user) {
            let detail = format!(
                "node '{node}' belongs to user '{owner}': user '{user_name}' may not act for it"
            );
            return Some(self.refused(enc, ErrorCode::NameInUse, &detail));
        }
        None
    }

    fn register(
        &mut self,
        node: &NodeName,
        topic: &Topic,
        role: Role,
        user: Option<&str>,
        enc: Encoding,
    ) -> Vec<u8> {
        // Before a topic opens: a refused grant must not leave a topic without users open.
        if let Some(refusal) = self.check_node_limits(node, topic, role, enc) {
            return refusal;
        }
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= self.max_topics {
                let detail = format!("the master serves at most {} topics", self.max_topics);
                return self.refused(enc, ErrorCode::LimitReached, &detail);
            }
            match self.open_topic(topic, None) {
                Ok(state) => {
                    let (publish_port, subscribe_port) = state.ports();
                    info!(%topic, publish_port, subscribe_port, "topic opened");
                    self.topics.insert(topic.clone(), state);
                }
                Err(e) => {
                    let (code, detail) = if e.limit {
                        (
                            ErrorCode::LimitReached,
                            format!("no free data port or socket: {}", e.detail),
                        )
                    } else {
                        (
                            ErrorCode::Internal,
                            format!("could not open sockets for the topic: {}", e.detail),
                        )
                    };
                    return self.refused(enc, code, &format!("topic '{topic}': {detail}"));
                }
            }
        }
        let Some(state) = self.topics.get(topic) else {
            return self.refuse_quietly(enc, ErrorCode::Internal, "topic vanished");
        };
        self.registry.add(node, topic, role);
        if let Some(user) = user {
            self.registry.bind_owner(node, user);
        }
        self.dirty = true;
        let port = match role {
            Role::Publisher => state.ports().0,
            Role::Subscriber => state.ports().1,
        };
        info!(%node, %topic, ?role, port, "granted");
        encode(&ControlReply::Granted { port }, enc)
    }

    /// A publish grant declaring `schema`: refused when the schema is not a valid postcard-schema
    /// type, or differs from the schema the topic has; the first typed publisher sets it.
    fn register_typed(
        &mut self,
        node: &NodeName,
        topic: &Topic,
        schema: &[u8],
        user: Option<&str>,
        enc: Encoding,
    ) -> Vec<u8> {
        let declared = match crate::schema::parse(schema) {
            Ok(declared) => declared,
            Err(e) => {
                let detail = format!("topic '{topic}': {e}");
                return self.refused(enc, ErrorCode::InvalidSchema, &detail);
            }
        };
        let held = self.registry.topic(topic).and_then(|t| t.schema.as_deref());
        let typed = held.is_some();
        if let Some(held) = held.filter(|held| *held != schema) {
            let detail = format!(
                "topic '{topic}' carries {}, node '{node}' declares {}",
                crate::schema::describe(held),
                declared.to_pseudocode()
            );
            return self.refused(enc, ErrorCode::SchemaMismatch, &detail);
        }
        let reply = self.register(node, topic, Role::Publisher, user, enc);
        let granted = self
            .registry
            .node(node)
            .is_some_and(|e| e.holds(topic, Role::Publisher));
        if !typed && granted {
            info!(%topic, schema = %declared, "topic typed");
            self.registry.set_schema(topic, schema);
        }
        reply
    }

    /// Refuses a new grant that would pass `max_nodes` or `max_grants_per_node` (a grant the
    /// node holds already is granted again).
    fn check_node_limits(
        &mut self,
        node: &NodeName,
        topic: &Topic,
        role: Role,
        enc: Encoding,
    ) -> Option<Vec<u8>> {
        let detail = match self.registry.node(node) {
            None if !self.registry.knows(node) && self.registry.name_count() >= self.max_nodes => {
                format!("the master serves at most {} nodes", self.max_nodes)
            }
            Some(e) if !e.holds(topic, role) && e.grants() >= self.max_grants_per_node => {
                format!(
                    "a node may hold at most {} publish and subscribe grants",
                    self.max_grants_per_node
                )
            }
            _ => return None,
        };
        Some(self.refused(
            enc,
            ErrorCode::LimitReached,
            &format!("node '{node}': {detail}"),
        ))
    }

    /// Idempotent, as MQTT's unsubscribe: stopping what is not registered is granted too.
    fn unregister(&mut self, node: &NodeName, topic: &Topic, role: Role, enc: Encoding) -> Vec<u8> {
        if self.registry.remove(node, topic, role) {
            self.close_topics(vec![topic.clone()]);
        }
        self.dirty = true;
        info!(%node, %topic, ?role, "stopped");
        encode(&ControlReply::Done, enc)
    }

    fn heartbeat(
        &mut self,
        node: &NodeName,
        session: u64,
        user: Option<&str>,
        enc: Encoding,
    ) -> Vec<u8> {
        if let Some(refusal) = self.check_name(node, user, enc) {
            return refusal;
        }
        // Every name the master keeps counts against the node limit, heartbeat-only ones too.
        if !self.registry.knows(node) && self.registry.name_count() >= self.max_nodes {
            let detail = format!("the master serves at most {} nodes", self.max_nodes);
            return self.refused(
                enc,
                ErrorCode::LimitReached,
                &format!("node '{node}': {detail}"),
            );
        }
        let outcome =
            self.registry
                .heartbeat(node, session, user, Instant::now(), self.node_timeout);
        match outcome {
            Ok(Heartbeat::Claimed) => {
                // Per peer at most once a second: made-up names in bulk must not flood the log.
                let peer = &self.service.peer;
                if let Some(unlogged) = self.service.logs.hit(peer, "new name", Instant::now()) {
                    let session = format_args!("{session:016x}");
                    info!(%node, session, %peer, unlogged, "node alive");
                }
            }
            Ok(Heartbeat::Refreshed) => {}
            Ok(Heartbeat::Replaced { closed }) => {
                info!(%node, "node restarted under the same name: its previous instance was silent and is replaced");
                self.close_topics(closed);
                self.dirty = true;
            }
            Err(refusal) => {
                let (code, detail) = match refusal {
                    NameRefusal::InUse { last_seen_ago } => (
                        ErrorCode::NameInUse,
                        format!(
                            "node name '{node}' is used by another live node (heard from {} ms ago); \
                             pick another name or wait {} s for it to time out",
                            last_seen_ago.as_millis(),
                            self.node_timeout.as_secs_f32()
                        ),
                    ),
                    NameRefusal::Owned { owner } => (
                        ErrorCode::NameInUse,
                        format!("node name '{node}' belongs to user '{owner}'"),
                    ),
                    NameRefusal::NoHeartbeats { registered_ago } => (
                        ErrorCode::Refused,
                        format!(
                            "node '{node}' was registered without heartbeats {} s ago (an \
                             original-protocol node, which never expires); a heartbeat may not \
                             make it expire: pick another name, or stop its roles first",
                            registered_ago.as_secs()
                        ),
                    ),
                };
                return self.refused(enc, code, &detail);
            }
        }
        encode(&ControlReply::Alive { epoch: self.epoch }, enc)
    }

    /// Drops nodes whose heartbeats stopped, with their roles.
    pub(crate) fn expire_nodes(&mut self) {
        for (node, closed) in self.registry.expire(Instant::now(), self.node_timeout) {
            warn!(%node, timeout_s = self.node_timeout.as_secs_f32(), "node stopped sending heartbeats: dropped");
            self.close_topics(closed);
            self.dirty = true;
        }
    }

    /// Reopens the topics of the state file on their old ports and restores the registry.
    pub(crate) fn restore(&mut self) -> Result<(), crate::MasterError> {
        let Some(path) = self.state_file.clone() else {
            return Ok(());
        };
        let saved = crate::state::load(&path)?;
        let now = Instant::now();
        for (topic, publish_port, subscribe_port) in saved.topics {
            match self.open_topic(&topic, Some((publish_port, subscribe_port))) {
                Ok(state) => {
                    let ports = state.ports();
                    if ports != (publish_port, subscribe_port) {
                        warn!(%topic, "previous ports taken; nodes re-request the topic with their next heartbeat");
                    }
                    info!(%topic, publish_port = ports.0, subscribe_port = ports.1, "topic restored");
                    self.topics.insert(topic, state);
                }
                Err(e) => warn!(%topic, error = %e.detail, "could not restore topic"),
            }
        }
        for (node, role, topic) in saved.roles {
            if self.topics.contains_key(&topic) {
                self.registry.add(&node, &topic, role);
            }
        }
        for node in saved.live {
            if self.registry.node(&node).is_some() {
                self.registry.restore_live(&node, now);
            }
        }
        for (node, user) in saved.owners {
            self.registry.bind_owner(&node, &user);
        }
        info!(path = %path.display(), topics = self.topics.len(), "state restored");
        Ok(())
    }

    /// Writes the state file when the registry changed; a failure is logged, not fatal.
    pub(crate) fn save_state(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let Some(path) = &self.state_file else { return };
        let topics = self
            .topics
            .iter()
            .map(|(t, s)| (t, s.ports().0, s.ports().1));
        if let Err(e) = crate::state::save(path, &self.registry, topics) {
            warn!(path = %path.display(), error = %e, "could not write the state file");
        }
    }

    /// Closes the sockets of topics that lost their last user.
    pub(crate) fn close_topics(&mut self, topics: Vec<Topic>) {
        for topic in topics {
            self.close_topic(&topic);
            info!(%topic, "topic closed: no publisher and no subscriber left");
        }
    }

    fn topic_info(&self, topic: &Topic, enc: Encoding) -> Vec<u8> {
        let (Some(entry), Some(state)) = (self.registry.topic(topic), self.topics.get(topic))
        else {
            return self.refuse_quietly(
                enc,
                ErrorCode::UnknownTopic,
                &format!("no topic '{topic}'"),
            );
        };
        let publishers = join(entry.publishers.iter().map(|n| n.as_str()));
        let subscribers = join(entry.subscribers.iter().map(|n| n.as_str()));
        let c = &state.counters;
        encode(
            &ControlReply::TopicInfo(TopicInfo {
                topic: topic.as_str(),
                publish_port: state.ports().0,
                subscribe_port: state.ports().1,
                publishers: &publishers,
                subscribers: &subscribers,
                messages: c.messages,
                bytes: c.bytes,
                overflows: c.overflows,
                refused: state.refused(),
                idle_ms: c.last_activity.map(|t| t.elapsed().as_millis() as u64),
                schema: entry.schema.as_deref().unwrap_or_default(),
            }),
            enc,
        )
    }

    fn node_info(&self, node: &NodeName, enc: Encoding) -> Vec<u8> {
        let Some(entry) = self.registry.node(node) else {
            return self.refuse_quietly(enc, ErrorCode::UnknownNode, &format!("no node '{node}'"));
        };
        let publishes = join(entry.publishes.iter().map(|t| t.as_str()));
        let subscribes = join(entry.subscribes.iter().map(|t| t.as_str()));
        encode(
            &ControlReply::NodeInfo(NodeInfo {
                node: node.as_str(),
                publishes: &publishes,
                subscribes: &subscribes,
            }),
            enc,
        )
    }
}

fn refuse(enc: Encoding, code: ErrorCode, detail: &str) -> Vec<u8> {
    let mut cut = MAX_ERROR_DETAIL_LEN.min(detail.len());
    while !detail.is_char_boundary(cut) {
        cut -= 1;
    }
    encode(
        &ControlReply::Error(ErrorReply {
            code,
            detail: &detail[..cut],
        }),
        enc,
    )
}

/// Encodes a reply of any size (the graph can be large) into a fresh buffer.
fn encode(reply: &ControlReply<'_>, enc: Encoding) -> Vec<u8> {
    let body = match reply {
        ControlReply::Topics(s) | ControlReply::Graph(s) | ControlReply::Nodes(s) => s.len(),
        _ => 0,
    };
    let mut buf = vec![0u8; body + 512];
    loop {
        match reply.encode(enc, &mut buf) {
            Ok(bytes) => {
                let n = bytes.len();
                buf.truncate(n);
                return buf;
            }
            Err(_) => {
                let len = buf.len() * 2;
                buf.resize(len, 0);
            }
        }
    }
}
