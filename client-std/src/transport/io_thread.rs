//! The node's I/O thread: one per node, started with its first publisher or subscriber, on a
//! `mio` poll. It owns every publisher connection of the node (connect with backoff, the ZMTP
//! handshake, the master's subscriptions and PINGs, our own PINGs, writing what callers
//! queued, following a moved grant, the linger of a closing publisher) and runs the node's
//! timers: the node's control tasks ([`NodeControl`]: the name claim of the first publish or
//! subscribe, heartbeats, re-registration after a master restart, each a request on the
//! thread's own control connection, advanced on its readiness and never waited for) and the
//! keeper of subscriber links whose application is away (see `subscriber_link`).
//!
//! Callers talk to it through [`IoHandle`]: a publisher whose outbox got its first message
//! marks itself dirty, and the thread is woken (an eventfd, through `mio::Waker`) only when it
//! sleeps, so a burst costs one wake-up.

use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use zerosmq_core::control::{ControlReply, ControlRequest};
use zerosmq_core::ErrorCode;

use super::control::{ControlConn, Progress};
use super::publisher_link::{PubConn, PubShared};
use super::subscriber_link::SubscriberLink;
use crate::node::NodeInner;
use crate::{Error, Result};

const WAKER: Token = Token(usize::MAX);
const CONTROL: Token = Token(usize::MAX - 1);
/// Subscriber links' tokens start here (publishers' are their slot numbers, below).
const SUB_BASE: usize = usize::MAX / 2;

/// How long a claim waits before asking again while another live node holds the name.
const CLAIM_RETRY: Duration = Duration::from_millis(200);

/// How long one heartbeat waits for the master at least.
const HEARTBEAT_WAIT_MIN: Duration = Duration::from_millis(200);

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
    /// Name claims to start (the first publish or subscribe of the node).
    claims: Vec<Claim>,
    /// Subscriber links to serve while their application is away, with their tokens.
    links: Vec<(usize, Weak<Mutex<SubscriberLink>>)>,
    sleeping: bool,
    woken: bool,
    stop: bool,
}

/// The shared end of a node's I/O thread.
pub(crate) struct IoHandle {
    waker: Waker,
    /// The poll's registry, for a subscriber link that takes its registration back.
    registry: Registry,
    queue: Mutex<Queue>,
    base: Instant,
    /// The next subscriber link's token.
    next_link: AtomicUsize,
    /// Nanoseconds since `base` of the node's last publish (tells a burst from an isolated
    /// message, see `publisher_link`).
    last_publish: AtomicU64,
}

impl IoHandle {
    /// Starts the thread for `node`; it ends when the node is dropped ([`IoHandle::stop`]).
    /// `control` is its own connection to the master (`None`: the node's requests go through
    /// libzmq, for CURVE, and the thread makes them blocking).
    pub(crate) fn start(
        node: Weak<NodeInner>,
        name: &str,
        control: Option<ControlConn>,
    ) -> std::io::Result<Arc<IoHandle>> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let handle = Arc::new(IoHandle {
            waker,
            registry: poll.registry().try_clone()?,
            next_link: AtomicUsize::new(SUB_BASE),
            queue: Mutex::new(Queue::default()),
            base: Instant::now(),
            last_publish: AtomicU64::new(0),
        });
        let h = handle.clone();
        std::thread::Builder::new()
            .name(format!("zerosmq-io-{name}"))
            .spawn(move || run(poll, &h, &node, control))?;
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

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Hands a native subscriber link to the thread, which serves it while its application
    /// is away (see `subscriber_link`).
    pub(crate) fn keep(
        self: &Arc<Self>,
        link: &Mutex<SubscriberLink>,
        weak: Weak<Mutex<SubscriberLink>>,
        hwm: usize,
    ) {
        let token = self.next_link.fetch_add(1, Ordering::Relaxed);
        link.lock()
            .unwrap_or_else(|e| e.into_inner())
            .watch(self.clone(), Token(token), hwm);
        let mut q = self.lock();
        q.links.push((token, weak));
        self.wake_locked(&mut q);
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

    /// Claims the node name with a first heartbeat, asked again while the master says another
    /// live node holds it, until `wait` passed; then heartbeats every `interval`. The receiver
    /// gets the master's epoch, or why the claim failed.
    pub(crate) fn claim(&self, interval: Duration, wait: Duration) -> mpsc::Receiver<Result<u64>> {
        let (tx, rx) = mpsc::sync_channel(1);
        let mut q = self.lock();
        q.claims.push(Claim {
            interval,
            deadline: Instant::now() + wait,
            not_before: Instant::now(),
            reply: tx,
        });
        self.wake_locked(&mut q);
        rx
    }

    /// Records a publish now; returns the time since the node's previous one.
    pub(crate) fn tick(&self) -> Duration {
        let now = self.base.elapsed().as_nanos() as u64;
        let before = self.last_publish.swap(now, Ordering::Relaxed);
        Duration::from_nanos(now.saturating_sub(before))
    }
}

/// A name claim waiting for the master's answer.
pub(crate) struct Claim {
    interval: Duration,
    /// Until when a `name-in-use` answer is asked again.
    deadline: Instant,
    /// The next try is due then.
    not_before: Instant,
    reply: mpsc::SyncSender<Result<u64>>,
}

struct Heartbeat {
    interval: Duration,
    /// The master's epoch at the last answer: another one means it restarted.
    epoch: u64,
    /// A heartbeat or a re-registration failed: register everything again at the next answer.
    missed: bool,
    due: Instant,
}

/// One request of the node's control tasks.
enum Job {
    Claim(Claim),
    Heartbeat,
    /// Asks again for a grant; a new port is stored in `cell`, and `waker` (the socket owner's
    /// I/O thread) is poked.
    Grant {
        /// Boxed: a typed publish request carries its schema inline.
        request: Box<ControlRequest>,
        cell: Arc<AtomicU16>,
        waker: Option<Arc<IoHandle>>,
    },
}

/// The request in flight.
struct Current {
    job: Job,
    /// Encoded, for the blocking (libzmq) path.
    request: Vec<u8>,
    timeout: Duration,
}

/// The node's control tasks: one request at a time on the thread's own control connection (a
/// REQ: lockstep), in order, none of them waited for.
#[derive(Default)]
struct NodeControl {
    /// `None`: requests go through the node's libzmq REQ (CURVE), blocking.
    conn: Option<ControlConn>,
    /// The control socket registered with the poll, and its generation.
    registered: Option<(RawFd, u64)>,
    jobs: VecDeque<Job>,
    current: Option<Current>,
    heartbeat: Option<Heartbeat>,
}

impl NodeControl {
    /// Starts what is due and advances the request in flight until it waits for the master.
    fn drive(&mut self, registry: &Registry, node: &NodeInner) {
        loop {
            let now = Instant::now();
            if self.current.is_none() && !self.start_next(node, now) {
                break;
            }
            let Some(current) = &self.current else { break };
            let progress = match &mut self.conn {
                Some(conn) => conn.poll(now),
                None => match node.raw_request(&current.request, current.timeout) {
                    Ok(reply) => Progress::Reply(reply),
                    Err(e) => {
                        let Some(c) = self.current.take() else { break };
                        self.finish(node, c.job, Err(e));
                        continue;
                    }
                },
            };
            let result = match progress {
                Progress::Pending => break,
                Progress::Reply(bytes) => Ok(bytes),
                Progress::Failed(e) => Err(node.control_error(e, current.timeout)),
            };
            if let Some(c) = self.current.take() {
                self.finish(node, c.job, result);
            }
        }
        self.register(registry);
    }

    /// Starts the next job that is due; false when none is.
    fn start_next(&mut self, node: &NodeInner, now: Instant) -> bool {
        if let Some(hb) = &self.heartbeat {
            if now >= hb.due && !self.jobs.iter().any(|j| matches!(j, Job::Heartbeat)) {
                self.jobs.push_back(Job::Heartbeat);
            }
        }
        match self.jobs.front() {
            None => return false,
            Some(Job::Claim(c)) if now < c.not_before => return false,
            Some(_) => {}
        }
        let Some(job) = self.jobs.pop_front() else {
            return false;
        };
        let (request, timeout) = match &job {
            Job::Claim(_) => (node.heartbeat_request(), node.timeout),
            Job::Heartbeat => {
                let interval = self.heartbeat.as_ref().map_or(node.timeout, |h| h.interval);
                (node.heartbeat_request(), interval.max(HEARTBEAT_WAIT_MIN))
            }
            Job::Grant { request, .. } => ((**request).clone(), node.timeout),
        };
        match node.encode(&request) {
            Ok(request) => {
                if let Some(conn) = &mut self.conn {
                    conn.start(&request, now + timeout);
                }
                self.current = Some(Current {
                    job,
                    request,
                    timeout,
                });
            }
            Err(e) => self.finish(node, job, Err(e)),
        }
        true
    }

    /// A job's request was answered (or failed).
    fn finish(&mut self, node: &NodeInner, job: Job, reply: Result<bytes::Bytes>) {
        let now = Instant::now();
        match job {
            Job::Claim(mut claim) => {
                let epoch =
                    reply.and_then(|r| node.read_reply(&node.heartbeat_request(), &r, alive));
                match epoch {
                    Err(Error::Refused {
                        code: ErrorCode::NameInUse,
                        ..
                    }) if now < claim.deadline => {
                        claim.not_before = now + CLAIM_RETRY;
                        self.jobs.push_front(Job::Claim(claim));
                    }
                    Ok(epoch) => {
                        self.heartbeat = Some(Heartbeat {
                            interval: claim.interval,
                            epoch,
                            missed: false,
                            due: now + claim.interval,
                        });
                        let _ = claim.reply.send(Ok(epoch));
                    }
                    Err(e) => {
                        let _ = claim.reply.send(Err(e));
                    }
                }
            }
            Job::Heartbeat => {
                let epoch =
                    reply.and_then(|r| node.read_reply(&node.heartbeat_request(), &r, alive));
                let Some(hb) = self.heartbeat.as_mut() else {
                    return;
                };
                match epoch {
                    Ok(epoch) => {
                        // The master restarted, or may have dropped this node while it was
                        // unreachable: ask for every grant again.
                        if epoch != hb.epoch || hb.missed {
                            for (request, cell, waker) in node.grants() {
                                self.jobs.push_back(Job::Grant {
                                    request: Box::new(request),
                                    cell,
                                    waker,
                                });
                            }
                        }
                        hb.epoch = epoch;
                        hb.missed = false;
                    }
                    Err(_) => hb.missed = true,
                }
                hb.due = now + hb.interval;
            }
            Job::Grant {
                request,
                cell,
                waker,
            } => match reply.and_then(|r| node.read_reply(&request, &r, granted)) {
                Ok(port) => {
                    if cell.swap(port, Ordering::AcqRel) != port {
                        if let Some(io) = waker {
                            io.poke();
                        }
                    }
                }
                // Not answered: the next heartbeat asks again.
                Err(Error::Timeout { .. }) => {
                    if let Some(hb) = self.heartbeat.as_mut() {
                        hb.missed = true;
                    }
                }
                Err(_) => {}
            },
        }
    }

    /// Registers a new control socket with the poll (a closed one left it by itself).
    fn register(&mut self, registry: &Registry) {
        let Some(source) = self.conn.as_ref().and_then(ControlConn::source) else {
            return;
        };
        if self.registered == Some(source) {
            return;
        }
        let interest = Interest::READABLE | Interest::WRITABLE;
        let mut fd = SourceFd(&source.0);
        if registry.register(&mut fd, CONTROL, interest).is_err() {
            // The same descriptor number, still registered (it was not closed in between).
            let _ = registry.reregister(&mut fd, CONTROL, interest);
        }
        self.registered = Some(source);
    }

    /// When the tasks must run again without an event.
    fn next_wake(&self) -> Option<Instant> {
        if self.current.is_some() {
            return self.conn.as_ref().and_then(ControlConn::next_wake);
        }
        let claim = match self.jobs.front() {
            Some(Job::Claim(c)) => Some(c.not_before),
            Some(_) => Some(Instant::now()),
            None => None,
        };
        let hb = self.heartbeat.as_ref().map(|h| h.due);
        match (claim, hb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn alive(reply: ControlReply<'_>) -> Result<u64> {
    match reply {
        ControlReply::Alive { epoch } => Ok(epoch),
        _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
    }
}

fn granted(reply: ControlReply<'_>) -> Result<u16> {
    match reply {
        ControlReply::Granted { port } => Ok(port),
        _ => Err(Error::Protocol(zerosmq_core::DecodeError::UnexpectedReply)),
    }
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

/// The subscriber links the thread serves, by token.
#[derive(Default)]
struct Links {
    links: HashMap<usize, Weak<Mutex<SubscriberLink>>>,
}

impl Links {
    /// Serves the link of `token` on its poll event, unless its application holds it.
    fn on_ready(&self, token: usize, registry: &Registry) {
        if let Some(link) = self.links.get(&token).and_then(Weak::upgrade) {
            if let Ok(mut l) = link.try_lock() {
                l.on_ready(registry);
            }
        }
    }

    /// The timer: serves every link whose application is away (skipping any in use) and
    /// forgets dropped ones.
    fn keep_idle(&mut self, registry: &Registry) {
        self.links.retain(|_, link| {
            let Some(link) = link.upgrade() else {
                return false;
            };
            if let Ok(mut l) = link.try_lock() {
                l.keep_alive(registry);
            }
            true
        });
    }
}

fn run(mut poll: Poll, handle: &IoHandle, node: &Weak<NodeInner>, conn: Option<ControlConn>) {
    let mut events = Events::with_capacity(1024);
    let mut slots = Slots::default();
    let (mut added, mut dirty, mut claims) = (Vec::new(), Vec::new(), Vec::new());
    let (mut links, mut new_links) = (Links::default(), Vec::new());
    let mut control = NodeControl {
        conn,
        ..NodeControl::default()
    };
    let mut control_ready = false;
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
            std::mem::swap(&mut q.claims, &mut claims);
            std::mem::swap(&mut q.links, &mut new_links);
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
        control.jobs.extend(claims.drain(..).map(Job::Claim));
        let control_due = control.next_wake().is_some_and(|at| now >= at);
        if std::mem::take(&mut control_ready) || control_due {
            let Some(node) = node.upgrade() else { break };
            control.drive(registry, &node);
            drop(node);
        }
        links.links.extend(new_links.drain(..));
        if now >= next_keep {
            links.keep_idle(registry);
            next_keep = Instant::now() + KEEP_TICK;
        }
        let mut wake_at = next_tick.min(next_keep);
        if let Some(at) = control.next_wake() {
            wake_at = wake_at.min(at);
        }
        {
            let mut q = handle.lock();
            if q.stop
                || q.look
                || !q.added.is_empty()
                || !q.dirty.is_empty()
                || !q.claims.is_empty()
                || !q.links.is_empty()
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
            if event.token() == CONTROL {
                control_ready = true;
                continue;
            }
            if i >= SUB_BASE {
                links.on_ready(i, registry);
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
