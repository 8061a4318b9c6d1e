//! The async embedded node on embassy-net (smoltcp) over a TAP device, inside a network
//! namespace this test creates, against the real master in that namespace next to a std node.
//! Needs root and /dev/net/tun; skips with a printed reason where either is missing.

use std::path::Path;
use std::process::Command;

use zerosmq_tests::cargo_bin;

/// Deletes the namespace (and its tap0) however the test ends.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {args:?} failed");
}

fn skip_reason() -> Option<String> {
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

#[test]
fn async_node_on_embassy_net_over_tap_against_the_real_master() {
    if let Some(reason) = skip_reason() {
        println!("SKIPPED embassy-net TAP test: {reason}");
        return;
    }
    let bin = cargo_bin("zerosmq-embedded-host", "embassy-tap-node");
    let ns = Netns(format!("zsmq-emb-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]);
    ip(&[
        "netns", "exec", &ns.0, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap",
    ]);
    ip(&[
        "netns",
        "exec",
        &ns.0,
        "ip",
        "addr",
        "add",
        "192.168.69.100/24",
        "dev",
        "tap0",
    ]);
    ip(&["netns", "exec", &ns.0, "ip", "link", "set", "tap0", "up"]);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&bin)
        .output()
        .expect("embassy-tap-node runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "embassy-tap-node failed: {:?}",
        out.status
    );
}
