//! The libzmq data path, kept for CURVE (core has no CURVE): an XPUB for a publisher (a PUB that
//! also reports the master's subscription), a SUB for a subscriber. The topic logic (frames,
//! ready probe, grant following) is the same as the native path's and lives in
//! `crate::publisher` and `crate::subscriber`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use zerosmq_core::control::ControlRequest;

use super::subscriber_link::Frames;
use crate::error::{ZmqErrorExt as _, ZmqResultExt as _};
use crate::node::{DataLink, NodeInner};
use crate::Result;

/// How long a publisher's socket keeps unsent messages when it is dropped.
const LINGER_MS: i32 = 1_000;

pub(crate) struct ZmqPublisher {
    socket: zmq::Socket,
    link: DataLink,
    ready: bool,
}

impl ZmqPublisher {
    pub(crate) fn open(node: &std::sync::Arc<NodeInner>, request: ControlRequest) -> Result<Self> {
        let socket = node.ctx.socket(zmq::XPUB).zmq()?;
        socket.set_linger(LINGER_MS).zmq()?;
        socket.set_sndhwm(node.zmq_hwm()).zmq()?;
        let link = DataLink::open(node, request, None)?;
        link.connect_zmq(node, &socket)?;
        Ok(ZmqPublisher {
            socket,
            link,
            ready: false,
        })
    }

    /// Reconnects when the master granted a new port; the new path is not ready until the
    /// master subscribes again.
    fn follow_grant(&mut self, node: &NodeInner) -> Result<()> {
        if self.link.follow(node, &self.socket)? {
            self.ready = false;
        }
        Ok(())
    }

    pub(crate) fn is_ready(&mut self, node: &NodeInner) -> Result<bool> {
        self.follow_grant(node)?;
        self.drain_subscriptions()?;
        Ok(self.ready)
    }

    pub(crate) fn wait_ready(&mut self, node: &NodeInner, timeout: Duration) -> Result<bool> {
        self.follow_grant(node)?;
        let deadline = Instant::now() + timeout;
        while !self.ready {
            let left = deadline.saturating_duration_since(Instant::now());
            if self
                .socket
                .poll(zmq::POLLIN, left.as_millis() as i64)
                .zmq()?
                == 0
            {
                return Ok(false);
            }
            self.drain_subscriptions()?;
        }
        Ok(true)
    }

    fn drain_subscriptions(&mut self) -> Result<()> {
        loop {
            match self.socket.recv_msg(zmq::DONTWAIT) {
                Ok(m) if m.first() == Some(&1) => self.ready = true,
                Ok(_) => {}
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(e) => return Err(e.into_error()),
            }
        }
    }

    /// Sends `head` + `body` as the first frame, then `rest`. Never blocks: with no master yet,
    /// or its queue full, libzmq drops the message.
    pub(crate) fn send(
        &mut self,
        node: &NodeInner,
        head: &[u8],
        body: &[u8],
        rest: &[&[u8]],
    ) -> Result<()> {
        self.follow_grant(node)?;
        // Built in the ZeroMQ message itself: one copy of the payload.
        let mut msg = zmq::Message::with_size(head.len() + body.len());
        msg[..head.len()].copy_from_slice(head);
        msg[head.len()..].copy_from_slice(body);
        let more = if rest.is_empty() { 0 } else { zmq::SNDMORE };
        self.socket
            .send(msg, more | zmq::DONTWAIT)
            .or_else(drop_when_full)?;
        for (i, part) in rest.iter().enumerate() {
            let more = if i + 1 < rest.len() { zmq::SNDMORE } else { 0 };
            self.socket.send(*part, more | zmq::DONTWAIT).zmq()?;
        }
        Ok(())
    }
}

/// PUB-type sockets drop at the high-water mark; with DONTWAIT a full queue reads as EAGAIN.
fn drop_when_full(e: zmq::Error) -> Result<()> {
    match e {
        zmq::Error::EAGAIN => Ok(()),
        e => Err(e.into_error()),
    }
}

pub(crate) struct ZmqSubscriber {
    socket: zmq::Socket,
    link: DataLink,
}

/// A libzmq frame shared as [`Bytes`] without a copy.
struct Frame(zmq::Message);

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl ZmqSubscriber {
    pub(crate) fn open(
        node: &std::sync::Arc<NodeInner>,
        request: ControlRequest,
        prefix: &[u8],
    ) -> Result<Self> {
        let socket = node.ctx.socket(zmq::SUB).zmq()?;
        socket.set_linger(0).zmq()?;
        socket.set_rcvhwm(node.zmq_hwm()).zmq()?;
        socket.set_subscribe(prefix).zmq()?;
        let link = DataLink::open(node, request, None)?;
        link.connect_zmq(node, &socket)?;
        Ok(ZmqSubscriber { socket, link })
    }

    pub(crate) fn subscribe(&mut self, prefix: &[u8]) -> Result<()> {
        self.socket.set_subscribe(prefix).zmq()
    }

    pub(crate) fn unsubscribe(&mut self, prefix: &[u8]) -> Result<()> {
        self.socket.set_unsubscribe(prefix).zmq()
    }

    pub(crate) fn moved(&self) -> bool {
        self.link.changed()
    }

    pub(crate) fn follow(&mut self, node: &NodeInner) -> Result<()> {
        self.link.follow(node, &self.socket)?;
        Ok(())
    }

    /// One message within `timeout`.
    pub(crate) fn recv(&mut self, timeout: Duration) -> Result<Option<Frames>> {
        // Receive first: under load a message is nearly always queued, and `zmq_poll` costs a
        // poll(2) system call and two socket-option reads per call.
        let frame = match self.socket.recv_msg(zmq::DONTWAIT) {
            Ok(m) => m,
            Err(zmq::Error::EAGAIN) if timeout.is_zero() => return Ok(None),
            Err(zmq::Error::EAGAIN) => {
                if self
                    .socket
                    .poll(zmq::POLLIN, timeout.as_millis() as i64)
                    .zmq()?
                    == 0
                {
                    return Ok(None);
                }
                match self.socket.recv_msg(zmq::DONTWAIT) {
                    Ok(m) => m,
                    Err(zmq::Error::EAGAIN) => return Ok(None),
                    Err(e) => return Err(e.into_error()),
                }
            }
            Err(e) => return Err(e.into_error()),
        };
        let mut more = frame.get_more();
        let mut parts = Vec::new();
        while more {
            let part = self.socket.recv_msg(0).zmq()?;
            more = part.get_more();
            parts.push(Bytes::from_owner(Frame(part)));
        }
        Ok(Some((Bytes::from_owner(Frame(frame)), parts)))
    }
}
