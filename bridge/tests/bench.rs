//! Figures (printed, never asserted as timings): bridged throughput and round trip against one
//! master, 8 B and 1 KiB payloads, in the same run. Master A -> bridge -> engine -> bridge ->
//! master B and back; the baseline is the same two hops through one master.

mod support;

use std::time::Instant;

use support::*;

const ROUND_TRIPS: usize = 300;
const BURST: u64 = 5_000;

/// A node on `a` sends on `out` and receives on `back`; an echo node on `b` receives `out` and
/// sends it back on `back`. Returns (msgs/s one way over a burst, p50, p99 round trip in µs).
fn measure(a: &Master, b: &Master, size: usize, ready: &dyn Fn()) -> (f64, f64, f64) {
    let na = node(a, "bench-a");
    let nb = node(b, "bench-b");
    let mut sub_b = nb.subscribe("out").expect("sub");
    sub_b.wait_ready(WAIT).expect("ready");
    let mut sub_a = na.subscribe("back").expect("sub");
    sub_a.wait_ready(WAIT).expect("ready");
    let mut pub_a = na.advertise("out").expect("adv");
    pub_a.wait_ready(WAIT).expect("ready");
    let mut pub_b = nb.advertise("back").expect("adv");
    pub_b.wait_ready(WAIT).expect("ready");
    ready();
    let payload = vec![b'x'; size];

    // Round trips, one at a time.
    let mut rtts = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        pub_a.publish(&payload).expect("pub");
        let m = sub_b
            .recv_timeout(WAIT)
            .expect("recv")
            .expect("echo side got it");
        pub_b.publish(m.payload()).expect("pub");
        sub_a.recv_timeout(WAIT).expect("recv").expect("round trip");
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    rtts.sort_by(f64::total_cmp);
    let p = |q: f64| rtts[((rtts.len() as f64 - 1.0) * q) as usize];

    // A burst one way, at most ~200 messages in flight (every 100th message waits for the
    // receiver): mosquitto drops QoS 1 messages past its max_queued_messages (1000) per client.
    let start = Instant::now();
    let mut got = 0u64;
    for i in 0..BURST {
        pub_a.publish(&payload).expect("pub");
        if i % 100 == 99 {
            while got + 100 <= i {
                sub_b.recv_timeout(WAIT).expect("recv").expect("burst");
                got += 1;
            }
        }
    }
    while got < BURST {
        sub_b.recv_timeout(WAIT).expect("recv").expect("burst");
        got += 1;
    }
    let rate = BURST as f64 / start.elapsed().as_secs_f64();
    (rate, p(0.5), p(0.99))
}

fn row(what: &str, size: usize, (rate, p50, p99): (f64, f64, f64)) {
    println!("figures: {what:<28} {size:>5} B  {rate:>9.0} msgs/s  round trip p50 {p50:>7.0} µs  p99 {p99:>7.0} µs");
}

#[test]
fn bridged_against_one_master() {
    for size in [8usize, 1024] {
        // Baseline: both nodes on one master.
        let m = Master::start(0);
        row("one master", size, measure(&m, &m, size, &|| {}));
        drop(m);

        // Zenoh peer to peer.
        let a = Master::start(0);
        let b = Master::start(0);
        let listen = free_port();
        let la = format!("tcp/127.0.0.1:{listen}");
        let (ea, eb) = (a.endpoint(), b.endpoint());
        let za = bridge(&[
            "--master",
            &ea,
            "--zenoh-mode",
            "peer",
            "--zenoh-listen",
            &la,
            "--out",
            "out",
            "--in",
            "back",
        ]);
        za.wait_line(&["zenoh session open"]);
        let zb = bridge(&[
            "--master",
            &eb,
            "--zenoh-mode",
            "peer",
            "--zenoh-connect",
            &la,
            "--out",
            "back",
            "--in",
            "out",
        ]);
        zb.wait_line(&["zenoh session open"]);
        let r = measure(&a, &b, size, &|| {
            za.wait_line(&["zenoh matched", "zerosmq/out"]);
            zb.wait_line(&["zenoh matched", "zerosmq/back"]);
        });
        row("A -> zenoh -> B", size, r);
        drop((za, zb, a, b));

        // MQTT through mosquitto, QoS 0 and 1.
        for qos in ["0", "1"] {
            let a = Master::start(0);
            let b = Master::start(0);
            let broker = Mosquitto::start();
            let url = broker.url();
            let (ea, eb) = (a.endpoint(), b.endpoint());
            let ma = bridge(&[
                "--master", &ea, "--mqtt", &url, "--qos", qos, "--out", "out", "--in", "back",
            ]);
            ma.wait_line(&["mqtt subscribed"]);
            let mb = bridge(&[
                "--master", &eb, "--mqtt", &url, "--qos", qos, "--out", "back", "--in", "out",
            ]);
            mb.wait_line(&["mqtt subscribed"]);
            let r = measure(&a, &b, size, &|| {
                ma.wait_line(&["bridging out", "out"]);
                mb.wait_line(&["bridging out", "back"]);
            });
            row(&format!("A -> mosquitto qos {qos} -> B"), size, r);
        }
    }
}
