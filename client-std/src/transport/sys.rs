//! The few socket calls std does not offer, through `rustix` (no hand-written system calls): a
//! send that never blocks, a read into a buffer's uninitialised spare capacity, and a wait on
//! one descriptor with sub-millisecond precision (`ppoll`). The one `unsafe` of the
//! crate is here: handing received bytes to `BytesMut` without zeroing them first.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{RecvFlags, SendFlags};

/// Sends as much of `bytes` as the socket takes now; never blocks, even on a blocking socket,
/// and never raises SIGPIPE. `Ok(0)` when the send buffer is full.
pub(crate) fn send_now(fd: impl AsFd, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(&fd, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads what is there, without blocking, into `buf`'s spare capacity (at most `max` bytes);
/// `Ok(None)` when nothing is, `Ok(Some(0))` at end of stream.
pub(crate) fn recv_now(
    fd: impl AsFd,
    buf: &mut bytes::BytesMut,
    max: usize,
) -> io::Result<Option<usize>> {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    let n = loop {
        match rustix::net::recv(&fd, &mut spare[..len], RecvFlags::DONTWAIT) {
            Ok(((filled, _), _)) => break filled.len(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity (rustix returns
    // the initialised part, whose length is `n`), so they may become part of the buffer.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(Some(n))
}

/// Waits until `fd` is readable (or writable, for `write`), hung up or failed, or `timeout`
/// passed; true when it is.
pub(crate) fn poll_one(fd: BorrowedFd<'_>, write: bool, timeout: Duration) -> io::Result<bool> {
    let events = if write { PollFlags::OUT } else { PollFlags::IN };
    let mut fds = [PollFd::from_borrowed_fd(fd, events)];
    Ok(wait(&mut fds, Some(timeout))? && !fds[0].revents().is_empty())
}

/// `ppoll` over `fds`; false when interrupted.
fn wait(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<bool> {
    // ppoll, not epoll_wait's milliseconds: a 200 µs wait must stay 200 µs, neither 0 (a busy
    // loop) nor 1 ms (a receiver cycling over many topics would wait a millisecond on each
    // empty one).
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    match rustix::event::poll(fds, ts.as_ref()) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
