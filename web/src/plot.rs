//! Plotted topics: the server subscribes a topic at the master while a page asks for its
//! numbers, keeps the last ones, and leaves the topic once no page asked for a while.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zerosmq::Node;

use crate::lock;

/// A topic no page asked about this long is unsubscribed.
const KEEP: Duration = Duration::from_secs(10);

struct Plot {
    points: Arc<Mutex<VecDeque<(f64, f64)>>>,
    asked: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Plot {
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct Plots {
    started: Instant,
    keep: usize,
    plots: Mutex<HashMap<String, Plot>>,
}

impl Plots {
    pub(crate) fn new(keep: usize) -> Plots {
        Plots {
            started: Instant::now(),
            keep,
            plots: Mutex::new(HashMap::new()),
        }
    }

    /// The topic's numbers so far as JSON (`{"topic":..,"points":[[seconds, value],..]}`);
    /// the first ask subscribes it.
    pub(crate) fn points(&self, node: &Node, topic: &str) -> zerosmq::Result<String> {
        let mut plots = lock(&self.plots);
        let plot = match plots.get_mut(topic) {
            Some(p) => p,
            None => {
                let subscriber = node.subscribe(topic)?;
                let plot = self.start(subscriber);
                plots.entry(topic.to_owned()).or_insert(plot)
            }
        };
        plot.asked = Instant::now();
        let points: Vec<(f64, f64)> = lock(&plot.points).iter().copied().collect();
        Ok(serde_json::json!({ "topic": topic, "points": points }).to_string())
    }

    fn start(&self, mut subscriber: zerosmq::Subscriber) -> Plot {
        let points = Arc::new(Mutex::new(VecDeque::with_capacity(self.keep)));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, flag, keep, started) = (points.clone(), stop.clone(), self.keep, self.started);
        let thread = std::thread::Builder::new()
            .name("web-plot".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    let message = match subscriber.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(m)) => m,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!("web plot of {}: {e}", subscriber.topic());
                            break;
                        }
                    };
                    // Untyped payloads that are a number in text plot; others are skipped.
                    let Some(value) = message.text().and_then(|t| t.trim().parse::<f64>().ok())
                    else {
                        continue;
                    };
                    if !value.is_finite() {
                        continue;
                    }
                    let mut points = lock(&sink);
                    if points.len() == keep {
                        points.pop_front();
                    }
                    points.push_back((started.elapsed().as_secs_f64(), value));
                }
            })
            .ok();
        Plot {
            points,
            asked: Instant::now(),
            stop,
            thread,
        }
    }

    /// Leaves topics no page asked about lately.
    pub(crate) fn expire(&self) {
        let gone: Vec<Plot> = {
            let mut plots = lock(&self.plots);
            let old: Vec<String> = plots
                .iter()
                .filter(|(_, p)| p.asked.elapsed() > KEEP)
                .map(|(t, _)| t.clone())
                .collect();
            old.iter().filter_map(|t| plots.remove(t)).collect()
        };
        for mut plot in gone {
            plot.stop();
        }
    }

    pub(crate) fn stop_all(&self) {
        let all: Vec<Plot> = lock(&self.plots).drain().map(|(_, p)| p).collect();
        for mut plot in all {
            plot.stop();
        }
    }
}
