//! Bare-metal firmware with a NIC driver and a TCP/IP stack against the real master (issue 11
//! part 1): examples/boards/qemu-virt (virtio-net under smoltcp, the blocking embedded node) in
//! `qemu-system-riscv32 -M virt`, its card on a TAP device in a network namespace this test
//! makes, with the master binary and std nodes in that namespace too. The firmware reports on
//! its UART (QEMU's stdout here). Needs root and /dev/net/tun; skips with a printed reason where
//! either is missing. Builds the firmware with Debian's rustc (as scripts/boards.sh does) and
//! needs qemu-system-riscv32: both are installed by scripts/boards.sh.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zerosmq_tests::netns::{skip_reason, Netns};
use zerosmq_tests::{cargo_bin, wait_until, MasterProcess, WAIT};

/// The firmware's build-time defaults (examples/boards/qemu-virt/src/main.rs).
const FW_NAME: &str = "qemu-virt";
const FW_PUB: &str = "qemu-virt/out";
const FW_SUB: &str = "qemu-virt/in";
const HOST_IP: &str = "192.168.69.100";
const CONTROL_PORT: &str = "5555";
/// The master's `--node-timeout`; the firmware sends a heartbeat every second.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);
const BURST: usize = 1000;
const TO_FIRMWARE: usize = 100;
const ROUND_TRIPS: usize = 200;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Builds the firmware (a no-op when it is up to date) with Debian's rustc and build-std, in
/// the target directory scripts/boards.sh uses, and returns the ELF.
fn build_firmware() -> PathBuf {
    let root = workspace_root();
    let target_dir = std::env::var_os("BOARDS_TARGET_DIR")
        .map_or_else(|| root.join("target/boards"), PathBuf::from);
    assert!(
        Path::new("/usr/bin/cargo").exists() && Path::new("/usr/bin/rustc").exists(),
        "Debian's rustc-web/cargo-web are missing: `bash scripts/boards.sh` installs them"
    );
    let status = Command::new("/usr/bin/cargo")
        .current_dir(root.join("examples/boards/qemu-virt"))
        .args(["build", "--release", "--locked", "-q"])
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTC", "/usr/bin/rustc")
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("Debian's cargo runs");
    assert!(
        status.success(),
        "building examples/boards/qemu-virt failed"
    );
    target_dir.join("riscv32imc-unknown-none-elf/release/zerosmq-qemu-virt")
}

/// QEMU running the firmware (killed on drop); its UART lines arrive on `lines`.
struct Qemu {
    child: Child,
    lines: Receiver<String>,
    /// Everything the UART printed, for failure messages.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Qemu {
    fn start(elf: &Path) -> Qemu {
        let mut child = Command::new("qemu-system-riscv32")
            .args([
                "-machine", "virt", "-cpu", "rv32", "-bios", "none", "-m", "64M",
            ])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .args(["-global", "virtio-mmio.force-legacy=false"])
            .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
            .args(["-device", "virtio-net-device,netdev=n0"])
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("qemu-system-riscv32 runs (apt-get install qemu-system-misc)");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                seen2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Qemu { child, lines, seen }
    }

    /// The next UART line starting with `prefix` (earlier lines are skipped), within `within`.
    fn expect(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no UART line {prefix:?} within {within:?}; the firmware printed:\n{}",
                    self.seen.lock().unwrap().join("\n")
                ),
            }
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_master() -> MasterProcess {
    let timeout = NODE_TIMEOUT.as_secs().to_string();
    MasterProcess::start_on(
        HOST_IP,
        &["--port", CONTROL_PORT, "--node-timeout", &timeout],
    )
}

/// A std node on the namespace's master that notices a restart quickly.
fn peer(name: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(format!("tcp://{HOST_IP}:{CONTROL_PORT}"))
        .timeout(Duration::from_millis(500))
        .heartbeat(Some(Duration::from_millis(200)))
        .connect()
        .expect("std node")
}

fn recv_text(sub: &mut zerosmq::Subscriber) -> String {
    let m = sub
        .recv_timeout(WAIT)
        .expect("recv")
        .expect("a message from the firmware");
    String::from_utf8_lossy(m.payload()).into_owned()
}

/// The number after `key=` or after `key ` in a UART line.
fn field(line: &str, key: &str) -> u64 {
    line.split_once(key)
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

/// The firmware publishes `seq 0..n` on command; the std node gets all of them, in order.
fn burst(
    qemu: &Qemu,
    to_fw: &mut zerosmq::Publisher,
    from_fw: &mut zerosmq::Subscriber,
    n: usize,
) -> u64 {
    to_fw.publish(format!("burst {n}").as_bytes()).unwrap();
    for i in 0..n {
        assert_eq!(recv_text(from_fw), format!("seq {i}"), "message {i} of {n}");
    }
    let line = qemu.expect(&format!("fw: burst {n} "), WAIT);
    assert_eq!(field(&line, "sent "), n as u64, "{line}");
    field(&line, " in ")
}

/// A std node publishes `msg 0..n`; the firmware reports each, in order.
fn to_firmware(qemu: &Qemu, to_fw: &mut zerosmq::Publisher, n: usize) {
    for k in 0..n {
        to_fw.publish(format!("msg {k}").as_bytes()).unwrap();
    }
    for k in 0..n {
        let line = qemu.expect("fw: got msg ", WAIT);
        assert_eq!(field(&line, "msg "), k as u64, "{line}");
    }
}

#[test]
fn firmware_on_qemu_virt_nic_against_the_real_master() {
    if let Some(reason) = skip_reason() {
        println!("SKIPPED QEMU virtio-net firmware test: {reason}");
        return;
    }
    let elf = build_firmware();
    // Built before entering the namespace (cargo may want the registry).
    cargo_bin("zerosmq-master", "zerosmq-master");
    let ns = Netns::with_tap(
        &format!("zsmq-qemu-{}", std::process::id()),
        "tap0",
        &format!("{HOST_IP}/24"),
    );
    ns.enter();
    let master = start_master();
    let qemu = Qemu::start(&elf);
    qemu.expect("fw: ready", Duration::from_secs(60));

    // Grants, the node list and the graph, as the master sees them.
    let observer = peer("qemu-observer");
    let info = observer.topic_info(FW_PUB).unwrap();
    assert!(info.publishers.iter().any(|p| p == FW_NAME), "{info:?}");
    let info = observer.topic_info(FW_SUB).unwrap();
    assert!(info.subscribers.iter().any(|s| s == FW_NAME), "{info:?}");
    let names = observer.nodes().unwrap();
    assert!(names.iter().any(|n| n == FW_NAME), "{names:?}");
    let dot = observer.graph().unwrap();
    assert!(dot.contains(&format!("\"{FW_NAME}\"")), "{dot}");

    let std_node = peer("qemu-std-peer");
    let mut from_fw = std_node.subscribe(FW_PUB).unwrap();
    let mut to_fw = std_node.advertise(FW_SUB).unwrap();
    from_fw.wait_ready(WAIT).unwrap();
    to_fw.wait_ready(WAIT).unwrap();

    let burst_us = burst(&qemu, &mut to_fw, &mut from_fw, BURST);
    to_firmware(&qemu, &mut to_fw, TO_FIRMWARE);

    // Round trips firmware -> master -> std node -> master -> firmware, timed by the firmware.
    to_fw
        .publish(format!("rtt {ROUND_TRIPS}").as_bytes())
        .unwrap();
    for i in 0..ROUND_TRIPS {
        let m = recv_text(&mut from_fw);
        assert_eq!(m, format!("rt {i}"));
        to_fw.publish(m.as_bytes()).unwrap();
    }
    let rtt = qemu.expect("fw: rtt ", WAIT);
    assert_eq!(field(&rtt, "n="), ROUND_TRIPS as u64, "{rtt}");

    // The master is killed and started again: the firmware resumes both directions by itself.
    let mut master = master;
    master.child.kill().unwrap();
    master.child.wait().unwrap();
    drop(master);
    let master = start_master();
    let up = Instant::now();
    let mut k = 0u64;
    let resumed = loop {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "no answer from the firmware after the restart; it printed:\n{}",
            qemu.seen.lock().unwrap().join("\n")
        );
        k += 1;
        to_fw.publish(format!("echo {k}").as_bytes()).unwrap();
        // Polls for the answer (the std nodes reconnect meanwhile); older pongs are skipped.
        if let Ok(Some(m)) = from_fw.recv_timeout(Duration::from_millis(200)) {
            if m.payload().starts_with(b"pong ") {
                break up.elapsed();
            }
        }
    };
    from_fw.wait_ready(WAIT).unwrap();
    to_fw.wait_ready(WAIT).unwrap();
    // Drain pongs still on their way, then a complete burst and a complete stream to it again.
    while from_fw
        .recv_timeout(Duration::from_millis(300))
        .unwrap()
        .is_some()
    {}
    burst(&qemu, &mut to_fw, &mut from_fw, 100);
    to_firmware(&qemu, &mut to_fw, 10);
    // Its heartbeat reaches the new master by itself (the grants alone list the node too, but
    // a node that never sent the new master a heartbeat is never expired).
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = master
            .log
            .recv_timeout(left)
            .expect("the firmware sends the new master its heartbeat");
        if line.contains("node alive") && line.contains(&format!("node={FW_NAME} ")) {
            break;
        }
    }
    let names = observer.nodes().unwrap();
    assert!(names.iter().any(|n| n == FW_NAME), "{names:?}");

    // QEMU is killed: the node leaves the list within the node timeout, which counts from its
    // last heartbeat (at most a second before the kill); the margin covers polling `node list`.
    drop(qemu);
    let gone = wait_until(NODE_TIMEOUT + Duration::from_secs(5), || {
        observer
            .nodes()
            .is_ok_and(|n| !n.iter().any(|n| n == FW_NAME))
    })
    .unwrap_or_else(|| {
        panic!(
            "the firmware stays listed after QEMU was killed: {:?}; the master logged:\n{}",
            observer.nodes(),
            master.log.try_iter().collect::<Vec<_>>().join("\n")
        )
    });
    assert!(
        gone <= NODE_TIMEOUT + Duration::from_millis(500),
        "listed {gone:?} after QEMU was killed (node timeout {NODE_TIMEOUT:?})"
    );

    println!(
        "figures: QEMU virt firmware (virtio-net, smoltcp, blocking node): round trip \
         firmware->master->std->master->firmware p50 {} us, p99 {} us ({ROUND_TRIPS} trips); \
         {:.0} messages/s published by the firmware ({BURST} in {} us)",
        field(&rtt, "p50="),
        field(&rtt, "p99="),
        BURST as f64 / (burst_us as f64 / 1e6),
        burst_us
    );
    println!(
        "figures: after a master restart the firmware answered {resumed:?} after the new master \
         was up; left the node list {gone:?} after QEMU was killed (--node-timeout {NODE_TIMEOUT:?})"
    );
    drop(master);
}
