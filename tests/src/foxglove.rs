//! The official Foxglove protocol client (`@foxglove/ws-protocol` from npm, run by Node.js,
//! `tests/foxglove/client.mjs`) as a peer of the master's Foxglove endpoint.

use std::io::{BufRead as _, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Instant;

use serde_json::Value;

use crate::{MasterProcess, WAIT};

const CLIENT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/foxglove");

/// `npm ci` in tests/foxglove once per test process when its modules are missing (scripts/test.sh
/// installs them ahead; this keeps `cargo test` working on a developer's machine).
fn install_client() {
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return;
    }
    let module = std::path::Path::new(CLIENT_DIR).join("node_modules/@foxglove/ws-protocol");
    if !module.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(CLIENT_DIR)
            .status()
            .expect("npm runs (apt-get install nodejs npm)");
        assert!(status.success(), "npm ci in {CLIENT_DIR} failed");
    }
    *installed = true;
}

/// The Foxglove port a `zerosmq-master --foxglove HOST:0` child logged.
pub fn endpoint_port(master: &MasterProcess) -> u16 {
    master.logged_port("Foxglove endpoint listening")
}

/// One Node.js client process: commands in, events out (JSON, a line each); killed on drop.
pub struct FoxgloveClient {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Value>,
    /// Every event seen so far, in order (for failure messages).
    pub seen: Vec<Value>,
    /// The server's `serverInfo` (name, capabilities, supported encodings).
    pub server_info: Value,
}

impl FoxgloveClient {
    /// Connects to `ws://127.0.0.1:PORT` and waits for the server's `serverInfo`.
    pub fn connect(port: u16) -> FoxgloveClient {
        install_client();
        let mut child = Command::new("node")
            .arg(format!("{CLIENT_DIR}/client.mjs"))
            .arg(format!("ws://127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (apt-get install nodejs)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("client printed {line:?}: {e}"));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let mut client = FoxgloveClient {
            child,
            stdin,
            events,
            seen: Vec::new(),
            server_info: Value::Null,
        };
        let open = client.wait_for("the connection open", |e| e["ev"] == "open");
        assert_eq!(open["protocol"], "foxglove.sdk.v1", "{open}");
        client.server_info = client.wait_for("serverInfo", |e| e["ev"] == "serverInfo");
        client
    }

    /// Sends one command (see client.mjs).
    pub fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").expect("client reads commands");
        self.stdin.flush().expect("flush");
    }

    /// The next event, if one comes within `timeout`.
    pub fn next_event(&mut self, timeout: std::time::Duration) -> Option<Value> {
        let event = self.events.recv_timeout(timeout).ok()?;
        self.seen.push(event.clone());
        Some(event)
    }

    /// The next event that satisfies `pred`, skipping others; panics after [`WAIT`] without one.
    pub fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Err(_) => panic!(
                    "the Foxglove client saw no {what}; last events: {:?}",
                    &self.seen[self.seen.len().saturating_sub(20)..]
                ),
            }
        }
    }
}

impl Drop for FoxgloveClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
