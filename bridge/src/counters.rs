//! What the bridge counts: every message that does not cross is counted under a reason.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The bridge's counters, printed on every change of a link and at exit.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages from the master sent to the engine.
    pub out_sent: AtomicU64,
    /// Messages from the master that did not reach the engine: the sum of the four `out_*`
    /// reasons below.
    pub out_lost: AtomicU64,
    /// ... because the engine link was down (no broker connection; no Zenoh subscriber matching).
    pub out_link_down: AtomicU64,
    /// ... because the engine's queue was full (MQTT: the client's request queue, while the
    /// broker does not take messages).
    pub out_queue_full: AtomicU64,
    /// ... because the engine refused them (a Zenoh put or publisher declaration failed).
    pub out_failed: AtomicU64,
    /// ... because the broker came back without the bridge's session: the QoS 1 messages it had
    /// not acknowledged.
    pub out_session_lost: AtomicU64,
    /// Receives from the master that failed (a bad frame, a broken link): each is logged; what
    /// the master dropped there is not visible to the bridge.
    pub out_recv_errors: AtomicU64,
    /// Messages from the engine published into the master.
    pub in_sent: AtomicU64,
    /// Messages from the engine that were not published into the master: the sum of the four
    /// `in_*` reasons below.
    pub in_lost: AtomicU64,
    /// ... because the bridge's queue towards the master was full.
    pub in_queue_full: AtomicU64,
    /// ... because the master was not connected (no publisher yet, or not ready).
    pub in_not_ready: AtomicU64,
    /// ... because the publish call failed.
    pub in_failed: AtomicU64,
    /// ... because the bridge's publisher into the master dropped them (`Publisher::dropped`):
    /// past its high-water mark while the master did not read, or still queued when the
    /// connection was lost (those were counted in `in_sent` first, and moved here).
    pub in_dropped: AtomicU64,
    /// Engine keys refused: not `PREFIX/TOPIC` with a valid topic name.
    pub in_bad_name: AtomicU64,
    /// Engine messages refused: payload over `--max-payload`.
    pub in_oversized: AtomicU64,
    /// Engine messages refused: a new topic past `--max-topics`.
    pub in_too_many_topics: AtomicU64,
    /// Engine messages refused for their schema: not base64 of at most the master's schema
    /// length, or refused by the master (`invalid-schema`, `schema-mismatch`: the topic there has
    /// another type).
    pub in_schema_refused: AtomicU64,
    /// Engine messages on keys that match no `--in` pattern.
    pub in_not_matched: AtomicU64,
    /// Our own messages handed back by the master (not sent out again).
    pub echoes: AtomicU64,
    /// Our own messages handed back by the engine (not brought in again).
    pub engine_echoes: AtomicU64,
    /// Master topics matching `--out` that the engine cannot name (skipped once each).
    pub out_bad_name: AtomicU64,
    /// Times the engine link came up.
    pub engine_connects: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// Counts `n` lost messages under `reason` and in the total `total`.
    pub fn lose(total: &AtomicU64, reason: &AtomicU64, n: u64) {
        reason.fetch_add(n, Relaxed);
        total.fetch_add(n, Relaxed);
    }

    /// One `key=value` line of every counter.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        format!(
            "out_sent={} out_lost={} out_link_down={} out_queue_full={} out_failed={} out_session_lost={} out_recv_errors={} in_sent={} in_lost={} in_queue_full={} in_not_ready={} in_failed={} in_dropped={} in_bad_name={} in_oversized={} in_too_many_topics={} in_schema_refused={} in_not_matched={} echoes={} engine_echoes={} out_bad_name={} engine_connects={}",
            g(&self.out_sent),
            g(&self.out_lost),
            g(&self.out_link_down),
            g(&self.out_queue_full),
            g(&self.out_failed),
            g(&self.out_session_lost),
            g(&self.out_recv_errors),
            g(&self.in_sent),
            g(&self.in_lost),
            g(&self.in_queue_full),
            g(&self.in_not_ready),
            g(&self.in_failed),
            g(&self.in_dropped),
            g(&self.in_bad_name),
            g(&self.in_oversized),
            g(&self.in_too_many_topics),
            g(&self.in_schema_refused),
            g(&self.in_not_matched),
            g(&self.echoes),
            g(&self.engine_echoes),
            g(&self.out_bad_name),
            g(&self.engine_connects),
        )
    }
}
