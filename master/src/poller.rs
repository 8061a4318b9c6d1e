//! A minimal epoll wrapper for the forwarder's wake-ups.
//!
//! `zmq_poll` over every socket costs a `poll` system call over all their descriptors plus two
//! socket-option reads per socket on every wake-up, so with 1,000 topics (2,000 sockets) each
//! wake-up touched every topic. epoll over the sockets' `ZMQ_FD` reports only the sockets whose
//! command mailbox was signalled. `ZMQ_FD` is a notification, not readiness: after any operation
//! on a socket the caller must read `ZMQ_EVENTS` (or receive until `EAGAIN`) before sleeping
//! again; the broker does that (see `broker.rs`).
//!
//! Declared by hand against the C library (the master has no `libc` dependency); Linux only,
//! as the master.

use std::io;
use std::os::fd::RawFd;

/// `struct epoll_event`; packed on x86_64, as in the kernel's and glibc's headers.
#[repr(C)]
#[cfg_attr(target_arch = "x86_64", repr(packed))]
#[derive(Clone, Copy)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

pub const EPOLLIN: u32 = 0x001;
pub const EPOLLOUT: u32 = 0x004;
const EPOLL_CTL_ADD: i32 = 1;
const EPOLL_CTL_DEL: i32 = 2;
const EPOLL_CTL_MOD: i32 = 3;
const EPOLL_CLOEXEC: i32 = 0o2000000;
const EINTR: i32 = 4;
const EEXIST: i32 = 17;

extern "C" {
    fn epoll_create1(flags: i32) -> i32;
    fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: *mut EpollEvent) -> i32;
    fn epoll_wait(epfd: i32, events: *mut EpollEvent, maxevents: i32, timeout: i32) -> i32;
    fn close(fd: i32) -> i32;
}

/// An epoll instance watching descriptors for input, each with a 64-bit token.
pub struct Poller {
    epfd: RawFd,
    events: Vec<EpollEvent>,
}

impl Poller {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked.
        let epfd = unsafe { epoll_create1(EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Poller {
            epfd,
            events: vec![EpollEvent { events: 0, data: 0 }; 256],
        })
    }

    /// Watches `fd` for input; `token` comes back with its events. Watching a descriptor twice
    /// replaces nothing and is not an error.
    pub fn add(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_with(fd, token, EPOLLIN)
    }

    /// Watches `fd` for `events` (`EPOLLIN`, `EPOLLOUT`), level-triggered.
    pub fn add_with(&mut self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = EpollEvent {
            events,
            data: token,
        };
        // SAFETY: `ev` lives across the call; the kernel copies it.
        if unsafe { epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(EEXIST) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&mut self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = EpollEvent {
            events,
            data: token,
        };
        // SAFETY: as in `add_with`.
        if unsafe { epoll_ctl(self.epfd, EPOLL_CTL_MOD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd` (a descriptor already closed is gone from epoll by itself).
    pub fn remove(&mut self, fd: RawFd) {
        let mut ev = EpollEvent { events: 0, data: 0 };
        // SAFETY: as in `add`; failure (ENOENT, EBADF) only means it was not watched.
        unsafe {
            epoll_ctl(self.epfd, EPOLL_CTL_DEL, fd, &mut ev);
        }
    }

    /// Waits up to `timeout_ms` (-1: no limit, 0: just look); returns the ready tokens with
    /// their event bits.
    pub fn wait_events(
        &mut self,
        timeout_ms: i32,
    ) -> io::Result<impl Iterator<Item = (u64, u32)> + '_> {
        // SAFETY: the buffer holds `len` events and outlives the call.
        let n = unsafe {
            epoll_wait(
                self.epfd,
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        let n = if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(EINTR) {
                return Err(e);
            }
            0
        } else {
            n as usize
        };
        Ok(self.events[..n].iter().map(|e| (e.data, e.events)))
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe {
            close(self.epfd);
        }
    }
}
