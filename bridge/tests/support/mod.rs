//! Real processes for the bridge tests: the master binary (built from the main workspace),
//! mosquitto and its command-line clients, the bridge binary. Every process is killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);

/// The main workspace (the bridge is `bridge/` inside it).
pub fn main_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The master binary: `ZEROSMQ_MASTER_BIN`, or built once from the main workspace into its own
/// target directory (where CI's `cargo test --workspace` already put it).
pub fn master_bin() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let path = match std::env::var_os("ZEROSMQ_MASTER_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let ws = main_workspace();
            let target = ws.join("target");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "-q",
                    "-j2",
                    "-p",
                    "zerosmq-master",
                    "--bin",
                    "zerosmq-master",
                ])
                .arg("--manifest-path")
                .arg(ws.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building zerosmq-master failed");
            target.join("debug").join("zerosmq-master")
        }
    };
    *built = Some(path.clone());
    path
}

/// A TCP port free right now on 127.0.0.1, for a listener a child process opens later. Taken
/// below the kernel's ephemeral range (`ip_local_port_range`, 32768 and up by default): a port
/// from `bind(0)` is released before the child binds it, and in between an outgoing connection
/// of a concurrent test (masters, Zenoh, mosquitto) could be given it ("Address already in use").
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Each test binary starts at its own place; tests in it take ports one after another.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) % SPAN;
        let port = LOW + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN)
}

/// A child process whose output lines are collected and can be waited for.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    rx: Receiver<String>,
    pub name: String,
}

impl Proc {
    /// Spawns `cmd`, reading both stdout and stderr line by line.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        Proc::spawn_with(name, cmd)
    }

    pub fn spawn_with(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let outs: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for out in outs {
            let lines = lines.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        Proc {
            child,
            lines,
            rx,
            name: name.to_owned(),
        }
    }

    /// Waits for the next line (from now on) that contains every one of `needles`.
    pub fn wait_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if needles.iter().all(|n| l.contains(n)) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "{}: no line with {needles:?} within {WAIT:?}; output:\n{}",
                    self.name,
                    self.lines().join("\n")
                ),
            }
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Lines so far that contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The master binary on 127.0.0.1; `port` 0 for a free one.
pub struct Master {
    pub proc: Proc,
    pub port: u16,
}

impl Master {
    pub fn start(port: u16) -> Master {
        Master::start_with(port, &[])
    }

    /// With more arguments (`--curve-keys FILE`, `--passwords FILE`).
    pub fn start_with(port: u16, extra: &[&str]) -> Master {
        let mut cmd = Command::new(master_bin());
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        let proc = Proc::spawn("master", cmd);
        let line = proc.wait_line(&["control service listening"]);
        let port = line
            .rsplit("port=")
            .next()
            .and_then(|p| p.trim().parse().ok())
            .expect("port");
        Master { proc, port }
    }

    pub fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

/// mosquitto on a free port with persistence in a directory of its own.
pub struct Mosquitto {
    pub proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
    /// More mosquitto.conf lines for the listener (TLS certificates).
    extra: String,
    /// More arguments for mosquitto_sub and mosquitto_pub (`--cafile`).
    pub client_args: Vec<String>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(|_| (String::new(), Vec::new()))
    }

    /// `setup` gets the broker's directory (to write certificates into) and returns more
    /// mosquitto.conf lines and more arguments for the command-line clients.
    pub fn start_with(setup: impl FnOnce(&Path) -> (String, Vec<String>)) -> Mosquitto {
        let dir = std::env::temp_dir().join(format!(
            "zerosmq-bridge-mosquitto-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("mosquitto dir");
        // mosquitto started as root drops to the `mosquitto` user, which must write here.
        let _ = Command::new("chmod").arg("777").arg(&dir).status();
        let port = free_port();
        let (extra, client_args) = setup(&dir);
        let proc = Mosquitto::run(&dir, port, &extra);
        Mosquitto {
            proc,
            port,
            dir,
            extra,
            client_args,
        }
    }

    fn run(dir: &Path, port: u16, extra: &str) -> Proc {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{extra}allow_anonymous true\nset_tcp_nodelay true\npersistence true\npersistence_location {}/\nlog_dest stderr\nlog_type all\n",
                dir.display()
            ),
        )
        .expect("mosquitto.conf");
        let mut cmd = Command::new("mosquitto");
        cmd.arg("-c").arg(&conf);
        let proc = Proc::spawn("mosquitto", cmd);
        proc.wait_line(&["mosquitto version", "running"]);
        proc
    }

    /// SIGTERM (mosquitto saves its sessions), then the same port and directory again.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    pub fn stop(&mut self) {
        self.proc.terminate();
    }

    pub fn start_again(&mut self) {
        self.proc = Mosquitto::run(&self.dir, self.port, &self.extra);
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `mosquitto_sub` on `topic`, MQTT 5, printing each payload on a line; waits for its SUBACK.
/// `session`: a persistent session with this client id (the broker keeps it across restarts).
pub fn mosquitto_sub(broker: &Mosquitto, topic: &str, qos: u8, session: Option<&str>) -> Proc {
    // stdbuf: mosquitto_sub's stdout is block-buffered on a pipe.
    let mut cmd = Command::new("stdbuf");
    cmd.args([
        "-oL",
        "mosquitto_sub",
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "-t",
        topic,
    ])
    .args(["-q", &qos.to_string(), "-V", "mqttv5", "-d"])
    .args(&broker.client_args);
    if let Some(id) = session {
        cmd.args(["-c", "-i", id, "-x", "300"]);
    }
    let p = Proc::spawn("mosquitto_sub", cmd);
    p.wait_line(&["received SUBACK"]);
    p
}

/// Publishes one message with `mosquitto_pub` (MQTT 5) and waits for it to finish.
pub fn mosquitto_pub(broker: &Mosquitto, topic: &str, payload: &[u8], qos: u8) {
    let mut child = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            topic,
        ])
        .args(["-q", &qos.to_string(), "-V", "mqttv5", "-s"])
        .args(&broker.client_args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub starts");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(payload).expect("payload to mosquitto_pub");
    }
    assert!(
        child.wait().expect("mosquitto_pub").success(),
        "mosquitto_pub failed"
    );
}

/// Payload lines a `mosquitto_sub` printed (its `-d` lines left out).
pub fn payloads(sub: &Proc) -> Vec<String> {
    sub.lines()
        .into_iter()
        .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed"))
        .collect()
}

/// The bridge binary.
pub fn bridge(args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zerosmq-bridge"));
    cmd.args(args)
        .args(["--stats-secs", "0", "--poll-ms", "100"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    Proc::spawn("bridge", cmd)
}

/// Waits for a process to exit by itself (at most `WAIT`; killed after it): its exit code.
pub fn wait_exit(p: &mut Proc) -> Option<i32> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = p.child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not exit within {WAIT:?}; output:\n{}",
        p.name,
        p.lines().join("\n")
    );
}

/// A CURVE key pair written by `zerosmq-master --curve-keygen FILE`: its public key.
pub fn curve_keygen(file: &Path) -> String {
    let out = Command::new(master_bin())
        .arg("--curve-keygen")
        .arg(file)
        .output()
        .expect("zerosmq-master --curve-keygen runs");
    assert!(out.status.success(), "--curve-keygen failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "zerosmq-bridge-{what}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stops the bridge with SIGTERM and reads its final counters.
pub fn final_counters(bridge: &mut Proc) -> std::collections::HashMap<String, u64> {
    bridge.terminate();
    // From the line channel, not `lines()`: the process may have exited before its reader
    // thread collected the last line.
    let line = bridge.wait_line(&["counters: final"]);
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// A std node on `master`.
pub fn node(master: &Master, name: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(master.endpoint())
        .connect()
        .expect("node")
}

/// Sequence numbers in payloads `PREFIX N`: how many of 0..n are missing, and whether those
/// present came in order (duplicates allowed: QoS 1 is at least once).
pub fn missing_and_order(payloads: &[String], prefix: &str, n: u64) -> (u64, bool) {
    let mut seen = vec![false; n as usize];
    let mut last = None;
    let mut ordered = true;
    for p in payloads {
        let Some(k) = p
            .strip_prefix(prefix)
            .and_then(|s| s.trim().parse::<u64>().ok())
        else {
            continue;
        };
        if k < n {
            seen[k as usize] = true;
        }
        if last.is_some_and(|l| k < l) {
            ordered = false;
        }
        last = Some(k);
    }
    (seen.iter().filter(|s| !**s).count() as u64, ordered)
}

/// A TCP proxy on 127.0.0.1 that the test can cut (every connection closed, new ones closed at
/// once) and restore: a link between two Zenoh peers that goes away and comes back.
pub struct CutProxy {
    pub port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl CutProxy {
    pub fn start(target: u16) -> CutProxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (c, cs) = (cut.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut cs = cs.lock().unwrap_or_else(|e| e.into_inner());
                    cs.push(client.try_clone().expect("clone"));
                    cs.push(server.try_clone().expect("clone"));
                }
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CutProxy { port, cut, conns }
    }

    /// Closes every connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Receives `n` messages `PREFIX i` on `sub` (or what arrives within `WAIT` of the last one).
pub fn receive_seq(sub: &mut zerosmq::Subscriber, until_last: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        match sub.recv_timeout(WAIT).expect("recv") {
            Some(m) => {
                let t = m.text().unwrap_or_default().to_owned();
                let last = t == until_last;
                got.push(t);
                if last {
                    return got;
                }
            }
            None => return got,
        }
    }
}

/// The typed topics' message type in the schema tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, zerosmq::Schema)]
#[postcard(crate = zerosmq::postcard_schema)]
pub struct Imu {
    pub seq: u32,
    pub accel: [f32; 3],
    pub frame: String,
}

/// Another type, which a typed topic of [`Imu`] refuses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, zerosmq::Schema)]
#[postcard(crate = zerosmq::postcard_schema)]
pub struct Other {
    pub celsius: f64,
}

/// The `i`th value of a typed stream (float bits and string lengths vary).
pub fn imu(i: u32) -> Imu {
    let f = i as f32;
    Imu {
        seq: i,
        accel: [f * 0.1, -f * 1e-3, f.sqrt()],
        frame: "imu_link".repeat(i as usize % 4),
    }
}

/// The schema text the engines carry for `T` (base64 of what its typed publisher declares).
pub fn schema_text<T: zerosmq::Schema + ?Sized>() -> String {
    let bytes = postcard::to_stdvec(T::SCHEMA).expect("schema encodes");
    zerosmq_bridge::bridge::Schema::from_bytes(bytes).text
}

/// Receives `n` messages on `sub`: each payload and its value decoded as `Imu`.
pub fn receive_values(sub: &mut zerosmq::Subscriber, n: usize) -> Vec<(Vec<u8>, Imu)> {
    let mut got = Vec::new();
    while got.len() < n {
        match sub.recv_timeout(WAIT).expect("recv") {
            Some(m) => got.push((m.payload().to_vec(), m.decode::<Imu>().expect("an Imu"))),
            None => panic!("only {} of {n} typed messages arrived", got.len()),
        }
    }
    got
}

/// Every value arrived byte for byte as it was published, and decodes to what was sent.
pub fn assert_values(got: &[(Vec<u8>, Imu)], sent: &[Imu]) {
    assert_eq!(got.len(), sent.len());
    for ((bytes, value), want) in got.iter().zip(sent) {
        assert_eq!(
            *bytes,
            postcard::to_stdvec(want).expect("encodes"),
            "byte for byte"
        );
        assert_eq!(value, want);
    }
}

/// Master B's topic has master A's schema: the same type (`topic_schema`), and the same bytes
/// (B's master, which compares schemas byte for byte, takes a local `Imu` publisher and
/// refuses another type).
pub fn assert_same_schema(a: &zerosmq::Node, b: &zerosmq::Node, topic: &str) {
    let sa = a.topic_schema(topic).expect("schema on A");
    assert!(sa.is_some(), "typed on A");
    assert_eq!(b.topic_schema(topic).expect("schema on B"), sa);
    b.advertise_typed::<Imu>(topic)
        .expect("B takes the same type");
    match b.advertise_typed::<Other>(topic) {
        Err(zerosmq::Error::Refused {
            code: zerosmq::ErrorCode::SchemaMismatch,
            ..
        }) => {}
        other => panic!("B refuses another type: {other:?}"),
    }
}
