//! The system calls std does not offer: a send that never blocks on a blocking socket, a read
//! into uninitialised spare capacity, poll over two descriptors, and an eventfd waker.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Sends as much of `parts` (gathered, one system call) as the socket takes now; never blocks,
/// even on a blocking socket. `Ok(0)` when the send buffer is full.
pub(crate) fn send_now(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 4];
    let n = parts.len().min(iov.len());
    for (v, p) in iov.iter_mut().zip(parts) {
        *v = libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
    }
    // SAFETY: a zeroed msghdr is valid; iov points to `n` initialised iovecs over live slices.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n as _;
    loop {
        // SAFETY: fd is a socket the caller owns; msg is valid for the call.
        let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// Reads what is there, without blocking, into `buf`'s spare capacity (at most `max` bytes);
/// `Ok(None)` when nothing is, `Ok(Some(0))` at end of stream.
pub(crate) fn recv_now(
    fd: RawFd,
    buf: &mut bytes::BytesMut,
    max: usize,
) -> io::Result<Option<usize>> {
    use bytes::BufMut;
    let spare = buf.chunk_mut();
    let len = spare.len().min(max);
    loop {
        // SAFETY: the kernel writes at most `len` bytes into the spare capacity, which is
        // allocated and writable; nothing reads it before `advance_mut` below.
        let r = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
        if r >= 0 {
            // SAFETY: the kernel initialised `r` bytes.
            unsafe { buf.advance_mut(r as usize) };
            return Ok(Some(r as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// Readiness of [`poll_in`]'s two descriptors.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Readable {
    pub first: bool,
    pub second: bool,
}

/// Waits until `first` or `second` (if any) is readable or hung up, or `timeout` passed
/// (`None`: no limit).
pub(crate) fn poll_in(
    first: RawFd,
    second: Option<RawFd>,
    timeout: Option<Duration>,
) -> io::Result<Readable> {
    let mut fds = [
        libc::pollfd {
            fd: first,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: second.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let n = if second.is_some() { 2 } else { 1 };
    if !ppoll(&mut fds[..n], timeout)? {
        return Ok(Readable::default());
    }
    let hit = |f: &libc::pollfd| f.revents != 0;
    Ok(Readable {
        first: hit(&fds[0]),
        second: n == 2 && hit(&fds[1]),
    })
}

/// Waits until `fd` is readable (or writable, for `write`), hung up or failed, or `timeout`
/// passed; true when it is.
pub(crate) fn poll_one(fd: RawFd, write: bool, timeout: Duration) -> io::Result<bool> {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut fds = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    Ok(ppoll(&mut fds, Some(timeout))? && fds[0].revents != 0)
}

/// `ppoll` over `fds`; false when interrupted.
fn ppoll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<bool> {
    // ppoll, not poll: a 200 µs wait must stay 200 µs, neither 0 (a busy loop) nor 1 ms (a
    // receiver cycling over many topics would wait a millisecond on each empty one).
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: fds is a valid array of `fds.len()` pollfd; ts_ptr is null or points to a live
    // timespec.
    let r = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(true)
}

/// Wakes a thread sleeping in [`poll_in`] on [`Waker::fd`] (an eventfd).
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        // SAFETY: eventfd has no pointer arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor owned by nobody else.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live array. A full counter (never, in practice) still
        // leaves the eventfd readable, which is all a wake needs.
        let _ = unsafe { libc::write(self.fd(), one.as_ptr().cast(), 8) };
    }

    /// Clears pending wakes.
    pub(crate) fn reset(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live array; non-blocking.
        let _ = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), 8) };
    }
}
