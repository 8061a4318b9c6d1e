//! Peers of the master's web server (`--web`): a raw HTTP/1.1 client on a TCP socket, Python's
//! `prometheus_client` parser, and headless Chromium.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use serde_json::Value;

use crate::{MasterProcess, PythonPeer, WAIT};

/// The web port a `zerosmq-master --web HOST:0` child logged.
pub fn web_port(master: &MasterProcess) -> u16 {
    master.logged_port("web page and /metrics listening")
}

/// `GET path` over a fresh connection: (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("web server accepts");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("an answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Python scraping `/metrics` and parsing it with `prometheus_client.parser`.
pub struct Scraper {
    peer: PythonPeer,
    url: String,
}

/// One scrape: series `name{label=value,...}` -> value, and each family's type.
#[derive(Debug, Default)]
pub struct Scrape {
    pub series: BTreeMap<String, f64>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    pub fn get(&self, series: &str) -> Option<f64> {
        self.series.get(series).copied()
    }
}

impl Scraper {
    pub fn new(port: u16) -> Scraper {
        // pip install prometheus_client (scripts/test.sh does).
        let peer = PythonPeer::start(include_str!("../python/prom_scrape.py"), &[]);
        Scraper {
            peer,
            url: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    pub fn scrape(&mut self) -> Scrape {
        self.peer.say(&self.url.clone());
        let line = self.peer.line();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the scraper printed {line:?}: {e}"));
        if let Some(e) = v.get("error") {
            panic!("prometheus_client could not scrape or parse /metrics: {e}");
        }
        let series = v["series"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        let types = v["types"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        Scrape { series, types }
    }
}

/// Headless Chromium's DOM of `url` after `budget_ms` of virtual time (scripts run, fetches
/// answered by the real server).
pub fn chromium_dom(url: &str, budget_ms: u32) -> String {
    let out = std::process::Command::new(chromium())
        .args(headless())
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .stderr(std::process::Stdio::null())
        .output()
        .expect("chromium runs (apt-get install chromium)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Saves a screenshot of `url` to `path`.
pub fn chromium_screenshot(url: &str, path: &std::path::Path, budget_ms: u32) {
    let status = std::process::Command::new(chromium())
        .args(headless())
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--window-size=1000,1000")
        .arg(format!("--screenshot={}", path.display()))
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("chromium runs");
    assert!(status.success(), "chromium --screenshot failed: {status}");
}

fn chromium() -> &'static str {
    if std::path::Path::new("/usr/bin/chromium").exists() {
        "/usr/bin/chromium"
    } else {
        "chromium"
    }
}

fn headless() -> Vec<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static RUN: AtomicUsize = AtomicUsize::new(0);
    // A profile of its own per run: Chromiums running at once never share one.
    let profile = std::env::temp_dir().join(format!(
        "zerosmq-chromium-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.display()),
    ]
}
