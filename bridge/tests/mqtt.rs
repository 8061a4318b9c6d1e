//! The MQTT bridge against a real mosquitto, the real master binary, and mosquitto_sub /
//! mosquitto_pub as independent MQTT peers.

mod support;

use std::time::Duration;

use support::*;

/// Publishes `PREFIX i` for i in 0..n on `publisher`, `pace` apart.
fn publish_seq(
    p: &mut zerosmq::Publisher,
    prefix: &str,
    range: std::ops::Range<u64>,
    pace: Duration,
) {
    for i in range {
        p.publish(format!("{prefix}{i}").as_bytes())
            .expect("publish");
        std::thread::sleep(pace);
    }
    assert!(p.flush(Duration::from_secs(5)), "publisher flushed");
}

/// Master -> MQTT and MQTT -> master, QoS 0 and 1, in order, and the graph names the bridge.
#[test]
fn both_directions_qos0_and_qos1() {
    for qos in [0u8, 1] {
        let master = Master::start(0);
        let broker = Mosquitto::start();
        let endpoint = master.endpoint();
        let qs = qos.to_string();
        let url = broker.url();
        let mut bridge = bridge(&[
            "--master", &endpoint, "--mqtt", &url, "--qos", &qs, "--out", "seq/**", "--in", "cmd",
        ]);
        bridge.wait_line(&["mqtt subscribed"]);

        // Out: a node publishes, mosquitto_sub receives.
        let sub = mosquitto_sub(&broker, "zerosmq/seq/#", qos, None);
        let node = node(&master, "talker");
        let mut p = node.advertise("seq/a").expect("advertise");
        p.wait_ready(WAIT).expect("ready");
        bridge.wait_line(&["bridging out", "seq/a"]);
        let n = 2000;
        publish_seq(&mut p, "s ", 0..n, Duration::from_micros(200));
        let got = wait_count(&sub, n);
        let (missing, ordered) = missing_and_order(&payloads(&sub), "s ", n);
        assert_eq!((missing, ordered), (0, true), "qos {qos}: {got} payloads");

        // In: mosquitto_pub publishes, a node receives.
        let listener = support::node(&master, "listener");
        let mut s = listener.subscribe("cmd").expect("subscribe");
        s.wait_ready(WAIT).expect("ready");
        let m = 300;
        for i in 0..m {
            mosquitto_pub(&broker, "zerosmq/cmd", format!("c {i}").as_bytes(), qos);
        }
        let mut got = Vec::new();
        while got.len() < m {
            match s.recv_timeout(WAIT).expect("recv") {
                Some(msg) => got.push(msg.text().expect("utf8").to_owned()),
                None => panic!("qos {qos}: only {} of {m} arrived", got.len()),
            }
        }
        let want: Vec<String> = (0..m).map(|i| format!("c {i}")).collect();
        assert_eq!(got, want, "qos {qos}: in order, byte for byte");

        // The graph names the bridge on both topics.
        let info = node.topic_info("cmd").expect("topic info");
        assert!(
            info.publishers.contains(&"bridge:mqtt".to_owned()),
            "{info:?}"
        );
        let info = node.topic_info("seq/a").expect("topic info");
        assert!(
            info.subscribers.contains(&"bridge:mqtt".to_owned()),
            "{info:?}"
        );
        assert!(node.graph().expect("graph").contains("bridge:mqtt"));

        let c = final_counters(&mut bridge);
        assert_eq!(c["out_sent"], n, "{c:?}");
        assert_eq!(c["in_sent"], m as u64, "{c:?}");
        assert_eq!(c["out_lost"] + c["in_lost"], 0, "{c:?}");
        println!("figures: mqtt qos {qos}: {n} out and {m} in, none lost; counters {c:?}");
    }
}

/// Waits until `sub` printed at least `n` payloads; returns how many.
fn wait_count(sub: &Proc, n: u64) -> usize {
    let ok = wait_until(WAIT, || payloads(sub).len() as u64 >= n);
    let got = payloads(sub).len();
    assert!(ok, "only {got} of {n} payloads arrived");
    got
}

fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// mosquitto killed (SIGTERM, it keeps sessions on disk) and started again while a node
/// streams at QoS 1: the bridge reconnects by itself, the stream resumes, and the messages it
/// counted as lost are exactly those mosquitto_sub (a persistent session) never got.
#[test]
fn broker_restart_loss_is_counted() {
    let master = Master::start(0);
    let mut broker = Mosquitto::start();
    let endpoint = master.endpoint();
    let url = broker.url();
    let mut bridge = bridge(&[
        "--master", &endpoint, "--mqtt", &url, "--qos", "1", "--out", "seq",
    ]);
    bridge.wait_line(&["mqtt subscribed"]);
    let sub = mosquitto_sub(&broker, "zerosmq/seq", 1, Some("witness"));
    let node = node(&master, "talker");
    let mut p = node.advertise("seq").expect("advertise");
    p.wait_ready(WAIT).expect("ready");
    bridge.wait_line(&["bridging out", "seq"]);

    let pace = Duration::from_micros(500);
    publish_seq(&mut p, "s ", 0..2000, pace);
    broker.stop();
    bridge.wait_line(&["mqtt link down"]);
    // Published while the broker is away: the bridge must count every one of these.
    publish_seq(&mut p, "s ", 2000..2500, pace);
    broker.start_again();
    bridge.wait_line(&["mqtt connected"]);
    let n = 5000;
    publish_seq(&mut p, "s ", 2500..n, pace);
    // The last message arrives (the witness reconnects by itself too).
    let done = wait_until(WAIT, || {
        payloads(&sub).iter().any(|l| l == &format!("s {}", n - 1))
    });
    assert!(done, "the stream resumed to its end");
    let c = final_counters(&mut bridge);
    let (missing, _) = missing_and_order(&payloads(&sub), "s ", n);
    println!(
        "figures: mqtt broker restart at qos 1: {missing} of {n} missed by mosquitto_sub, bridge counted out_lost={} (engine_connects={})",
        c["out_lost"], c["engine_connects"]
    );
    assert!(
        missing >= 500,
        "the 500 published while the broker was down are missing"
    );
    assert_eq!(
        c["out_lost"], missing,
        "counted loss equals what the receiver missed: {c:?}"
    );
    assert_eq!(c["engine_connects"], 2, "{c:?}");
}

/// The master killed and started again on the same port while mosquitto_pub streams in: the
/// bridge (and the receiving node) reconnect by themselves and the stream resumes; what the
/// bridge could not hand to the master is counted.
#[test]
fn master_restart_resumes() {
    let mut master = Master::start(0);
    let port = master.port;
    let broker = Mosquitto::start();
    let endpoint = master.endpoint();
    let url = broker.url();
    let mut bridge = bridge(&[
        "--master", &endpoint, "--mqtt", &url, "--qos", "1", "--in", "cmd",
    ]);
    bridge.wait_line(&["mqtt subscribed"]);
    let listener = node(&master, "listener");
    let mut s = listener.subscribe("cmd").expect("subscribe");
    s.wait_ready(WAIT).expect("ready");

    // mosquitto_pub -l: one message per line, fed by this test.
    let mut feeder = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            "zerosmq/cmd",
            "-q",
            "1",
            "-V",
            "mqttv5",
            "-l",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    let mut stdin = feeder.stdin.take().expect("stdin");
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let r = received.clone();
    let reader = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(m)) = s.recv_timeout(Duration::from_millis(200)) {
                let t = m.text().unwrap_or_default().to_owned();
                let last = t == "c 2999";
                r.lock().unwrap().push(t);
                if last {
                    return;
                }
            }
        }
    });
    use std::io::Write;
    let mut feed = |range: std::ops::Range<u64>| {
        for i in range {
            writeln!(stdin, "c {i}").expect("feed");
            stdin.flush().expect("flush");
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    feed(0..1000);
    master.proc.kill();
    feed(1000..1500);
    master = Master::start(port);
    // Back when the bridge's publisher is connected again: a line the test can wait on.
    let back = wait_until(WAIT, || {
        node(&master, "probe").topic_info("cmd").is_ok_and(|i| {
            i.publishers.iter().any(|p| p == "bridge:mqtt") && !i.subscribers.is_empty()
        })
    });
    assert!(
        back,
        "bridge and listener registered again with the new master"
    );
    // Stream until the listener has seen messages after the restart, then to the end.
    feed(1500..3000);
    reader.join().expect("reader");
    drop(stdin);
    let _ = feeder.wait();
    let got = received.lock().unwrap().clone();
    let c = final_counters(&mut bridge);
    let (missing, ordered) = missing_and_order(&got, "c ", 3000);
    println!(
        "figures: mqtt master restart: listener missed {missing} of 3000, bridge counted in_lost={} (the rest were lost at the master while the listener reconnected)",
        c["in_lost"]
    );
    assert!(
        got.iter().any(|l| l == "c 2999"),
        "the stream resumed to its end"
    );
    assert!(ordered, "in order");
    assert!(
        c["in_lost"] > 0,
        "messages the bridge could not hand over are counted: {c:?}"
    );
    assert!(
        missing >= c["in_lost"],
        "the bridge counts no more than was missed"
    );
}

/// Bad input from the broker side: a key that is not a topic name, an oversized payload, a
/// flood of new keys: each refused with a log line and a counter while a good stream goes on.
#[test]
fn bad_input_is_refused_and_counted() {
    let master = Master::start(0);
    let broker = Mosquitto::start();
    let endpoint = master.endpoint();
    let url = broker.url();
    let mut bridge = bridge(&[
        "--master",
        &endpoint,
        "--mqtt",
        &url,
        "--in",
        "**",
        "--max-payload",
        "65536",
        "--max-topics",
        "8",
    ]);
    bridge.wait_line(&["mqtt subscribed"]);
    let listener = node(&master, "listener");
    let mut s = listener.subscribe("good").expect("subscribe");
    s.wait_ready(WAIT).expect("ready");
    let mut good = 0u64;
    let mut send_good = |broker: &Mosquitto| {
        mosquitto_pub(broker, "zerosmq/good", format!("g {good}").as_bytes(), 1);
        good += 1;
    };
    send_good(&broker);
    // Not topic names: a space, a comma, 65 bytes.
    for bad in [
        "zerosmq/has space",
        "zerosmq/a,b",
        &format!("zerosmq/{}", "x".repeat(65)),
    ] {
        mosquitto_pub(&broker, bad, b"bad", 1);
        send_good(&broker);
    }
    // Over --max-payload.
    mosquitto_pub(&broker, "zerosmq/good", &vec![b'x'; 100_000], 1);
    send_good(&broker);
    // A flood of new keys: 7 more fit beside `good`, 43 do not.
    for i in 0..50 {
        mosquitto_pub(&broker, &format!("zerosmq/flood/{i}"), b"f", 1);
    }
    send_good(&broker);
    let mut got = Vec::new();
    while (got.len() as u64) < good {
        match s.recv_timeout(WAIT).expect("recv") {
            Some(m) => got.push(m.text().unwrap_or_default().to_owned()),
            None => panic!("good stream disturbed: {got:?}"),
        }
    }
    let want: Vec<String> = (0..good).map(|i| format!("g {i}")).collect();
    assert_eq!(got, want, "the good stream is undisturbed");
    let c = final_counters(&mut bridge);
    println!("figures: mqtt bad input: {c:?}");
    assert_eq!(c["in_bad_name"], 3, "{c:?}");
    assert_eq!(c["in_oversized"], 1, "{c:?}");
    assert_eq!(c["in_too_many_topics"], 43, "{c:?}");
    assert!(bridge.count("refused") >= 1, "a log line says why");
}

/// mosquitto stopped (SIGSTOP: the TCP connection stays up, the broker takes nothing) while a
/// node publishes 12,000 messages at QoS 1: the bridge hands the broker what its receive maximum
/// allows, queues 10,000 more, and counts every further one under `out_queue_full` with a log
/// line; after SIGCONT the queue drains, and `out_lost` is exactly what mosquitto_sub missed.
#[test]
fn broker_not_taking_queue_full_is_counted() {
    let master = Master::start(0);
    let broker = Mosquitto::start();
    let endpoint = master.endpoint();
    let url = broker.url();
    let mut bridge = bridge(&[
        "--master", &endpoint, "--mqtt", &url, "--qos", "1", "--out", "seq",
    ]);
    bridge.wait_line(&["mqtt subscribed"]);
    // QoS 0 towards the witness: mosquitto queues at most 1,000 QoS 1 messages for a subscriber
    // (max_queued_messages) and would drop the rest of the burst where the bridge cannot see it.
    let sub = mosquitto_sub(&broker, "zerosmq/seq", 0, None);
    let node = node(&master, "talker");
    let mut p = node.advertise("seq").expect("advertise");
    p.wait_ready(WAIT).expect("ready");
    bridge.wait_line(&["bridging out", "seq"]);
    publish_seq(&mut p, "s ", 0..100, Duration::ZERO);
    wait_count(&sub, 100);

    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &broker.proc.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} mosquitto");
    };
    signal("-STOP");
    let burst = 12_000;
    // At a fast sensor's pace, so the master and the bridge's subscriber keep up under load
    // and the only loss is the engine queue's (checked below: the publisher dropped nothing).
    publish_seq(&mut p, "s ", 100..100 + burst, Duration::from_micros(10));
    assert_eq!(
        p.dropped(),
        0,
        "the publisher into master A dropped messages"
    );
    let line = bridge.wait_line(&["lost messages towards the engine", "queue is full"]);
    signal("-CONT");
    // Markers one at a time until one arrives: the broker takes messages again and, as the
    // connection delivers in order, everything the bridge queued before it has arrived.
    let mut next = 100 + burst;
    let arrived = (0..200).any(|_| {
        let marker = format!("s {next}");
        publish_seq(&mut p, "s ", next..next + 1, Duration::ZERO);
        next += 1;
        wait_until(Duration::from_secs(1), || payloads(&sub).contains(&marker))
    });
    assert!(arrived, "the broker took messages again");
    let c = final_counters(&mut bridge);
    let (missing, ordered) = missing_and_order(&payloads(&sub), "s ", next);
    println!(
        "figures: mqtt broker stopped during a burst of {burst} at qos 1: mosquitto_sub missed \
         {missing} of {next}, bridge counted out_lost={} (out_queue_full={}); first loss line: {line}",
        c["out_lost"], c["out_queue_full"]
    );
    assert!(ordered);
    assert!(c["out_queue_full"] > 0, "{c:?}");
    assert_eq!(c["out_lost"], c["out_queue_full"], "{c:?}");
    assert_eq!(
        c["out_lost"], missing,
        "counted loss equals what the receiver missed: {c:?}"
    );
    assert_eq!(c["engine_connects"], 1, "the link stayed up: {c:?}");
}

/// Writes a CA (`NAME-ca.crt`) and, when `server`, a broker certificate for IP 127.0.0.1 signed
/// by it (`server.crt`, `server.key`), with the openssl command (EC P-256, valid one day).
fn make_certs(dir: &std::path::Path, name: &str, server: bool) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let (ca_key, ca_crt) = (format!("{name}-ca.key"), format!("{name}-ca.crt"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                &ca_key,
                "-out",
                &ca_crt,
                "-days",
                "1",
                "-subj",
                &format!("/CN={name} test CA"),
            ],
        ]
        .concat(),
    );
    if server {
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san.ext");
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ]);
        // mosquitto started as root reads them as the `mosquitto` user.
        let _ = std::process::Command::new("chmod")
            .arg("644")
            .arg(dir.join("server.key"))
            .status();
    }
}

/// mosquitto with a TLS listener (certificates from openssl): the bridge on `mqtts://` with
/// `--mqtt-ca` carries topics both ways (mosquitto_sub / mosquitto_pub over TLS as the peers);
/// with a CA the broker's certificate does not chain to, it does not connect and says why.
#[test]
fn tls_both_ways_and_unknown_ca_refused() {
    let broker = Mosquitto::start_with(|dir| {
        make_certs(dir, "site", true);
        make_certs(dir, "other", false);
        let p = |f: &str| dir.join(f).display().to_string();
        (
            format!(
                "cafile {}\ncertfile {}\nkeyfile {}\n",
                p("site-ca.crt"),
                p("server.crt"),
                p("server.key")
            ),
            vec!["--cafile".to_owned(), p("site-ca.crt")],
        )
    });
    let master = Master::start(0);
    let endpoint = master.endpoint();
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let ca = broker.dir.join("site-ca.crt").display().to_string();
    let mut b = bridge(&[
        "--master",
        &endpoint,
        "--mqtt",
        &url,
        "--mqtt-ca",
        &ca,
        "--qos",
        "1",
        "--out",
        "sec/out",
        "--in",
        "sec/in",
    ]);
    b.wait_line(&["mqtt subscribed"]);

    let sub = mosquitto_sub(&broker, "zerosmq/sec/out", 1, None);
    let n = node(&master, "talker");
    let mut p = n.advertise("sec/out").expect("advertise");
    p.wait_ready(WAIT).expect("ready");
    b.wait_line(&["bridging out", "sec/out"]);
    publish_seq(&mut p, "o ", 0..200, Duration::ZERO);
    wait_count(&sub, 200);
    let (missing, ordered) = missing_and_order(&payloads(&sub), "o ", 200);
    assert_eq!((missing, ordered), (0, true), "out over TLS");

    let mut s = n.subscribe("sec/in").expect("subscribe");
    s.wait_ready(WAIT).expect("ready");
    for i in 0..50 {
        mosquitto_pub(&broker, "zerosmq/sec/in", format!("i {i}").as_bytes(), 1);
    }
    for i in 0..50 {
        let m = s
            .recv_timeout(WAIT)
            .expect("recv")
            .expect("a message over TLS");
        assert_eq!(
            m.text(),
            Some(format!("i {i}").as_str()),
            "in over TLS, in order"
        );
    }
    let c = final_counters(&mut b);
    println!("figures: mqtt over TLS, 200 out and 50 in: {c:?}");
    assert_eq!(
        (c["out_sent"], c["in_sent"], c["out_lost"]),
        (200, 50, 0),
        "{c:?}"
    );

    let other = broker.dir.join("other-ca.crt").display().to_string();
    let wrong = bridge(&[
        "--master",
        &endpoint,
        "--mqtt",
        &url,
        "--mqtt-ca",
        &other,
        "--out",
        "sec/out",
    ]);
    let line = wrong.wait_line(&["mqtt cannot connect"]);
    println!("unknown CA: {line}");
    assert!(line.contains("certificate"), "{line}");
}

/// `mosquitto_pub` (MQTT 5) of one message with these `-D publish` properties.
fn mosquitto_pub_props(broker: &Mosquitto, topic: &str, payload: &str, props: &[(&str, &str)]) {
    let mut cmd = std::process::Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "-t",
        topic,
    ])
    .args(["-q", "1", "-V", "mqttv5", "-m", payload]);
    for (name, value) in props {
        cmd.args(["-D", "publish", name]).args(value.split(' '));
    }
    let status = cmd.status().expect("mosquitto_pub starts");
    assert!(status.success(), "mosquitto_pub failed");
}

/// A typed topic crosses with its schema through mosquitto: master A's typed publisher's values
/// arrive on master B byte for byte and B's topic has the same schema; mosquitto_sub sees content
/// type `application/postcard` and the schema in the user property `zerosmq-schema`. A message
/// with another type's schema, and one whose schema is not base64, are refused and counted
/// (`in_schema_refused`), and the stream goes on.
#[test]
fn typed_topic_keeps_its_schema() {
    let (a, b) = (Master::start(0), Master::start(0));
    let broker = Mosquitto::start();
    let (ea, eb, url) = (a.endpoint(), b.endpoint(), broker.url());
    let mut bridge_a = bridge(&[
        "--master", &ea, "--mqtt", &url, "--qos", "1", "--out", "imu", "--id", "a",
    ]);
    bridge_a.wait_line(&["mqtt subscribed"]);
    let mut bridge_b = bridge(&[
        "--master", &eb, "--mqtt", &url, "--qos", "1", "--in", "imu", "--id", "b",
    ]);
    bridge_b.wait_line(&["mqtt subscribed"]);
    // The independent peer: content type, user properties and the payload in hex, one line each.
    let mut cmd = std::process::Command::new("stdbuf");
    cmd.args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p"])
        .arg(broker.port.to_string())
        .args(["-t", "zerosmq/imu", "-q", "1", "-V", "mqttv5", "-d"])
        .args(["-F", "typed %C %P %x"]);
    let peer = Proc::spawn("mosquitto_sub", cmd);
    peer.wait_line(&["received SUBACK"]);

    let na = node(&a, "node-a");
    let nb = node(&b, "node-b");
    let mut sb = nb.subscribe("imu").expect("sub");
    sb.wait_ready(WAIT).expect("ready");
    let mut pa = na.advertise_typed::<Imu>("imu").expect("adv");
    pa.wait_ready(WAIT).expect("ready");
    bridge_a.wait_line(&["bridging out", "imu"]);
    let n = 200;
    let sent: Vec<Imu> = (0..n).map(imu).collect();
    for v in &sent {
        pa.publish_value(v).expect("publish");
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(pa.flush(WAIT));
    let got = receive_values(&mut sb, sent.len());
    assert_values(&got, &sent);
    assert_same_schema(&na, &nb, "imu");
    let text = schema_text::<Imu>();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for (i, v) in sent.iter().enumerate() {
        let line = peer.wait_line(&["typed "]);
        if i == 1 {
            println!("figures: mosquitto_sub printed: {line}");
        }
        let bytes = postcard::to_stdvec(v).expect("encodes");
        assert!(
            line.starts_with("typed application/postcard ")
                && line.contains(&format!("zerosmq-schema:{text}"))
                && line.ends_with(&format!(" {}", hex(&bytes))),
            "mosquitto_sub sees the content type, the schema and the payload: {line}"
        );
    }

    // From an independent peer: another type's schema, a schema that is not base64, then an
    // untyped message (delivered after them: one broker, one subscription).
    let other = schema_text::<Other>();
    mosquitto_pub_props(
        &broker,
        "zerosmq/imu",
        "other",
        &[
            ("content-type", "application/postcard"),
            ("user-property", &format!("zerosmq-schema {other}")),
        ],
    );
    mosquitto_pub_props(
        &broker,
        "zerosmq/imu",
        "garbage",
        &[("user-property", "zerosmq-schema not*base64")],
    );
    mosquitto_pub_props(&broker, "zerosmq/imu", "after", &[]);
    let m = sb
        .recv_timeout(WAIT)
        .expect("recv")
        .expect("the untyped message after the refused ones");
    assert_eq!(m.payload(), b"after");
    let more: Vec<Imu> = (n..n + 50).map(imu).collect();
    for v in &more {
        pa.publish_value(v).expect("publish");
    }
    assert!(pa.flush(WAIT));
    assert_values(&receive_values(&mut sb, more.len()), &more);

    let ca = final_counters(&mut bridge_a);
    let cb = final_counters(&mut bridge_b);
    println!("figures: mqtt typed topic: {} values A -> B with their schema; bridge A {ca:?}; bridge B {cb:?}", n + 50);
    assert!(
        bridge_b.count("refused a message from the engine: its schema") >= 1,
        "logged"
    );
    assert_eq!(ca["out_sent"], u64::from(n + 50));
    assert_eq!(cb["in_sent"], u64::from(n + 50) + 1);
    assert_eq!(cb["in_schema_refused"], 2, "{cb:?}");
    assert_eq!(cb["in_lost"], 0);
}
