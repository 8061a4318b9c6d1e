//! The master's web page (`--web`) in headless Chromium (Debian's `chromium`): loaded against a
//! running master with a std publisher and subscriber, it shows both nodes in the SVG graph,
//! the topic's row with a nonzero rate, and the plot of its numbers; a screenshot is saved
//! under target/.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zerosmq::Node;
use zerosmq_tests::web::{chromium_dom, chromium_screenshot, web_port};
use zerosmq_tests::{wait_until, MasterProcess, WAIT};

/// The `data-rate` of the table row of `topic` in a DOM dump.
fn row_rate(dom: &str, topic: &str) -> Option<f64> {
    let row = dom
        .split("<tr ")
        .skip(1)
        .find(|r| r.starts_with(&format!("data-topic=\"{topic}\"")))?;
    let rate = row.split("data-rate=\"").nth(1)?.split('"').next()?;
    rate.parse().ok()
}

/// The graph's SVG in a DOM dump.
fn graph(dom: &str) -> &str {
    dom.split("<svg id=\"graph\"")
        .nth(1)
        .and_then(|g| g.split("</svg>").next())
        .unwrap_or("")
}

#[test]
fn page_shows_graph_table_and_plot_in_chromium() {
    let master = MasterProcess::start(&["--web", "127.0.0.1:0"]);
    let port = web_port(&master);
    let connect = |name| {
        Node::builder(name)
            .master(master.endpoint())
            .connect()
            .unwrap()
    };
    let (sensor, display) = (connect("page-sensor"), connect("page-display"));
    let mut subscriber = display.subscribe("temperature").unwrap();
    let mut publisher = sensor.advertise("temperature").unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    publisher.wait_ready(WAIT).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sending = std::thread::spawn(move || {
        let mut i = 0u64;
        while !flag.load(Ordering::Relaxed) {
            let value = 20.0 + 5.0 * (i as f64 / 20.0).sin();
            publisher.publish(format!("{value:.3}").as_bytes()).unwrap();
            i += 1;
            // A sensor's pace, not a synchronisation: the test waits for what the page shows.
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let draining = std::thread::spawn(move || {
        while let Ok(Some(_)) = subscriber.recv_timeout(Duration::from_secs(2)) {}
    });

    let url = format!("http://127.0.0.1:{port}/?plot=temperature");
    let mut dom = String::new();
    let shown = wait_until(WAIT * 3, || {
        dom = chromium_dom(&url, 4000);
        let g = graph(&dom);
        g.contains("data-node=\"page-sensor\"")
            && g.contains("data-node=\"page-display\"")
            && g.contains("data-topic=\"temperature\"")
            && row_rate(&dom, "temperature").is_some_and(|r| r > 0.0)
            && dom.contains("<polyline points=")
    });
    assert!(
        shown.is_some(),
        "the page never showed both nodes, a rate and the plot; last DOM:\n{dom}"
    );
    println!(
        "page complete after {shown:?}: rate {:?} msgs/s",
        row_rate(&dom, "temperature")
    );
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web_page.png");
    chromium_screenshot(&url, &shot, 4000);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} has {size} bytes",
        shot.display()
    );
    println!("screenshot: {} ({size} bytes)", shot.display());
    stop.store(true, Ordering::Relaxed);
    sending.join().unwrap();
    drop(sensor);
    draining.join().unwrap();
}
