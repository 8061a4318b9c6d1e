//! The node's I/O thread: one per node, started with its first publisher or subscriber, on a
//! `mio` poll. It owns every publisher connection of the node (connect with backoff, the ZMTP
//! handshake, the master's subscriptions and PINGs, our own PINGs, writing what callers
//! queued, following a moved grant, the linger of a closing publisher) and runs the node's
//! timers: the heartbeat to the master (with re-registration after a master restart) and the
//! keeper of subscriber links whose application is away (see `subscriber_link`).
//!
//! Callers talk to it through [`IoHandle`]: a publisher whose outbox got its first message
//! marks itself dirty, and the thread is woken (an eventfd, through `mio::Waker`) only when it
//! sleeps, so a burst costs one wake-up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use super::publisher_link::{PubConn, PubShared};
use crate::node::NodeInner;

const WAKER: Token = Token(usize::MAX);

/// How often the loop looks at every connection's timers (backoff, PING, half-open, a moved
/// grant) when nothing asked it to look sooner.
const TICK: Duration = Duration::from_millis(100);

/// How often idle subscriber links are served: well inside the shortest ZMTP heartbeat timeout
/// a master is run with (seconds).
const KEEP_TICK: Duration = Duration::from_millis(500);

/// Marks a publisher that has no slot in the thread yet.
pub(crate) const NO_SLOT: usize = usize::MAX;

/// What other threads hand the I/O thread.
#[derive(Default)]
struct Queue {
    added: Vec<Arc<PubShared>>,
    /// Publishers whose outbox got its first message.
    dirty: Vec<Arc<PubShared>>,
    /// Look at every connection now: one is closing, or a grant moved.
    look: bool,
    /// Start heartbeats: interval and the master's epoch at the first one.
    heartbeat: Option<(Duration, u64)>,
    sleeping: bool,
    woken: bool,
    stop: bool,
}

/// The shared end of a node's I/O thread.
pub(crate) struct IoHandle {
    waker: Waker,
    queue: Mutex<Queue>,
    base: Instant,
    /// Nanoseconds since `base` of the node's last publish (tells a burst from an isolated
    /// message, see `publisher_link`).
    last_publish: AtomicU64,
}

impl IoHandle {
    /// Starts the thread for `node`; it ends when the node is dropped ([`IoHandle::stop`]).
    pub(crate) fn start(node: Weak<NodeInner>, name: &str) -> std::io::Result<Arc<IoHandle>> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let handle = Arc::new(IoHandle {
            waker,
            queue: Mutex::new(Queue::default()),
            base: Instant::now(),
            last_publish: AtomicU64::new(0),
        });
        let h = handle.clone();
        std::thread::Builder::new()
            .name(format!("zerosmq-io-{name}"))
            .spawn(move || run(poll, &h, &node))?;
        Ok(handle)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_locked(&self, q: &mut Queue) {
        if q.sleeping && !q.woken {
            q.woken = true;
            let _ = self.waker.wake();
        }
    }

    /// Ends the thread (the node is dropped; its publishers and subscribers are gone).
    pub(crate) fn stop(&self) {
        let mut q = self.lock();
        q.stop = true;
        self.wake_locked(&mut q);
    }

    pub(crate) fn add(&self, publisher: Arc<PubShared>) {
        let mut q = self.lock();
        q.added.push(publisher);
        self.wake_locked(&mut q);
    }

    pub(crate) fn mark_dirty(&self, publisher: Arc<PubShared>) {
        let mut q = self.lock();
        q.dirty.push(publisher);
        self.wake_locked(&mut q);
    }

    /// Asks the thread to look at every connection (a publisher closes, a grant moved).
    pub(crate) fn poke(&self) {
        let mut q = self.lock();
        q.look = true;
        self.wake_locked(&mut q);
    }

    pub(crate) fn start_heartbeat(&self, interval: Duration, epoch: u64) {
        let mut q = self.lock();
        q.heartbeat = Some((interval, epoch));
        self.wake_locked(&mut q);
    }

    /// Records a publish now; returns the time since the node's previous one.
    pub(crate) fn tick(&self) -> Duration {
        let now = self.base.elapsed().as_nanos() as u64;
        let before = self.last_publish.swap(now, Ordering::Relaxed);
        Duration::from_nanos(now.saturating_sub(before))
    }
}

struct Heartbeat {
    interval: Duration,
    epoch: u64,
    missed: bool,
    due: Instant,
}

/// The publishers the thread serves; a publisher's slot is its poll token.
#[derive(Default)]
struct Slots {
    conns: Vec<Option<PubConn>>,
    free: Vec<usize>,
}

impl Slots {
    fn insert(&mut self, shared: Arc<PubShared>) -> usize {
        let i = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        shared.slot.store(i, Ordering::Release);
        self.conns[i] = Some(PubConn::new(shared));
        i
    }

    fn remove(&mut self, i: usize) {
        if let Some(c) = self.conns.get_mut(i).and_then(Option::take) {
            c.shared().slot.store(NO_SLOT, Ordering::Release);
            self.free.push(i);
        }
    }
}

fn run(mut poll: Poll, handle: &IoHandle, node: &Weak<NodeInner>) {
    let mut events = Events::with_capacity(1024);
    let mut slots = Slots::default();
    let (mut added, mut dirty) = (Vec::new(), Vec::new());
    let mut heartbeat: Option<Heartbeat> = None;
    let mut next_tick = Instant::now() + TICK;
    let mut next_keep = Instant::now() + KEEP_TICK;
    loop {
        let look = {
            let mut q = handle.lock();
            if q.stop {
                break;
            }
            std::mem::swap(&mut q.added, &mut added);
            std::mem::swap(&mut q.dirty, &mut dirty);
            if let Some((interval, epoch)) = q.heartbeat.take() {
                heartbeat = Some(Heartbeat {
                    interval,
                    epoch,
                    missed: false,
                    due: Instant::now() + interval,
                });
            }
            std::mem::take(&mut q.look)
        };
        let registry = poll.registry();
        for shared in added.drain(..) {
            let i = slots.insert(shared);
            // Connects at once; a publisher dropped before it got here is done at once.
            let done = slots.conns[i]
                .as_mut()
                .is_some_and(|c| c.on_timer(registry, Token(i), Instant::now()));
            if done {
                slots.remove(i);
            }
        }
        for shared in dirty.drain(..) {
            let i = shared.slot.load(Ordering::Acquire);
            if let Some(c) = slots.conns.get_mut(i).and_then(Option::as_mut) {
                c.flush(registry, Token(i));
                if c.finish_if_closed(registry, Token(i)) {
                    slots.remove(i);
                }
            }
        }
        let now = Instant::now();
        if look || now >= next_tick {
            for i in 0..slots.conns.len() {
                let done = match slots.conns[i].as_mut() {
                    Some(c) => c.on_timer(registry, Token(i), now),
                    None => false,
                };
                if done {
                    slots.remove(i);
                }
            }
            next_tick = now + TICK;
        }
        if let Some(hb) = heartbeat.as_mut().filter(|hb| now >= hb.due) {
            let Some(node) = node.upgrade() else { break };
            node.heartbeat_once(hb.interval, &mut hb.epoch, &mut hb.missed);
            drop(node);
            hb.due = Instant::now() + hb.interval;
        }
        if now >= next_keep {
            let Some(node) = node.upgrade() else { break };
            node.keep_idle_links();
            drop(node);
            next_keep = Instant::now() + KEEP_TICK;
        }
        let mut wake_at = next_tick.min(next_keep);
        if let Some(hb) = &heartbeat {
            wake_at = wake_at.min(hb.due);
        }
        {
            let mut q = handle.lock();
            if q.stop
                || q.look
                || !q.added.is_empty()
                || !q.dirty.is_empty()
                || q.heartbeat.is_some()
            {
                continue;
            }
            q.sleeping = true;
            q.woken = false;
        }
        let timeout = wake_at.saturating_duration_since(Instant::now());
        let polled = poll.poll(&mut events, Some(timeout));
        handle.lock().sleeping = false;
        if polled.is_err() {
            continue; // EINTR
        }
        let registry = poll.registry();
        for event in events.iter() {
            let Token(i) = event.token();
            if event.token() == WAKER {
                continue;
            }
            let Some(c) = slots.conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            c.on_event(registry, Token(i), readable);
            if c.finish_if_closed(registry, Token(i)) {
                slots.remove(i);
            }
        }
    }
    // The node is gone: every connection closes; waiters learn it.
    let registry = poll.registry();
    for (i, c) in slots.conns.iter_mut().enumerate() {
        if let Some(c) = c.as_mut() {
            c.close(registry, Token(i));
        }
    }
}
