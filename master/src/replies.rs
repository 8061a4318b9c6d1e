//! Large control replies (the DOT graph, node and topic lists) without amplification: one buffer
//! per distinct reply, shared by every queued copy, and a cap on the bytes of such buffers
//! alive at once.
//!
//! A peer that sends `REQUEST_MAP` a hundred times without reading the replies used to make the
//! master hold a hundred copies of a graph of megabytes in its queue. Now the copies of an
//! unchanged graph are one buffer, which each queued copy holds by reference until it is written
//! or dropped; a peer (an address, as libzmq's REP knew peers) with
//! [`MAX_QUEUED_PER_PEER`] large replies still queued gets `limit-reached` for the next ones; and
//! when the distinct buffers alive would pass [`MAX_SHARED_BYTES`] (the graph changing between
//! requests), a large reply is refused with `limit-reached` too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use zerosmq_core::control::Encoding;

/// Large replies queued for one peer address before its next large requests are refused. A REQ
/// peer has one reply in flight; one that pipelines requests without reading the replies holds
/// at most this many. (A bound per connection alone would not do: one address may open many.)
pub const MAX_QUEUED_PER_PEER: usize = 8;

/// Most peer addresses whose queued replies are counted at once (idle ones are forgotten).
const MAX_PEERS: usize = 4096;

/// Most bytes of shared reply buffers alive over all peers.
pub const MAX_SHARED_BYTES: usize = 64 << 20;

/// Replies below this size are copied per request: sharing them saves nothing.
pub const SHARE_FROM: usize = 64 << 10;

/// Which request a shared reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    Graph,
    Nodes,
    Topics,
}

/// A reply buffer that queued messages share; its bytes count as alive until the last copy is
/// released.
pub struct SharedReply {
    bytes: Box<[u8]>,
    alive: Arc<AtomicUsize>,
}

impl SharedReply {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for SharedReply {
    fn drop(&mut self) {
        self.alive.fetch_sub(self.bytes.len(), Ordering::Relaxed);
    }
}

/// A control reply: a fresh buffer, or a reference to a shared one and the counter of the
/// peer's queued large replies.
pub enum Reply {
    Owned(Vec<u8>),
    Shared(Arc<SharedReply>, Arc<AtomicUsize>),
}

/// One queued copy of a shared reply: counted against its peer until written or dropped.
pub struct Queued {
    reply: Arc<SharedReply>,
    peer: Arc<AtomicUsize>,
}

impl Queued {
    /// A copy of `reply` queued for the peer whose count is `peer`.
    pub fn new(reply: Arc<SharedReply>, peer: Arc<AtomicUsize>) -> Queued {
        peer.fetch_add(1, Ordering::Relaxed);
        Queued { reply, peer }
    }

    pub fn bytes(&self) -> &[u8] {
        self.reply.bytes()
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.peer.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The shared replies of the current registry generation.
#[derive(Default)]
pub struct ReplyCache {
    /// Bytes of shared buffers alive: cached, or queued for a peer.
    alive: Arc<AtomicUsize>,
    entries: Vec<(Shared, Encoding, u64, Arc<SharedReply>)>,
    /// The size each kind of reply had when last built, to refuse one over the budget without
    /// spending the time to build it.
    sizes: Vec<(Shared, Encoding, usize)>,
    /// Large replies queued per peer address.
    queued: HashMap<String, Arc<AtomicUsize>>,
}

/// Why a large reply is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum OverBudget {
    /// Sharing it would pass [`MAX_SHARED_BYTES`]; this many bytes are alive.
    Total { alive: usize },
    /// The peer has [`MAX_QUEUED_PER_PEER`] large replies queued, unread.
    Peer,
}

impl ReplyCache {
    /// The reply to `kind` in `enc` for registry `generation` for `peer`: the cached one, or
    /// `build`'s, shared when it is large.
    pub fn get(
        &mut self,
        kind: Shared,
        enc: Encoding,
        generation: u64,
        peer: &str,
        build: impl FnOnce() -> Vec<u8>,
    ) -> Result<Reply, OverBudget> {
        let queued = self.peer_counter(peer);
        // Only large replies count: small ones are answered whatever is queued.
        let peer_full = queued.load(Ordering::Relaxed) >= MAX_QUEUED_PER_PEER;
        if let Some(hit) = self
            .entries
            .iter()
            .find(|e| e.0 == kind && e.1 == enc && e.2 == generation)
        {
            if peer_full {
                return Err(OverBudget::Peer);
            }
            return Ok(Reply::Shared(hit.3.clone(), queued));
        }
        // An older reply of this kind is never handed out again: its buffer goes once the
        // copies still queued are written or dropped.
        self.entries.retain(|e| !(e.0 == kind && e.1 == enc));
        let alive = self.alive.load(Ordering::Relaxed);
        let last = self
            .sizes
            .iter()
            .find(|s| s.0 == kind && s.1 == enc)
            .map_or(0, |s| s.2);
        // Refused before it is built when it was large last time.
        let refusal = |len: usize| {
            if peer_full {
                Some(OverBudget::Peer)
            } else if alive + len > MAX_SHARED_BYTES {
                Some(OverBudget::Total { alive })
            } else {
                None
            }
        };
        if last >= SHARE_FROM {
            if let Some(r) = refusal(last) {
                return Err(r);
            }
        }
        let bytes = build();
        self.sizes.retain(|s| !(s.0 == kind && s.1 == enc));
        self.sizes.push((kind, enc, bytes.len()));
        if bytes.len() < SHARE_FROM {
            return Ok(Reply::Owned(bytes));
        }
        if let Some(r) = refusal(bytes.len()) {
            return Err(r);
        }
        self.alive.fetch_add(bytes.len(), Ordering::Relaxed);
        let shared = Arc::new(SharedReply {
            bytes: bytes.into_boxed_slice(),
            alive: self.alive.clone(),
        });
        self.entries.push((kind, enc, generation, shared.clone()));
        Ok(Reply::Shared(shared, queued))
    }

    /// The counter of `peer`'s queued large replies.
    fn peer_counter(&mut self, peer: &str) -> Arc<AtomicUsize> {
        if let Some(q) = self.queued.get(peer) {
            return q.clone();
        }
        if self.queued.len() >= MAX_PEERS {
            self.trim();
        }
        let q = Arc::new(AtomicUsize::new(0));
        self.queued.insert(peer.to_owned(), q.clone());
        q
    }

    /// Forgets cached replies no queued message holds any more, so that their memory goes back,
    /// and peers with nothing queued.
    pub fn trim(&mut self) {
        self.entries.retain(|e| Arc::strong_count(&e.3) > 1);
        self.queued
            .retain(|_, q| Arc::strong_count(q) > 1 || q.load(Ordering::Relaxed) > 0);
    }

    /// Bytes of shared buffers alive.
    #[cfg(test)]
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }
}

/// Makes glibc give large freed buffers back to the system at once: with its default dynamic
/// threshold, buffers of megabytes (graph replies) move from mmap to the heap after the first
/// is freed, and a fragmented heap keeps them resident long after the replies are gone.
pub fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator parameter; a fixed threshold also turns off the
    // dynamic adjustment.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_share_one_buffer_until_the_graph_changes_and_the_total_is_capped() {
        let mut cache = ReplyCache::default();
        let big = || vec![7u8; SHARE_FROM];
        let Ok(Reply::Shared(a, _)) = cache.get(Shared::Graph, Encoding::Text, 1, "p", big) else {
            panic!("a large reply is shared");
        };
        let Ok(Reply::Shared(b, _)) =
            cache.get(Shared::Graph, Encoding::Text, 1, "p", || unreachable!())
        else {
            panic!("the same generation is served from the cache");
        };
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.alive(), SHARE_FROM);
        assert!(matches!(
            cache.get(Shared::Nodes, Encoding::Text, 1, "p", || vec![1u8; 10]),
            Ok(Reply::Owned(_))
        ));
        // A new generation builds a new buffer; the old one lives while a copy is queued.
        let Ok(Reply::Shared(c, _)) = cache.get(Shared::Graph, Encoding::Text, 2, "p", big) else {
            panic!("shared");
        };
        assert_eq!(cache.alive(), 2 * SHARE_FROM);
        drop((a, b));
        assert_eq!(cache.alive(), SHARE_FROM);
        cache.trim();
        assert_eq!(cache.alive(), SHARE_FROM, "c is still held");
        drop(c);
        cache.trim();
        assert_eq!(cache.alive(), 0);
        // Past the cap, large replies are refused until buffers are released.
        let mut held = Vec::new();
        for g in 0.. {
            match cache.get(Shared::Graph, Encoding::Binary, g, "p", || {
                vec![0u8; 8 << 20]
            }) {
                Ok(Reply::Shared(r, _)) => held.push(r),
                Ok(Reply::Owned(_)) => unreachable!(),
                Err(OverBudget::Total { alive }) => {
                    assert!(alive <= MAX_SHARED_BYTES);
                    break;
                }
                Err(OverBudget::Peer) => unreachable!("nothing queued"),
            }
        }
        assert_eq!(held.len(), MAX_SHARED_BYTES / (8 << 20));
        drop(held);
        cache.trim();
        assert_eq!(cache.alive(), 0);
        // A peer with its replies queued unread is refused; another is not.
        let counter = match cache.get(Shared::Graph, Encoding::Text, 9, "p", big) {
            Ok(Reply::Shared(_, q)) => q,
            _ => panic!("shared"),
        };
        counter.store(MAX_QUEUED_PER_PEER, Ordering::Relaxed);
        assert_eq!(
            cache.get(Shared::Graph, Encoding::Text, 9, "p", big).err(),
            Some(OverBudget::Peer)
        );
        assert!(cache
            .get(Shared::Graph, Encoding::Text, 9, "q", big)
            .is_ok());
    }
}
