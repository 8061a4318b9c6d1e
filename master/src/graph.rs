//! The topic graph as Graphviz DOT, in the original's shape.
//!
//! One node statement per node (labelled with the part of its name before the first `.`, as the
//! original), one edge per (publisher, subscriber) pair labelled with the topic. Topics missing a
//! publisher or a subscriber are drawn as dashed boxes so that every node and every topic shows.
//! Names never contain `"` or `\` (see `zerosmq_core::name`), so quoting them is enough; topic
//! box IDs contain a space, which no node name can, so they never collide.

use std::fmt::Write as _;

use crate::registry::Registry;

/// Renders the registry as DOT source.
pub fn to_dot(registry: &Registry) -> String {
    let mut dot = String::from(
        "digraph G {\n    edge [dir=forward, fontsize=8];\n    node [shape=ellipse];\n",
    );
    // Writing to a String cannot fail.
    for (name, _) in registry.nodes() {
        let _ = match name.short() {
            short if short == name.as_str() => writeln!(dot, "    \"{name}\";"),
            short => writeln!(dot, "    \"{name}\" [label=\"{short}\"];"),
        };
    }
    for (topic, entry) in registry.topics() {
        if entry.publishers.is_empty() || entry.subscribers.is_empty() {
            let _ = writeln!(
                dot,
                "    \"topic {topic}\" [label=\"{topic}\", shape=box, style=dashed];"
            );
            for p in &entry.publishers {
                let _ = writeln!(dot, "    \"{p}\" -> \"topic {topic}\" [label=\"{topic}\"];");
            }
            for s in &entry.subscribers {
                let _ = writeln!(dot, "    \"topic {topic}\" -> \"{s}\" [label=\"{topic}\"];");
            }
            continue;
        }
        for p in &entry.publishers {
            for s in &entry.subscribers {
                let _ = writeln!(dot, "    \"{p}\" -> \"{s}\" [label=\"{topic}\"];");
            }
        }
    }
    dot.push_str("}\n");
    dot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Role;
    use zerosmq_core::{NodeName, Topic};

    #[test]
    fn draws_pairs_and_lonely_topics() {
        let mut r = Registry::default();
        let n = |s| NodeName::new(s).unwrap();
        let t = |s| Topic::new(s).unwrap();
        r.add(&n("pub1.py"), &t("temp"), Role::Publisher);
        r.add(&n("sub-1"), &t("temp"), Role::Subscriber);
        r.add(&n("sub-1"), &t("lonely"), Role::Subscriber);
        assert_eq!(
            to_dot(&r),
            "digraph G {\n    edge [dir=forward, fontsize=8];\n    node [shape=ellipse];\n\
             \x20   \"pub1.py\" [label=\"pub1\"];\n    \"sub-1\";\n\
             \x20   \"topic lonely\" [label=\"lonely\", shape=box, style=dashed];\n\
             \x20   \"topic lonely\" -> \"sub-1\" [label=\"lonely\"];\n\
             \x20   \"pub1.py\" -> \"sub-1\" [label=\"temp\"];\n}\n"
        );
    }
}
