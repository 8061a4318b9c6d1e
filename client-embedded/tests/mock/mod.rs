//! A scripted mock TCP stack shared by the blocking and the async mock tests: each connection
//! plays back what the peer sends in chunks of a chosen size (down to one byte), records what
//! the node wrote, and fails writes on demand.
// Each test binary uses its own part (blocking or async).
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;

use embedded_io::{ErrorKind, ErrorType};

/// The master's control address the tests give the node (never really connected).
pub const MASTER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5555);

#[derive(Debug, PartialEq)]
pub struct MockError(pub ErrorKind);

impl std::fmt::Display for MockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for MockError {}

// `embedded_io_async::Error` is this same trait, re-exported.
impl embedded_io::Error for MockError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// One scripted connection: what the peer sends, what the node wrote.
#[derive(Default)]
pub struct Script {
    pub input: VecDeque<u8>,
    pub written: Vec<u8>,
    /// Writes fail once this many bytes were written.
    pub fail_writes_after: Option<usize>,
    pub remote: Option<SocketAddr>,
    /// Async reads with nothing left: wait forever (an idle open connection) instead of EOF.
    pub hold_open: bool,
    /// Async reads with nothing left: EOF at once, not after one Pending (a closed connection
    /// seen by a single poll).
    pub closed: bool,
}

pub type Shared = Rc<RefCell<Script>>;

/// Hands out the scripts in order, one per connection the node opens.
pub struct MockStack {
    pub chunk: usize,
    pub scripts: RefCell<VecDeque<Shared>>,
    pub opened: RefCell<Vec<Shared>>,
}

impl MockStack {
    pub fn new(chunk: usize) -> Self {
        MockStack {
            chunk,
            scripts: RefCell::default(),
            opened: RefCell::default(),
        }
    }

    /// Queues the script of the next connection.
    pub fn script(&self, input: &[u8], fail_writes_after: Option<usize>) -> Shared {
        let s = Rc::new(RefCell::new(Script {
            input: input.iter().copied().collect(),
            fail_writes_after,
            ..Script::default()
        }));
        self.scripts.borrow_mut().push_back(s.clone());
        s
    }

    /// Opens the next scripted connection; refused when none is left.
    fn open(&self, remote: SocketAddr) -> Result<MockConn, MockError> {
        let script = self
            .scripts
            .borrow_mut()
            .pop_front()
            .ok_or(MockError(ErrorKind::ConnectionRefused))?;
        script.borrow_mut().remote = Some(remote);
        self.opened.borrow_mut().push(script.clone());
        Ok(MockConn {
            chunk: self.chunk,
            script,
        })
    }
}

pub struct MockConn {
    chunk: usize,
    script: Shared,
}

impl ErrorType for MockConn {
    type Error = MockError;
}

impl MockConn {
    fn read_some(&mut self, buf: &mut [u8]) -> usize {
        let mut s = self.script.borrow_mut();
        let n = buf.len().min(self.chunk).min(s.input.len());
        for (b, byte) in buf.iter_mut().zip(s.input.drain(..n)) {
            *b = byte;
        }
        n // 0 when the script is exhausted: the peer closed
    }

    fn write_some(&mut self, buf: &[u8]) -> Result<usize, MockError> {
        let mut s = self.script.borrow_mut();
        if s.fail_writes_after
            .is_some_and(|limit| s.written.len() + buf.len() > limit)
        {
            return Err(MockError(ErrorKind::BrokenPipe));
        }
        // Accept in small pieces too, so write_all's loop is exercised.
        let n = buf.len().min(self.chunk.max(1));
        s.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl embedded_io::Read for MockConn {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, MockError> {
        Ok(self.read_some(buf))
    }
}

impl embedded_io::ReadReady for MockConn {
    fn read_ready(&mut self) -> Result<bool, MockError> {
        Ok(!self.script.borrow().input.is_empty())
    }
}

impl embedded_io::Write for MockConn {
    fn write(&mut self, buf: &[u8]) -> Result<usize, MockError> {
        self.write_some(buf)
    }
    fn flush(&mut self) -> Result<(), MockError> {
        Ok(())
    }
}

impl zerosmq_embedded::Connect for MockStack {
    type Error = MockError;
    type Connection<'a> = MockConn;
    fn connect(&self, remote: SocketAddr) -> Result<MockConn, MockError> {
        self.open(remote)
    }
}

#[cfg(feature = "async")]
mod asynch {
    use super::*;

    impl embedded_io_async::Read for MockConn {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, MockError> {
            // Nothing to read: one Pending first, as a real stack waits for bytes (a single
            // poll, as in the publisher's drain of what has arrived, sees no data), then EOF.
            let (empty, hold_open, closed) = {
                let s = self.script.borrow();
                (s.input.is_empty(), s.hold_open, s.closed)
            };
            if empty && hold_open {
                std::future::pending::<()>().await;
            }
            if empty && !closed {
                yield_once().await;
            }
            Ok(self.read_some(buf))
        }
    }

    /// Pending once (waking itself), then ready.
    async fn yield_once() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                return std::task::Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await
    }

    impl embedded_io_async::Write for MockConn {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, MockError> {
            self.write_some(buf)
        }
        async fn flush(&mut self) -> Result<(), MockError> {
            Ok(())
        }
    }

    impl embedded_nal_async::TcpConnect for MockStack {
        type Error = MockError;
        type Connection<'a> = MockConn;
        async fn connect(&self, remote: SocketAddr) -> Result<MockConn, MockError> {
            self.open(remote)
        }
    }
}

/// Polls to completion; the mock is Pending only for one poll at a time (or while a test's
/// embassy-time timer runs), so polling in a loop suffices.
#[cfg(feature = "async")]
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
