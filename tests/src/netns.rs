//! A network namespace with a TAP device, for tests that run an embedded TCP stack (embassy-net
//! on the host, or firmware under QEMU) against the real master without touching the host's
//! network. Needs root and /dev/net/tun: [`skip_reason`] says when either is missing.

use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::Command;

/// Why a namespace cannot be made here, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root: creating a network namespace needs root".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the `ip` command (iproute2) is missing".into());
    }
    None
}

/// Runs `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {args:?} failed");
}

/// A network namespace, deleted (with its devices) however the test ends.
#[derive(Debug)]
pub struct Netns(pub String);

impl Netns {
    /// A namespace `name` with loopback up and TAP device `tap` holding `cidr` (the host's
    /// side of the TAP link, e.g. `192.168.69.100/24`).
    pub fn with_tap(name: &str, tap: &str, cidr: &str) -> Netns {
        ip(&["netns", "add", name]);
        let ns = Netns(name.to_owned());
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        exec(&["link", "set", "lo", "up"]);
        exec(&["tuntap", "add", "dev", tap, "mode", "tap"]);
        exec(&["addr", "add", cidr, "dev", tap]);
        exec(&["link", "set", tap, "up"]);
        ns
    }

    /// Moves the calling thread into the namespace: processes and threads it starts from now
    /// on (the master, QEMU, std nodes' I/O threads) are in it too. Other threads are not.
    pub fn enter(&self) {
        let file = std::fs::File::open(format!("/run/netns/{}", self.0)).expect("netns file");
        // SAFETY: setns(2) with a namespace descriptor we own and CLONE_NEWNET only changes the
        // calling thread's network namespace; it touches no memory of this process.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {}: {}",
            self.0,
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
