//! The async embedded node on embassy-net (smoltcp) over a TAP device, inside a network
//! namespace this test creates, against the real master in that namespace next to a std node.
//! Needs root and /dev/net/tun; skips with a printed reason where either is missing.

use std::process::Command;

use zerosmq_tests::cargo_bin;
use zerosmq_tests::netns::{skip_reason, Netns};

#[test]
fn async_node_on_embassy_net_over_tap_against_the_real_master() {
    if let Some(reason) = skip_reason() {
        println!("SKIPPED embassy-net TAP test: {reason}");
        return;
    }
    let bin = cargo_bin("zerosmq-embedded-host", "embassy-tap-node");
    let ns = Netns::with_tap(
        &format!("zsmq-emb-{}", std::process::id()),
        "tap0",
        "192.168.69.100/24",
    );
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
