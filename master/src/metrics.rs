//! Counters outside the topics, for a metrics endpoint in another thread (`--web`): open data
//! connections, control requests by kind and refusals by error code, uptime. The topics' own
//! counters (messages, bytes, overflows) stay where forwarding keeps them and are read through
//! `TOPIC_INFO`.
//!
//! Every counter has one writer, the master's thread, so it is kept with a relaxed load and store
//! (a plain move on common targets, no locked instruction); none of them is touched per message.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zerosmq_core::control::{ControlRequest, ErrorCode};

/// Request kinds as counted; the last one takes requests of a kind not named here.
const REQUEST_KINDS: [&str; 13] = [
    "publish",
    "subscribe",
    "stop-publish",
    "stop-subscribe",
    "list-topics",
    "graph",
    "list-nodes",
    "topic-info",
    "node-info",
    "heartbeat",
    "publish-typed",
    "topic-schema",
    "other",
];

/// A request that did not decode is counted under this kind (its refusal under its code).
const MALFORMED: &str = "malformed";

const ERROR_CODES: [ErrorCode; 13] = [
    ErrorCode::BadRequest,
    ErrorCode::UnknownCommand,
    ErrorCode::InvalidName,
    ErrorCode::TooLarge,
    ErrorCode::UnsupportedVersion,
    ErrorCode::NameInUse,
    ErrorCode::UnknownTopic,
    ErrorCode::UnknownNode,
    ErrorCode::LimitReached,
    ErrorCode::Refused,
    ErrorCode::Internal,
    ErrorCode::SchemaMismatch,
    ErrorCode::InvalidSchema,
];

/// A count with one writer (the master's thread) and any number of readers.
#[derive(Debug, Default)]
pub(crate) struct Gauge(AtomicUsize);

impl Gauge {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, n: usize) {
        self.0.store(n, Ordering::Relaxed);
    }
}

fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The master's counters; see [`MasterHandle::metrics`](crate::MasterHandle::metrics).
#[derive(Debug)]
pub(crate) struct Metrics {
    started: Instant,
    /// The data ports' security mechanism (one for the whole master).
    mechanism: &'static str,
    /// Data connections open over all topics (the engine's count).
    pub(crate) open: Arc<Gauge>,
    requests: [AtomicU64; REQUEST_KINDS.len() + 1],
    errors: [AtomicU64; ERROR_CODES.len()],
}

impl Metrics {
    pub(crate) fn new(mechanism: &'static str) -> Metrics {
        Metrics {
            started: Instant::now(),
            mechanism,
            open: Arc::default(),
            requests: Default::default(),
            errors: Default::default(),
        }
    }

    pub(crate) fn request(&self, req: &ControlRequest) {
        #[allow(unreachable_patterns)] // a kind added later counts as "other" until named
        let kind = match req {
            ControlRequest::Publish { .. } => 0,
            ControlRequest::Subscribe { .. } => 1,
            ControlRequest::StopPublish { .. } => 2,
            ControlRequest::StopSubscribe { .. } => 3,
            ControlRequest::ListTopics { .. } => 4,
            ControlRequest::Graph => 5,
            ControlRequest::ListNodes => 6,
            ControlRequest::TopicInfo { .. } => 7,
            ControlRequest::NodeInfo { .. } => 8,
            ControlRequest::Heartbeat { .. } => 9,
            ControlRequest::PublishTyped { .. } => 10,
            ControlRequest::TopicSchema { .. } => 11,
            _ => 12,
        };
        bump(&self.requests[kind]);
    }

    pub(crate) fn malformed_request(&self) {
        bump(&self.requests[REQUEST_KINDS.len()]);
    }

    pub(crate) fn refused(&self, code: ErrorCode) {
        if let Some(i) = ERROR_CODES.iter().position(|c| *c == code) {
            bump(&self.errors[i]);
        }
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            uptime: self.started.elapsed(),
            mechanism: self.mechanism,
            data_connections: self.open.get(),
            control_requests: REQUEST_KINDS
                .iter()
                .copied()
                .chain([MALFORMED])
                .zip(self.requests.iter().map(load))
                .collect(),
            control_errors: ERROR_CODES
                .iter()
                .map(|c| c.as_str())
                .zip(self.errors.iter().map(load))
                .collect(),
        }
    }
}

/// The master's counters at one moment (the topics' counters are in `TOPIC_INFO`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Since the master started.
    pub uptime: Duration,
    /// The data ports' mechanism: `NULL`, `PLAIN` or `CURVE`.
    pub mechanism: &'static str,
    /// Data connections open over all topics (all of them speak [`Self::mechanism`]).
    pub data_connections: usize,
    /// Control requests answered, by kind (`malformed`: did not decode).
    pub control_requests: Vec<(&'static str, u64)>,
    /// Control requests refused, by error code (as in `ERROR <code>: ...`).
    pub control_errors: Vec<(&'static str, u64)>,
}
