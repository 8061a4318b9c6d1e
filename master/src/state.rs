//! The master's state file: topics with their ports, and who publishes and subscribes what.
//!
//! With a state file, a restarted master rebinds every topic on the ports it had, so publishers'
//! and subscribers' automatic reconnects (libzmq's, and the embedded client's) find their topics
//! again without asking, and the node graph is back at once. Plain text, one fact per line:
//!
//! ```text
//! zerosmq-master-state 1
//! topic chatter 40001 40002
//! pub talker chatter
//! sub listener chatter
//! live talker
//! owner talker alice
//! ```
//!
//! (`owner NODE USER`: the authenticated user a node name is bound to, with `--passwords`.)
//!
//! Written to a temporary file and renamed, so a crash mid-write leaves the previous state.

use std::io::Write as _;
use std::path::Path;

use tracing::warn;
use zerosmq_core::{NodeName, Topic};

use crate::registry::{Registry, Role};

const HEADER: &str = "zerosmq-master-state 1";

/// What a state file holds.
#[derive(Debug, Default, PartialEq)]
pub struct SavedState {
    pub topics: Vec<(Topic, u16, u16)>,
    pub roles: Vec<(NodeName, Role, Topic)>,
    pub live: Vec<NodeName>,
    /// Node names bound to an authenticated user.
    pub owners: Vec<(NodeName, String)>,
}

/// Reads a state file. A missing file is an empty state; malformed lines are skipped with a
/// warning (a damaged file must not keep the master from starting).
pub fn load(path: &Path) -> std::io::Result<SavedState> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SavedState::default()),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        warn!(path = %path.display(), "state file has an unknown format; starting empty");
        return Ok(SavedState::default());
    }
    let mut state = SavedState::default();
    for (n, line) in lines.enumerate() {
        if parse_line(line, &mut state).is_none() {
            warn!(path = %path.display(), line = n + 2, "skipping malformed state line");
        }
    }
    Ok(state)
}

fn parse_line(line: &str, state: &mut SavedState) -> Option<()> {
    // A user name is the rest of the line (the password file allows spaces in it).
    if let Some(rest) = line.strip_prefix("owner ") {
        let (node, user) = rest.split_once(' ')?;
        state
            .owners
            .push((NodeName::new(node).ok()?, user.to_owned()));
        return Some(());
    }
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["topic", t, p, s] => {
            state
                .topics
                .push((Topic::new(t).ok()?, p.parse().ok()?, s.parse().ok()?))
        }
        ["pub", n, t] => {
            state
                .roles
                .push((NodeName::new(n).ok()?, Role::Publisher, Topic::new(t).ok()?))
        }
        ["sub", n, t] => state.roles.push((
            NodeName::new(n).ok()?,
            Role::Subscriber,
            Topic::new(t).ok()?,
        )),
        ["live", n] => state.live.push(NodeName::new(n).ok()?),
        _ => return None,
    }
    Some(())
}

/// Writes the registry and the topics' ports.
pub fn save<'a>(
    path: &Path,
    registry: &Registry,
    topics: impl Iterator<Item = (&'a Topic, u16, u16)>,
) -> std::io::Result<()> {
    let mut out = String::from(HEADER);
    out.push('\n');
    for (t, p, s) in topics {
        out.push_str(&format!("topic {t} {p} {s}\n"));
    }
    for (node, entry) in registry.nodes() {
        for t in &entry.publishes {
            out.push_str(&format!("pub {node} {t}\n"));
        }
        for t in &entry.subscribes {
            out.push_str(&format!("sub {node} {t}\n"));
        }
    }
    for node in registry.live_nodes() {
        out.push_str(&format!("live {node}\n"));
    }
    for (node, user) in registry.owners() {
        out.push_str(&format!("owner {node} {user}\n"));
    }
    // A fresh name opened with O_CREAT|O_EXCL: a planted file or symlink is never written through.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_extension(format!("tmp.{}.{nanos:08x}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let written = f
        .write_all(out.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_damage() {
        let dir = std::env::temp_dir().join(format!("zerosmq-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.state");
        let mut r = Registry::default();
        let n = NodeName::new("talker").unwrap();
        let t = Topic::new("chatter").unwrap();
        r.add(&n, &t, Role::Publisher);
        r.restore_live(&n, std::time::Instant::now());
        r.bind_owner(&n, "alice smith");
        save(&path, &r, [(&t, 40001u16, 40002u16)].into_iter()).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.topics, vec![(t.clone(), 40001, 40002)]);
        assert_eq!(loaded.roles, vec![(n.clone(), Role::Publisher, t.clone())]);
        assert_eq!(loaded.live, vec![n.clone()]);
        assert_eq!(loaded.owners, vec![(n.clone(), "alice smith".to_owned())]);
        let mut damaged = std::fs::read_to_string(&path).unwrap();
        damaged.push_str("topic bad\npub a b c d\n\u{0}garbage\ntopic x 1 99999\n");
        std::fs::write(&path, damaged).unwrap();
        assert_eq!(load(&path).unwrap(), loaded);
        std::fs::write(&path, "something else\n").unwrap();
        assert_eq!(load(&path).unwrap(), SavedState::default());
        assert_eq!(load(&dir.join("missing")).unwrap(), SavedState::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_not_written_through() {
        let dir = std::env::temp_dir().join(format!("zerosmq-state-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("victim");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("m.tmp")).unwrap();
        let path = dir.join("m.state");
        save(&path, &Registry::default(), std::iter::empty()).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(HEADER));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
