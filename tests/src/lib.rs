//! Shared helpers for the end-to-end tests: a real master on a free port, nodes bound to it.

use std::time::Duration;

pub use zerosmq_master::{Master, MasterConfig, MasterHandle};

pub mod fault_proxy;
pub mod foxglove;
pub mod hostile;
pub mod netns;
pub mod web;

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
    raw_control_at(ctx, &master.control_endpoint())
}

/// A raw libzmq REQ socket on the control service at `endpoint` (a [`MasterProcess`]'s).
pub fn raw_control_at(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let req = ctx.socket(zmq::REQ).expect("req socket");
    req.set_linger(0).expect("linger");
    req.set_rcvtimeo(WAIT.as_millis() as i32).expect("rcvtimeo");
    req.connect(endpoint).expect("connect");
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
    // target/<profile>/deps/<test> (a test) or target/<profile>/<bin> (the soak binary)
    let dir = exe.parent().expect("executable directory");
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().expect("target profile dir")
    } else {
        dir
    };
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

/// The master binary as a child process (killed on drop), for tests that kill it, count its
/// descriptors or measure its memory.
pub struct MasterProcess {
    pub child: std::process::Child,
    /// The address it is bound to.
    pub bind: String,
    pub port: u16,
    /// The master's log lines, as they come.
    pub log: std::sync::mpsc::Receiver<String>,
}

impl MasterProcess {
    /// Starts `zerosmq-master --bind 127.0.0.1 ARGS...` (with `--port 0` unless ARGS give one)
    /// and waits for its control port.
    pub fn start(args: &[&str]) -> MasterProcess {
        Self::start_on("127.0.0.1", args)
    }

    /// Starts `zerosmq-master --bind BIND ARGS...` (e.g. on a TAP device's address).
    pub fn start_on(bind: &str, args: &[&str]) -> MasterProcess {
        use std::io::BufRead as _;
        let child = std::process::Command::new(cargo_bin("zerosmq-master", "zerosmq-master"))
            .args(["--bind", bind])
            .args(if args.contains(&"--port") {
                &[][..]
            } else {
                &["--port", "0"][..]
            })
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("master starts");
        let (tx, log) = std::sync::mpsc::channel();
        // Owned by the struct from here on, so that a failed start still kills and reaps it.
        let mut master = MasterProcess {
            child,
            bind: bind.to_owned(),
            port: 0,
            log,
        };
        let out = master.child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        master.port = master.logged_port("control service listening");
        master
    }

    /// The `port=` of the next log line that contains `needle` (lines before it are read and
    /// passed over), within [`WAIT`].
    pub fn logged_port(&self, needle: &str) -> u16 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the master logs '{needle}' with its port"));
            if line.contains(needle) {
                return line
                    .rsplit("port=")
                    .next()
                    .and_then(|p| p.trim().parse().ok())
                    .expect("port");
            }
        }
    }

    pub fn endpoint(&self) -> String {
        format!("tcp://{}:{}", self.bind, self.port)
    }

    /// Open file descriptors of the master process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    /// Resident memory of the master process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// Peak resident memory of the master process so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 50 ms until it holds or `within` passes; returns how long it took.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Python script run as an independent peer (pyzmq, eclipse-zenoh), talking to the test on
/// its stdout, a line per fact; killed when dropped.
pub struct PythonPeer {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    input: Option<std::process::ChildStdin>,
}

impl PythonPeer {
    /// Runs `python3 -c script args…`; its stderr goes to the test's output.
    pub fn start(script: &str, args: &[&str]) -> PythonPeer {
        use std::process::{Command, Stdio};
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (pyzmq: pip install pyzmq)");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let input = child.stdin.take();
        PythonPeer { child, out, input }
    }

    /// The next line the script printed, trimmed ("" once it exited).
    pub fn line(&mut self) -> String {
        use std::io::BufRead as _;
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    /// Writes `line` to the script's stdin.
    pub fn say(&mut self, line: &str) {
        use std::io::Write as _;
        if let Some(input) = &mut self.input {
            let _ = writeln!(input, "{line}");
            let _ = input.flush();
        }
    }

    /// The script's stdin, for a writer on another thread than the reader of its lines
    /// ([`say`](Self::say) writes nothing after this).
    pub fn take_input(&mut self) -> Option<std::process::ChildStdin> {
        self.input.take()
    }

    /// The script's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Every line until the script exits; panics if it failed.
    pub fn finish(mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "peer failed: {lines:?}");
        lines
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy to `127.0.0.1:upstream` that records every byte it forwards, both ways (to show
/// what travels in clear).
pub struct CaptureProxy {
    pub port: u16,
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl CaptureProxy {
    pub fn start(upstream: u16) -> CaptureProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let all = bytes.clone();
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { return };
                let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                for (mut from, mut to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    let all = all.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 << 10];
                        while let Ok(n @ 1..) = std::io::Read::read(&mut from, &mut buf) {
                            all.lock().unwrap().extend_from_slice(&buf[..n]);
                            if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CaptureProxy { port, bytes }
    }

    /// Everything forwarded so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The operating system's generator (`/dev/urandom`), as a board's hardware RNG: what CURVE
/// tests hand to core and to the embedded node.
pub struct Urandom(std::fs::File);

impl Urandom {
    pub fn new() -> Urandom {
        Urandom(std::fs::File::open("/dev/urandom").expect("/dev/urandom"))
    }
}

impl Default for Urandom {
    fn default() -> Self {
        Urandom::new()
    }
}

impl rand_core::RngCore for Urandom {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        use std::io::Read as _;
        self.0.read_exact(dest).expect("/dev/urandom");
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Urandom {}

/// Lower-case hex of `bytes` (how tests pass bytes to and from their Python peers).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower-case or upper-case hex `s` (panics on anything else: test input).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// What a byte stream holds: the greeting's mechanism, then each frame as its command name
/// (`"message"` for message frames) and body size.
pub fn zmtp_structure(bytes: &[u8]) -> Vec<(String, usize)> {
    let mut dec = zerosmq_core::zmtp::FrameDecoder::new();
    let mut rx = vec![0u8; 4096];
    let mut out = Vec::new();
    let mut input = bytes;
    while !input.is_empty() {
        let dst = dec.read_buffer(&mut rx);
        let n = dst.len().min(input.len());
        dst[..n].copy_from_slice(&input[..n]);
        input = &input[n..];
        match dec.commit(n, &rx).unwrap() {
            Some(zerosmq_core::zmtp::Decoded::Greeting(g)) => out.push((
                format!("greeting {}", String::from_utf8_lossy(g.mechanism_name())),
                64,
            )),
            Some(zerosmq_core::zmtp::Decoded::Frame(h)) => {
                let len = h.len as usize;
                let name = match h.kind {
                    zerosmq_core::zmtp::FrameKind::Command => {
                        let l = usize::from(rx[0]);
                        String::from_utf8_lossy(&rx[1..1 + l.min(len.saturating_sub(1))])
                            .into_owned()
                    }
                    _ => "message".into(),
                };
                out.push((name, len));
            }
            None => {}
        }
    }
    out
}

/// Writes the recording `file` of `core/src/zmtp/testdata` (with `ZEROSMQ_RECORD_CURVE`) or
/// checks that live libzmq still sends what it holds (command names and sizes).
pub fn record_or_compare(file: &str, live: &[u8]) {
    let path = format!(
        "{}/../core/src/zmtp/testdata/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("ZEROSMQ_RECORD_CURVE").is_some() {
        std::fs::write(&path, live).unwrap();
        println!("recorded {file}: {} bytes", live.len());
        return;
    }
    let recorded = std::fs::read(&path).unwrap();
    let (live, recorded) = (zmtp_structure(live), zmtp_structure(&recorded));
    println!("figures: {file}: {live:?}");
    assert_eq!(
        live, recorded,
        "live libzmq no longer sends what {file} holds"
    );
}
