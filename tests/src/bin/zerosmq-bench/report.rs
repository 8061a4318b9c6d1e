//! The results: one row per system and measurement, printed as tables, written as CSV or JSON.

use std::fmt::Write as _;
use std::time::Duration;

use crate::harness::{Latency, Load, Throughput};
use crate::resources::Resources;
use crate::System;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Throughput,
    Latency,
    Resources,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Throughput => "throughput",
            Section::Latency => "latency",
            Section::Resources => "resources",
        }
    }
}

/// One measurement of one system. `value` is the headline figure the ratios are taken of:
/// msgs/s (throughput), p50 in us (latency), idle CPU % (resources).
#[derive(Debug, Clone)]
pub struct Row {
    pub section: Section,
    pub scenario: String,
    pub system: System,
    pub value: Option<f64>,
    pub mb_per_s: Option<f64>,
    pub sent: Option<u64>,
    pub lost: Option<u64>,
    pub p99_us: Option<f64>,
    pub rss_mib: Option<f64>,
    /// Threads of the broker process (resources).
    pub threads: Option<u64>,
    pub error: Option<String>,
    pub vs_reference: Option<f64>,
    pub vs_floor: Option<f64>,
}

fn payload_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b / 1024),
        b => format!("{b} B"),
    }
}

impl Row {
    fn new(section: Section, scenario: String, system: System) -> Row {
        Row {
            section,
            scenario,
            system,
            value: None,
            mb_per_s: None,
            sent: None,
            lost: None,
            p99_us: None,
            rss_mib: None,
            threads: None,
            error: None,
            vs_reference: None,
            vs_floor: None,
        }
    }

    pub fn throughput(system: System, load: Load, r: Result<Throughput, String>) -> Row {
        let scenario = format!(
            "{}, {} topic{}, 1->{}",
            payload_label(load.payload),
            load.topics,
            if load.topics == 1 { "" } else { "s" },
            load.subscribers
        );
        let mut row = Row::new(Section::Throughput, scenario, system);
        match r {
            Ok(t) => {
                row.value = Some(t.msgs_per_s);
                row.mb_per_s = Some(t.mb_per_s);
                row.sent = Some(t.sent);
                row.lost = Some(t.lost);
            }
            Err(e) => row.error = Some(e),
        }
        row
    }

    pub fn latency(system: System, scenario: &str, r: Result<Latency, String>) -> Row {
        let mut row = Row::new(Section::Latency, scenario.into(), system);
        match r {
            Ok(l) => {
                row.value = Some(l.p50_us);
                row.p99_us = Some(l.p99_us);
                row.sent = Some((l.samples + l.lost) as u64);
                row.lost = Some(l.lost as u64);
            }
            Err(e) => row.error = Some(e),
        }
        row
    }

    pub fn resources(
        system: System,
        topics: usize,
        idle: Duration,
        r: Result<Resources, String>,
    ) -> Row {
        let scenario = format!("{topics} topics, {} s idle", idle.as_secs());
        let mut row = Row::new(Section::Resources, scenario, system);
        match r {
            Ok(x) => {
                row.value = Some(x.idle_cpu_pct);
                row.rss_mib = Some(x.rss_mib);
                row.threads = Some(x.threads);
            }
            Err(e) => row.error = Some(e),
        }
        row
    }

    /// One line on stderr while the run goes on.
    pub fn print_progress(&self) {
        let what = match (&self.error, self.value) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, Some(v)) => match self.section {
                Section::Throughput => {
                    format!("{} msgs/s, lost {}", human(v), self.lost.unwrap_or(0))
                }
                Section::Latency => format!(
                    "p50 {v:.1} us, p99 {:.1} us",
                    self.p99_us.unwrap_or(f64::NAN)
                ),
                Section::Resources => format!(
                    "idle CPU {v:.2} %, RSS {:.1} MiB, {} threads",
                    self.rss_mib.unwrap_or(f64::NAN),
                    self.threads.unwrap_or(0)
                ),
            },
            (None, None) => "-".into(),
        };
        eprintln!("  {:<24} {:<26} {what}", self.scenario, self.system.label());
    }
}

/// 3.41 M, 262 k, 950.
fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("-".into(), |r| format!("{r:.2}x"))
}

pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    quick: bool,
}

/// The round-trip scenarios: alone, and beside a 1 MiB stream at 100 Hz on another topic.
pub const IDLE_RTT: &str = "round trip, 8 B";
pub const HOL_RTT: &str = "round trip, 8 B, beside 1 MiB at 100 Hz on another topic";

impl Report {
    /// For each system with both round trips: p99 beside the 1 MiB stream over p99 alone (the
    /// head-of-line blocking it adds; our target is at most 2x).
    pub fn hol_notes(&mut self) {
        let p99 = |scenario: &str, system: System| {
            self.rows
                .iter()
                .find(|r| {
                    r.section == Section::Latency && r.scenario == scenario && r.system == system
                })
                .and_then(|r| r.p99_us)
        };
        let mut notes = Vec::new();
        for system in System::ALL {
            if let (Some(idle), Some(hol)) = (p99(IDLE_RTT, system), p99(HOL_RTT, system)) {
                notes.push(format!(
                    "head-of-line: {}: p99 {hol:.0} us beside the 1 MiB stream, {idle:.0} us alone: {:.2}x",
                    system.label(),
                    hol / idle
                ));
            }
        }
        self.notes.extend(notes);
    }

    pub fn new(quick: bool) -> Report {
        Report {
            rows: Vec::new(),
            notes: Vec::new(),
            quick,
        }
    }

    /// Divides each broker row's figure by the reference broker's and the floor's in the same
    /// section and scenario.
    pub fn compute_ratios(&mut self) {
        let find = |rows: &[Row], section: Section, scenario: &str, system: System| {
            rows.iter()
                .find(|r| r.section == section && r.scenario == scenario && r.system == system)
                .and_then(|r| r.value)
        };
        let snapshot = self.rows.clone();
        for row in &mut self.rows {
            if matches!(row.system, System::Floor | System::Reference) {
                continue;
            }
            let Some(v) = row.value else { continue };
            let reference = find(&snapshot, row.section, &row.scenario, System::Reference);
            let floor = find(&snapshot, row.section, &row.scenario, System::Floor);
            row.vs_reference = reference.filter(|r| *r > 0.0).map(|r| v / r);
            row.vs_floor = floor.filter(|f| *f > 0.0).map(|f| v / f);
        }
    }

    pub fn print(&self) {
        print!("{}", self.table());
    }

    /// The three tables as text (also what docs/performance.md shows).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nThroughput{} (msgs/s and MB/s each subscriber received; ratios: msgs/s of this row / reference, / floor)",
            if self.quick { " [--quick]" } else { "" }
        );
        let _ = writeln!(
            out,
            "{:<24} {:<25} {:>10} {:>9} {:>8} {:>7} {:>7}",
            "scenario", "system", "msgs/s", "MB/s", "lost", "/ref", "/floor"
        );
        let mut last = String::new();
        for r in self
            .rows
            .iter()
            .filter(|r| r.section == Section::Throughput)
        {
            if r.scenario != last && !last.is_empty() {
                out.push('\n');
            }
            last = r.scenario.clone();
            match &r.error {
                Some(e) => {
                    let _ = writeln!(
                        out,
                        "{:<24} {:<25} failed: {e}",
                        r.scenario,
                        r.system.label()
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{:<24} {:<25} {:>10} {:>9.1} {:>8} {:>7} {:>7}",
                        r.scenario,
                        r.system.label(),
                        human(r.value.unwrap_or(0.0)),
                        r.mb_per_s.unwrap_or(0.0),
                        r.lost.unwrap_or(0),
                        ratio(r.vs_reference),
                        ratio(r.vs_floor)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\nRound trip ping -> broker -> echo -> broker -> ping, 8 B (ratios: p50 / reference p50, / floor p50; lower is better)"
        );
        let _ = writeln!(
            out,
            "{:<25} {:>9} {:>9} {:>8} {:>7} {:>7}",
            "system", "p50 us", "p99 us", "lost", "/ref", "/floor"
        );
        let mut scenario = IDLE_RTT;
        for r in self.rows.iter().filter(|r| r.section == Section::Latency) {
            if r.scenario != scenario {
                scenario = if r.scenario == HOL_RTT {
                    HOL_RTT
                } else {
                    IDLE_RTT
                };
                let _ = writeln!(out, "-- {}", r.scenario);
            }
            match &r.error {
                Some(e) => {
                    let _ = writeln!(out, "{:<25} failed: {e}", r.system.label());
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{:<25} {:>9.1} {:>9.1} {:>8} {:>7} {:>7}",
                        r.system.label(),
                        r.value.unwrap_or(f64::NAN),
                        r.p99_us.unwrap_or(f64::NAN),
                        r.lost.unwrap_or(0),
                        ratio(r.vs_reference),
                        ratio(r.vs_floor)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\nBroker process (child process, every topic with a libzmq publisher and subscriber connected)"
        );
        let _ = writeln!(
            out,
            "{:<25} {:<22} {:>16} {:>10} {:>8} {:>7}",
            "system", "scenario", "idle CPU % core", "RSS MiB", "threads", "/ref"
        );
        for r in self.rows.iter().filter(|r| r.section == Section::Resources) {
            let label = match r.system {
                System::MasterZmq | System::MasterStd | System::MasterStdCurve => "master",
                other => other.label(),
            };
            match &r.error {
                Some(e) => {
                    let _ = writeln!(out, "{label:<25} failed: {e}");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{label:<25} {:<22} {:>16.2} {:>10.1} {:>8} {:>7}",
                        r.scenario,
                        r.value.unwrap_or(f64::NAN),
                        r.rss_mib.unwrap_or(f64::NAN),
                        r.threads.map_or("-".into(), |t| t.to_string()),
                        ratio(r.vs_reference)
                    );
                }
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "\nnote: {n}");
        }
        out
    }

    pub fn csv(&self) -> String {
        let mut out = String::from(
            "section,scenario,system,value,mb_per_s,sent,lost,p99_us,rss_mib,threads,vs_reference,vs_floor,error\n",
        );
        let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        let u = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{},\"{}\",{},{},{},{},{},{},{},{},{},{},\"{}\"",
                r.section.key(),
                r.scenario,
                r.system.key(),
                f(r.value),
                f(r.mb_per_s),
                u(r.sent),
                u(r.lost),
                f(r.p99_us),
                f(r.rss_mib),
                u(r.threads),
                f(r.vs_reference),
                f(r.vs_floor),
                r.error.as_deref().unwrap_or("").replace('"', "'")
            );
        }
        out
    }

    pub fn json(&self) -> String {
        let f = |v: Option<f64>| {
            v.filter(|v| v.is_finite())
                .map_or("null".into(), |v| format!("{v:.3}"))
        };
        let u = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
        let s = |v: &str| {
            let mut o = String::from("\"");
            for c in v.chars() {
                match c {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    c if (c as u32) < 0x20 => {
                        let _ = write!(o, "\\u{:04x}", c as u32);
                    }
                    c => o.push(c),
                }
            }
            o.push('"');
            o
        };
        let mut out = String::from("{\n  \"quick\": ");
        out.push_str(if self.quick { "true" } else { "false" });
        out.push_str(",\n  \"value_meaning\": {\"throughput\": \"msgs/s per subscriber\", \"latency\": \"p50 round trip us\", \"resources\": \"idle CPU % of one core\"},\n  \"rows\": [\n");
        for (i, r) in self.rows.iter().enumerate() {
            let _ = write!(
                out,
                "    {{\"section\": {}, \"scenario\": {}, \"system\": {}, \"value\": {}, \"mb_per_s\": {}, \"sent\": {}, \"lost\": {}, \"p99_us\": {}, \"rss_mib\": {}, \"threads\": {}, \"vs_reference\": {}, \"vs_floor\": {}, \"error\": {}}}",
                s(r.section.key()),
                s(&r.scenario),
                s(r.system.key()),
                f(r.value),
                f(r.mb_per_s),
                u(r.sent),
                u(r.lost),
                f(r.p99_us),
                f(r.rss_mib),
                u(r.threads),
                f(r.vs_reference),
                f(r.vs_floor),
                r.error.as_deref().map_or("null".into(), s)
            );
            out.push_str(if i + 1 < self.rows.len() { ",\n" } else { "\n" });
        }
        out.push_str("  ],\n  \"notes\": [");
        for (i, n) in self.notes.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&s(n));
        }
        out.push_str("]\n}\n");
        out
    }
}
