//! The async node against a scripted mock stack (reads fragmented down to one byte, writes failed
//! on demand), polled by a minimal executor: the same flows as the blocking mock tests.
#![cfg(feature = "async")]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use zerosmq_embedded::asynch::Node;
use zerosmq_embedded::Error;

const REP: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-rep.bin");
const SUB_V31: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-sub-v31.bin");
const XPUB: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-xpub.bin");
const MASTER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5555);

/// Polls to completion; the mock never returns Pending, so one poll per step suffices.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[derive(Debug, PartialEq)]
struct MockError(ErrorKind);
impl std::fmt::Display for MockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl std::error::Error for MockError {}
impl embedded_io_async::Error for MockError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

#[derive(Default)]
struct Script {
    input: VecDeque<u8>,
    written: Vec<u8>,
    fail_writes_after: Option<usize>,
}
type Shared = Rc<RefCell<Script>>;

struct MockStack {
    chunk: usize,
    scripts: RefCell<VecDeque<Shared>>,
}

impl MockStack {
    fn new(chunk: usize) -> Self {
        MockStack {
            chunk,
            scripts: RefCell::default(),
        }
    }
    fn script(&self, input: &[u8], fail_writes_after: Option<usize>) -> Shared {
        let s = Rc::new(RefCell::new(Script {
            input: input.iter().copied().collect(),
            fail_writes_after,
            ..Script::default()
        }));
        self.scripts.borrow_mut().push_back(s.clone());
        s
    }
}

struct MockConn {
    chunk: usize,
    script: Shared,
}

impl ErrorType for MockConn {
    type Error = MockError;
}

impl Read for MockConn {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, MockError> {
        let mut s = self.script.borrow_mut();
        let n = buf.len().min(self.chunk).min(s.input.len());
        for b in buf.iter_mut().take(n) {
            *b = s.input.pop_front().unwrap();
        }
        Ok(n)
    }
}

impl Write for MockConn {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, MockError> {
        let mut s = self.script.borrow_mut();
        if s.fail_writes_after
            .is_some_and(|l| s.written.len() + buf.len() > l)
        {
            return Err(MockError(ErrorKind::BrokenPipe));
        }
        let n = buf.len().min(self.chunk);
        s.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), MockError> {
        Ok(())
    }
}

impl embedded_nal_async::TcpConnect for MockStack {
    type Error = MockError;
    type Connection<'a> = MockConn;
    async fn connect(&self, _remote: SocketAddr) -> Result<MockConn, MockError> {
        let script = self
            .scripts
            .borrow_mut()
            .pop_front()
            .ok_or(MockError(ErrorKind::ConnectionRefused))?;
        Ok(MockConn {
            chunk: self.chunk,
            script,
        })
    }
}

#[test]
fn async_publisher_reconnects_after_failed_write() {
    for chunk in [1, 7, 4096] {
        let stack = MockStack::new(chunk);
        stack.script(REP, None);
        let broken = stack.script(SUB_V31, Some(64 + 27));
        stack.script(REP, None);
        let data = stack.script(SUB_V31, None);
        let node = Node::new(&stack, MASTER, "n").unwrap();
        let mut buf = [0u8; 128];
        block_on(async {
            let mut publisher = node.advertise("imu", &mut buf).await.unwrap();
            publisher.wait_ready().await.unwrap();
            publisher.publish(b"hello").await.unwrap();
        });
        assert_eq!(broken.borrow().written.len(), 64 + 27);
        assert!(data.borrow().written.ends_with(b"\x00\x09imu hello"));
    }
}

#[test]
fn async_subscriber_probe_receive_skip_and_reconnect() {
    for chunk in [1, 3, 4096] {
        let stack = MockStack::new(chunk);
        stack.script(REP, None);
        let data = stack.script(&XPUB[..64 + 28], None);
        stack.script(REP, None);
        let data2 = stack.script(&XPUB[..64 + 28], None);
        let node = Node::new(&stack, MASTER, "n").unwrap();
        let mut buf = [0u8; 64];
        block_on(async {
            let mut sub = node.subscribe("imu", &mut buf).await.unwrap();
            let probe = sub.probe().to_vec();
            {
                let mut d = data.borrow_mut();
                d.input.extend([0x00, probe.len() as u8]);
                d.input.extend(&probe);
                d.input.extend(b"\x00\x05imu 1");
                d.input.extend([0x00, 80]);
                d.input.extend([0u8; 80]);
            }
            sub.wait_ready().await.unwrap();
            assert_eq!(sub.recv().await.unwrap(), b"1");
            assert_eq!(
                sub.recv().await,
                Err(Error::FrameTooLarge {
                    len: 80,
                    capacity: 64
                })
            );
            data2.borrow_mut().input.extend(b"\x00\x05imu 2");
            // EOF on the first connection: new grant, new connection, same subscriber.
            assert_eq!(sub.recv().await.unwrap(), b"2");
        });
        assert!(data.borrow().written.windows(6).any(|w| w == b"CANCEL"));
    }
}

#[test]
fn async_plain_node_authenticates_and_reports_a_refusal() {
    let mut g = zerosmq_core::zmtp::Greeting::ours_with(b"PLAIN");
    g.as_server = true;
    let plain = |rest: &[u8]| [&g.to_bytes()[..], b"\x04\x08\x07WELCOME", rest].concat();
    for chunk in [1, 7, 4096] {
        let stack = MockStack::new(chunk);
        stack.script(&plain(&REP[64..]), None);
        let data = stack.script(&plain(&SUB_V31[64..]), None);
        stack.script(
            include_bytes!("../../core/src/zmtp/testdata/libzmq-plain-xpub-refused.bin"),
            None,
        );
        let node = Node::new(&stack, MASTER, "n")
            .unwrap()
            .with_plain("alice", "wonderland")
            .unwrap();
        let mut buf = [0u8; 128];
        block_on(async {
            let mut publisher = node.advertise("imu", &mut buf).await.unwrap();
            publisher.wait_ready().await.unwrap();
            publisher.publish(b"hello").await.unwrap();
            drop(publisher);
            assert_eq!(
                node.graph(&mut buf).await,
                Err(Error::AuthFailed { status: 400 })
            );
        });
        let written = data.borrow().written.clone();
        assert!(written.windows(12).any(|w| w == b"\x05HELLO\x05alice"));
        assert!(written.windows(9).any(|w| w == b"\x08INITIATE"));
        assert!(written.ends_with(b"\x00\x09imu hello"));
    }
}
