//! `/metrics` in the Prometheus text format (version 0.0.4). A dozen families of plain
//! counters and gauges: written here rather than through a metrics crate, which would bring a
//! registry and its dependencies for what is a loop over the sample.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `zerosmq_uptime_seconds` | gauge | |
//! | `zerosmq_nodes`, `zerosmq_topics` | gauge | |
//! | `zerosmq_topic_messages_total`, `zerosmq_topic_bytes_total` | counter | `topic` |
//! | `zerosmq_topic_overflows_total`, `zerosmq_topic_refused_connections_total` | counter | `topic` |
//! | `zerosmq_topic_publishers`, `zerosmq_topic_subscribers` | gauge | `topic` |
//! | `zerosmq_connections` | gauge | `mechanism` (`NULL`, `PLAIN`, `CURVE`) |
//! | `zerosmq_control_requests_total` | counter | `kind` |
//! | `zerosmq_control_errors_total` | counter | `code` |

use std::fmt::Write as _;

use crate::{MasterCounters, Sample, TopicRow};

const MECHANISMS: [&str; 3] = ["NULL", "PLAIN", "CURVE"];

/// A label value as the format quotes it.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn per_topic(
    out: &mut String,
    topics: &[TopicRow],
    name: &str,
    kind: &str,
    help: &str,
    value: fn(&TopicRow) -> u64,
) {
    family(out, name, kind, help);
    for t in topics {
        let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", escape(&t.name), value(t));
    }
}

pub(crate) fn render(sample: &Sample, counters: Option<&MasterCounters>) -> String {
    let mut out = String::new();
    let master = counters.map(|c| c());
    if let Some(m) = &master {
        family(
            &mut out,
            "zerosmq_uptime_seconds",
            "gauge",
            "Seconds since the master started.",
        );
        let _ = writeln!(out, "zerosmq_uptime_seconds {:.3}", m.uptime.as_secs_f64());
    }
    family(
        &mut out,
        "zerosmq_nodes",
        "gauge",
        "Nodes registered at the master.",
    );
    let _ = writeln!(out, "zerosmq_nodes {}", sample.nodes.len());
    family(
        &mut out,
        "zerosmq_topics",
        "gauge",
        "Topics with a publisher or a subscriber.",
    );
    let _ = writeln!(out, "zerosmq_topics {}", sample.topics.len());
    let topics = &sample.topics;
    per_topic(
        &mut out,
        topics,
        "zerosmq_topic_messages_total",
        "counter",
        "Messages the master forwarded on the topic.",
        |t| t.messages,
    );
    per_topic(
        &mut out,
        topics,
        "zerosmq_topic_bytes_total",
        "counter",
        "Bytes of the messages the master forwarded on the topic (topic prefix included).",
        |t| t.bytes,
    );
    per_topic(
        &mut out,
        topics,
        "zerosmq_topic_overflows_total",
        "counter",
        "Times a subscriber of the topic fell its high-water mark behind and missed messages.",
        |t| t.overflows,
    );
    per_topic(
        &mut out,
        topics,
        "zerosmq_topic_refused_connections_total",
        "counter",
        "Connections refused on the topic's ports (a connection limit).",
        |t| t.refused,
    );
    per_topic(
        &mut out,
        topics,
        "zerosmq_topic_publishers",
        "gauge",
        "Nodes publishing the topic.",
        |t| t.publishers.len() as u64,
    );
    per_topic(
        &mut out,
        topics,
        "zerosmq_topic_subscribers",
        "gauge",
        "Nodes subscribing the topic.",
        |t| t.subscribers.len() as u64,
    );
    if let Some(m) = &master {
        family(
            &mut out,
            "zerosmq_connections",
            "gauge",
            "Data connections open, by the security mechanism they speak.",
        );
        for mech in MECHANISMS {
            let n = if m.mechanism == mech {
                m.data_connections
            } else {
                0
            };
            let _ = writeln!(out, "zerosmq_connections{{mechanism=\"{mech}\"}} {n}");
        }
        family(
            &mut out,
            "zerosmq_control_requests_total",
            "counter",
            "Control requests answered, by kind (malformed: did not decode).",
        );
        for (kind, n) in &m.control_requests {
            let _ = writeln!(
                out,
                "zerosmq_control_requests_total{{kind=\"{}\"}} {n}",
                escape(kind)
            );
        }
        family(
            &mut out,
            "zerosmq_control_errors_total",
            "counter",
            "Control requests refused, by error code.",
        );
        for (code, n) in &m.control_errors {
            let _ = writeln!(
                out,
                "zerosmq_control_errors_total{{code=\"{}\"}} {n}",
                escape(code)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }
}
