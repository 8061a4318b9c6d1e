//! Shared helpers for the end-to-end tests: a real master on a free port, nodes bound to it.

use std::time::Duration;

pub use zerosmq_master::{Master, MasterConfig, MasterHandle};

/// How long tests wait for anything that should happen at once; generous for loaded CI machines.
pub const WAIT: Duration = Duration::from_secs(10);

/// A master on 127.0.0.1 and a free control port, in this process.
pub fn start_master() -> MasterHandle {
    start_master_with(MasterConfig::default())
}

/// A master on 127.0.0.1 and a free control port, with other settings from `config`.
pub fn start_master_with(config: MasterConfig) -> MasterHandle {
    Master::spawn(MasterConfig {
        bind: "127.0.0.1".into(),
        port: 0,
        ..config
    })
    .expect("master starts")
}

/// A std node talking to `master`.
pub fn node(master: &MasterHandle, name: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(master.control_endpoint())
        .timeout(WAIT)
        .connect()
        .expect("node")
}

/// A raw libzmq REQ socket on the master's control port, as an original node has.
pub fn raw_control(ctx: &zmq::Context, master: &MasterHandle) -> zmq::Socket {
    let req = ctx.socket(zmq::REQ).expect("req socket");
    req.set_linger(0).expect("linger");
    req.set_rcvtimeo(WAIT.as_millis() as i32).expect("rcvtimeo");
    req.connect(&master.control_endpoint()).expect("connect");
    req
}

/// Sends one raw request and returns the reply as bytes.
pub fn raw_request(req: &zmq::Socket, bytes: &[u8]) -> Vec<u8> {
    req.send(bytes, 0).expect("send request");
    req.recv_bytes(0).expect("the master replies")
}

/// Path of a workspace binary, built (or brought up to date) on first use in this test process, so
/// that a test run of this package alone uses current binaries of the other packages.
pub fn cargo_bin(package: &str, bin: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<bin>
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    let path = profile_dir.join(bin);
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == bin) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", package, "--bin", bin]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building {bin} failed");
        built.push(bin.to_owned());
    }
    path
}
