//! The master's `/metrics` (`--web`), scraped by Python and parsed by the official
//! `prometheus_client` text parser: every family present with its type, the per-topic series of a
//! std publisher's topic counting what its std subscriber receives, control requests and
//! refusals counted by kind. Bad input: unknown paths get 404, and garbage, half-sent and idle
//! HTTP clients never stall forwarding nor the other clients.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use zerosmq::Node;
use zerosmq_tests::web::{http_get, web_port, Scrape, Scraper};
use zerosmq_tests::{wait_until, MasterProcess, WAIT};

/// Publishes `n` numbered messages, in runs of 100 well under the high-water marks, and
/// checks that the subscriber gets every one of them in order.
fn send_and_receive(
    publisher: &mut zerosmq::Publisher,
    subscriber: &mut zerosmq::Subscriber,
    from: u64,
    n: u64,
) {
    let end = from + n;
    let mut run = from;
    while run < end {
        let run_end = (run + 100).min(end);
        for i in run..run_end {
            publisher.publish(i.to_string().as_bytes()).unwrap();
        }
        for i in run..run_end {
            let m = subscriber
                .recv_timeout(WAIT)
                .unwrap()
                .unwrap_or_else(|| panic!("message {i} of {from}..{end} not received"));
            assert_eq!(m.text(), Some(i.to_string().as_str()));
        }
        run = run_end;
    }
}

fn scrape_until(scraper: &mut Scraper, what: &str, cond: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = Scrape::default();
    let found = wait_until(WAIT, || {
        last = scraper.scrape();
        cond(&last)
    });
    assert!(
        found.is_some(),
        "{what}: never seen in /metrics; last scrape: {last:#?}"
    );
    last
}

#[test]
fn metrics_are_parsed_and_count() {
    let master = MasterProcess::start(&["--web", "127.0.0.1:0"]);
    let port = web_port(&master);
    let connect = |name| {
        Node::builder(name)
            .master(master.endpoint())
            .connect()
            .unwrap()
    };
    let (talker, listener) = (connect("talker"), connect("listener"));
    let mut subscriber = listener.subscribe("chatter").unwrap();
    let mut publisher = talker.advertise("chatter").unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    publisher.wait_ready(WAIT).unwrap();
    send_and_receive(&mut publisher, &mut subscriber, 0, 100);

    let mut scraper = Scraper::new(port);
    let first = scrape_until(&mut scraper, "100 messages on chatter", |s| {
        s.get("zerosmq_topic_messages_total{topic=chatter}") >= Some(100.0)
    });
    for (family, kind) in [
        ("zerosmq_uptime_seconds", "gauge"),
        ("zerosmq_nodes", "gauge"),
        ("zerosmq_topics", "gauge"),
        ("zerosmq_topic_messages", "counter"),
        ("zerosmq_topic_bytes", "counter"),
        ("zerosmq_topic_overflows", "counter"),
        ("zerosmq_topic_refused_connections", "counter"),
        ("zerosmq_topic_publishers", "gauge"),
        ("zerosmq_topic_subscribers", "gauge"),
        ("zerosmq_connections", "gauge"),
        ("zerosmq_control_requests", "counter"),
        ("zerosmq_control_errors", "counter"),
    ] {
        assert_eq!(
            first.types.get(family).map(String::as_str),
            Some(kind),
            "family {family}: {:#?}",
            first.types
        );
    }
    let get = |s: &Scrape, k: &str| s.get(k).unwrap_or_else(|| panic!("no series {k}: {s:#?}"));
    assert_eq!(get(&first, "zerosmq_topic_publishers{topic=chatter}"), 1.0);
    assert_eq!(get(&first, "zerosmq_topic_subscribers{topic=chatter}"), 1.0);
    assert_eq!(
        get(&first, "zerosmq_topic_overflows_total{topic=chatter}"),
        0.0
    );
    // The payloads "0".."99": 190 bytes.
    assert!(get(&first, "zerosmq_topic_bytes_total{topic=chatter}") >= 190.0);
    assert!(get(&first, "zerosmq_nodes") >= 2.0);
    assert!(get(&first, "zerosmq_uptime_seconds") > 0.0);
    assert!(get(&first, "zerosmq_connections{mechanism=NULL}") >= 2.0);
    assert_eq!(get(&first, "zerosmq_connections{mechanism=CURVE}"), 0.0);
    assert!(get(&first, "zerosmq_control_requests_total{kind=publish}") >= 1.0);
    assert!(get(&first, "zerosmq_control_requests_total{kind=subscribe}") >= 1.0);

    // Counting: more messages, an unknown topic asked about, a malformed request.
    send_and_receive(&mut publisher, &mut subscriber, 100, 50);
    let unknown = get(&first, "zerosmq_control_errors_total{code=unknown-topic}");
    assert!(talker.topic_info("no-such-topic").is_err());
    let ctx = zmq::Context::new();
    let raw = zerosmq_tests::raw_control_at(&ctx, &master.endpoint());
    let reply = zerosmq_tests::raw_request(&raw, b"NOT_A_COMMAND x y");
    assert!(
        String::from_utf8_lossy(&reply).starts_with("ERROR"),
        "{reply:?}"
    );
    let later = scrape_until(&mut scraper, "the next 50 messages and two refusals", |s| {
        s.get("zerosmq_topic_messages_total{topic=chatter}") >= Some(150.0)
            && s.get("zerosmq_control_errors_total{code=unknown-topic}") > Some(unknown)
            && s.get("zerosmq_control_requests_total{kind=malformed}") >= Some(1.0)
    });
    println!(
        "messages {} -> {}, bytes {} -> {}, topic-info requests {} -> {}",
        get(&first, "zerosmq_topic_messages_total{topic=chatter}"),
        get(&later, "zerosmq_topic_messages_total{topic=chatter}"),
        get(&first, "zerosmq_topic_bytes_total{topic=chatter}"),
        get(&later, "zerosmq_topic_bytes_total{topic=chatter}"),
        get(&first, "zerosmq_control_requests_total{kind=topic-info}"),
        get(&later, "zerosmq_control_requests_total{kind=topic-info}"),
    );
}

#[test]
fn bad_http_clients_never_stall_forwarding() {
    let master = MasterProcess::start(&["--web", "127.0.0.1:0"]);
    let port = web_port(&master);
    for path in ["/nope", "/metrics/x", "/api", "/../etc/passwd"] {
        let (status, body) = http_get(port, path);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let mut post = TcpStream::connect(("127.0.0.1", port)).unwrap();
    post.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    let (status, body) = http_get(port, "/api/plot");
    assert_eq!(status, 400, "{body}");
    let (status, body) = http_get(port, "/api/plot?topic=bad%20name");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid name"), "{body}");

    // Clients that connect and say nothing, say half a request, or send garbage.
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut half: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for s in &mut half {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
    }
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage.set_read_timeout(Some(WAIT)).unwrap();
    garbage
        .write_all(b"\x00\xff\x13garbage\r\n\r\n\x16\x03\x01 not http at all\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    // The server answers garbage with an error or closes; either way it does not hang.
    let _ = garbage.read_to_end(&mut answer);
    println!(
        "garbage answered with {:?}",
        String::from_utf8_lossy(&answer).lines().next()
    );

    // Forwarding goes on with nothing lost while they hang on, and other clients are served.
    let node = |name| {
        Node::builder(name)
            .master(master.endpoint())
            .connect()
            .unwrap()
    };
    let (talker, listener) = (node("talker"), node("listener"));
    let mut subscriber = listener.subscribe("chatter").unwrap();
    let mut publisher = talker.advertise("chatter").unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    publisher.wait_ready(WAIT).unwrap();
    send_and_receive(&mut publisher, &mut subscriber, 0, 5000);
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("zerosmq_uptime_seconds"), "{body}");
    let (status, _) = http_get(port, "/");
    assert_eq!(status, 200);
    drop(idle);
    drop(half);
    // The master is still whole after they left.
    assert!(
        wait_until(Duration::from_secs(2), || http_get(port, "/metrics").0
            == 200)
        .is_some()
    );
    send_and_receive(&mut publisher, &mut subscriber, 5000, 100);
}
