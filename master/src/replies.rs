//! Large control replies (the DOT graph, node and topic lists) without amplification: one buffer
//! per distinct reply, shared by every queued copy, and a cap on the bytes of such buffers
//! alive at once.
//!
//! A peer that sends `REQUEST_MAP` a hundred times without reading the replies used to make the
//! master hold a hundred copies of a graph of megabytes in libzmq's queue. Now the copies of an
//! unchanged graph are one buffer, which libzmq holds by reference until the last copy is written
//! or dropped; a peer (an address: libzmq tells the REP socket no more) with
//! [`MAX_QUEUED_PER_PEER`] large replies still queued gets `limit-reached` for the next ones; and
//! when the distinct buffers alive would pass [`MAX_SHARED_BYTES`] (the graph changing between
//! requests), a large reply is refused with `limit-reached` too.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use zerosmq_core::control::Encoding;

/// Large replies queued for one peer address before its next large requests are refused. A REQ
/// peer has one reply in flight; one that pipelines requests without reading the replies holds
/// at most this many. (The control socket's send high-water mark cannot do this: libzmq learns
/// late that a peer read its replies, so a small one drops replies to honest REQ peers.)
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

/// One queued copy of a shared reply: released by libzmq when written or dropped.
struct Queued {
    _reply: Arc<SharedReply>,
    peer: Arc<AtomicUsize>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.peer.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The shared replies of the current registry generation.
#[derive(Default)]
pub struct ReplyCache {
    /// Bytes of shared buffers alive: cached, or queued in libzmq.
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
        // An older reply of this kind is never handed out again: its buffer goes once libzmq
        // has released the copies still queued.
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

/// Sends `reply` on `socket` without copying it: libzmq holds a reference to the buffer until
/// the message is written, or dropped at the high-water mark.
pub fn send_shared(
    socket: &mut zmq::Socket,
    reply: Arc<SharedReply>,
    peer: Arc<AtomicUsize>,
) -> Result<(), zmq::Error> {
    peer.fetch_add(1, Ordering::Relaxed);
    let data = reply.bytes.as_ptr() as *mut c_void;
    let len = reply.bytes.len();
    let hint = Box::into_raw(Box::new(Queued {
        _reply: reply,
        peer,
    }));
    let mut msg = zmq_sys::zmq_msg_t::default();
    // SAFETY: `data` points into the buffer of the Arc that `hint` (leaked) holds, alive until
    // `release` runs; libzmq only reads message data it did not allocate. The buffer is never
    // empty (shared replies are at least SHARE_FROM bytes), so libzmq does take the free
    // function, and calls it exactly once: when the message is closed after it was written or
    // dropped, or by our zmq_msg_close when the send fails. After a successful zmq_msg_send the
    // message belongs to libzmq.
    unsafe {
        let rc =
            zmq_sys::zmq_msg_init_data(&mut msg, data, len, Some(release), hint as *mut c_void);
        if rc != 0 {
            drop(Box::from_raw(hint));
            return Err(zmq::Error::from_raw(zmq_sys::zmq_errno()));
        }
        if zmq_sys::zmq_msg_send(&mut msg, socket.as_mut_ptr(), 0) < 0 {
            let e = zmq::Error::from_raw(zmq_sys::zmq_errno());
            zmq_sys::zmq_msg_close(&mut msg);
            return Err(e);
        }
    }
    Ok(())
}

/// libzmq's free function for a shared reply (may run on libzmq's I/O thread).
unsafe extern "C" fn release(_data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the box that `send_shared` leaked for this one message.
    drop(unsafe { Box::from_raw(hint as *mut Queued) });
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
