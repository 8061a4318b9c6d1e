//! Running the real `zerosmq` CLI binary from the `cli_*` tests: build it once, run it against a
//! master with a deadline (a hung command fails the test instead of hanging it), and read its
//! output line by line as it comes, for the handshakes ("subscribed to ...").

#![allow(dead_code)] // Each test file uses a different part.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use zerosmq_tests::{node, start_master, MasterHandle, WAIT};

/// The `zerosmq` binary of this build. Built once per test process: `cargo test -p
/// zerosmq-tests` alone does not build other packages' binaries, and an old binary left in the
/// target directory must not be what is tested.
pub fn zerosmq_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>/zerosmq
        let profile_dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target profile dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "zerosmq-cli", "--bin", "zerosmq"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the zerosmq CLI failed");
        profile_dir.join("zerosmq")
    })
}

/// A `zerosmq` command aimed at `master`.
pub fn zerosmq(master: &MasterHandle) -> Command {
    let mut cmd = Command::new(zerosmq_bin());
    cmd.env_remove("ZEROSMQ_MASTER")
        .arg("--master")
        .arg(master.control_endpoint())
        .arg("--timeout")
        .arg("10");
    cmd
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// Runs `cmd` to its end, killing it (and failing) after `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zerosmq");
    let out = reader(child.stdout.take().expect("stdout"));
    let err = reader(child.stderr.take().expect("stderr"));
    let status = wait_or_kill(&mut child, limit)
        .unwrap_or_else(|| panic!("{cmd:?} did not finish within {limit:?}"));
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        took: started.elapsed(),
    }
}

/// Runs `cmd` and expects success.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd, WAIT * 2);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}",
        out.stderr,
        out.stdout
    );
    out
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = r.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `zerosmq` whose output lines arrive on channels as they are printed.
pub struct Running {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every line seen so far, for failure messages and final checks.
    pub out_lines: Vec<String>,
    pub err_lines: Vec<String>,
}

pub fn spawn(cmd: &mut Command) -> Running {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zerosmq");
    let stdout = lines(child.stdout.take().expect("stdout"));
    let stderr = lines(child.stderr.take().expect("stderr"));
    Running {
        child,
        stdout,
        stderr,
        out_lines: Vec::new(),
        err_lines: Vec::new(),
    }
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line containing `needle` (the CLI's handshakes go to stderr).
    pub fn wait_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.err_lines.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with '{needle}' within {WAIT:?}; stderr so far: {:#?}",
                    self.err_lines
                ),
            }
        }
    }

    /// Waits until stderr has had a line containing each of `needles`, in any order.
    pub fn wait_stderr_all(&mut self, needles: &[String]) {
        let mut missing: Vec<&String> = needles.iter().collect();
        let deadline = Instant::now() + WAIT;
        while !missing.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    missing.retain(|n| !line.contains(n.as_str()));
                    self.err_lines.push(line);
                }
                Err(_) => panic!(
                    "no stderr lines with {missing:?} within {WAIT:?}; stderr so far: {:#?}",
                    self.err_lines
                ),
            }
        }
    }

    /// Waits for the next stdout line.
    pub fn next_stdout(&mut self) -> String {
        match self.stdout.recv_timeout(WAIT) {
            Ok(line) => {
                self.out_lines.push(line.clone());
                line
            }
            Err(_) => {
                let stderr = self.drain_stderr();
                panic!(
                    "no stdout line within {WAIT:?}; stdout so far: {:#?}, stderr: {stderr:#?}",
                    self.out_lines
                )
            }
        }
    }

    /// Waits for a stdout line for which `pred` holds.
    pub fn wait_stdout(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let line = self.next_stdout();
            if pred(&line) {
                return line;
            }
        }
        panic!("no matching stdout line; stdout: {:#?}", self.out_lines)
    }

    fn drain_stderr(&mut self) -> Vec<String> {
        self.err_lines.extend(self.stderr.try_iter());
        self.err_lines.clone()
    }

    /// True once the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the exit (failing after `WAIT`) and collects the remaining output.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let status = wait_or_kill(&mut self.child, WAIT)
            .unwrap_or_else(|| panic!("zerosmq did not exit; stderr: {:#?}", self.err_lines));
        // The reader threads end at EOF, which follows the exit.
        while let Ok(line) = self.stdout.recv_timeout(WAIT) {
            self.out_lines.push(line);
        }
        while let Ok(line) = self.stderr.recv_timeout(WAIT) {
            self.err_lines.push(line);
        }
        (
            status,
            std::mem::take(&mut self.out_lines),
            std::mem::take(&mut self.err_lines),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fresh directory for a test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zerosmq-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A TCP port on 127.0.0.1 with nothing listening (bound, then released).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Polls `f` until it returns `Some`, failing after `WAIT`.
pub fn poll_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tmux server of the test's own (so tests never touch the user's), running one command in a
/// detached session of the given size: a real terminal for terminal UIs. Killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// `None` (with a printed reason) when tmux is not installed.
    pub fn start(name: &str, width: u16, height: u16, command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let tmux = Tmux {
            socket: format!("zerosmq-test-{name}-{}", std::process::id()),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let started = tmux.run(&["new-session", "-d", "-x", &w, "-y", &h, command]);
        assert!(started.status.success(), "{started:?}");
        Some(tmux)
    }

    /// Runs a tmux command against this server.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// What the terminal shows now.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p"]).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}
