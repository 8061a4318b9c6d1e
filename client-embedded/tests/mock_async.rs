//! The async node against a scripted mock stack (reads fragmented down to one byte, writes failed
//! on demand), polled by a minimal executor: the same flows as the blocking mock tests.
#![cfg(feature = "async")]

mod mock;

use mock::{block_on, MockStack, MASTER};
use zerosmq_embedded::asynch::Node;
use zerosmq_embedded::Error;

const REP: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-rep.bin");
const SUB_V31: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-sub-v31.bin");
const XPUB: &[u8] = include_bytes!("../../core/src/zmtp/testdata/libzmq-xpub.bin");

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
