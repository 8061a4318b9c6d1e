//! The node's own timer: a monotonic clock the application lends, so the node sends its
//! heartbeat by itself from `publish` and `recv` (see `Node::with_clock`).

/// Milliseconds of a monotonic clock (any origin), e.g. a hardware timer or `embassy_time`.
pub trait Clock {
    /// Now, in milliseconds.
    fn now_ms(&self) -> u64;
}

/// `std::time::Instant` since the first call, for hosts and tests: `static C: StdClock = StdClock;`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct StdClock;

#[cfg(feature = "std")]
impl Clock for StdClock {
    fn now_ms(&self) -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let start = START.get_or_init(std::time::Instant::now);
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(feature = "clock")]
/// The stack buffer of a heartbeat the node sends by itself: the REQ handshake, the request
/// with the longest name, and PLAIN's HELLO with short credentials.
pub(crate) const HEARTBEAT_BUF_LEN: usize = 256;

/// When the next heartbeat is due.
#[cfg(feature = "clock")]
pub(crate) struct HeartbeatTimer {
    clock: &'static dyn Clock,
    period_ms: u64,
    next_ms: core::cell::Cell<u64>,
}

#[cfg(feature = "clock")]
impl core::fmt::Debug for HeartbeatTimer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeartbeatTimer")
            .field("period_ms", &self.period_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "clock")]
impl HeartbeatTimer {
    pub(crate) fn new(clock: &'static dyn Clock, period_ms: u64) -> Self {
        HeartbeatTimer {
            clock,
            period_ms,
            next_ms: core::cell::Cell::new(0),
        }
    }

    /// Whether a heartbeat is due now; if so, the next one is due a period later (also when
    /// this one fails: the master is then down, and the next publish reconnects anyway).
    pub(crate) fn take_due(&self) -> bool {
        self.take_due_at(self.clock.now_ms())
    }

    /// When the next heartbeat is due, in the clock's milliseconds (0: at once).
    pub(crate) fn due_ms(&self) -> u64 {
        self.next_ms.get()
    }

    fn take_due_at(&self, now: u64) -> bool {
        if now < self.next_ms.get() {
            return false;
        }
        self.next_ms.set(now.saturating_add(self.period_ms));
        true
    }
}

/// `embassy_time::Instant` as the async node's clock (feature `embassy-time`).
#[cfg(feature = "embassy-time")]
pub(crate) struct EmbassyClock;

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    fn now_ms(&self) -> u64 {
        embassy_time::Instant::now().as_millis()
    }
}
