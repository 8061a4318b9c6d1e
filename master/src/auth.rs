//! Who may connect and what they may do: PLAIN passwords checked by a ZAP handler, and an access
//! list mapping users (or node names, without authentication) to the topics they may publish
//! and subscribe.
//!
//! Password file, one user per line (`#` starts a comment):
//!
//! ```text
//! alice:correct horse
//! bob:battery staple
//! ```
//!
//! ACL file, in mosquitto's shape: `topic` rules before the first `user` line apply to everyone;
//! after a `user NAME` line they apply to that user (the PLAIN user name, or the node name when
//! the master runs without passwords). Access is `read` (subscribe), `write` (publish) or
//! `readwrite`; a pattern is a topic, or a prefix followed by `*` (`#` is accepted as `*`).
//!
//! ```text
//! topic read clock
//! user alice
//! topic write sensors/*
//! topic read commands
//! node sensor-*
//! ```
//!
//! `node PATTERN` lines (ours; same patterns) say which node names a user may use: a user to
//! whom any `node` line applies (theirs, or one before the first `user` line) may register and
//! heartbeat only under matching names; a user with none may use any free name. They apply with
//! passwords only (without them the node name is the principal). Whatever the ACL says, a name
//! is bound to the first user that uses it while it has roles or heartbeats.
//!
//! With passwords, every master socket is a PLAIN server: the control socket in ZAP domain
//! `zerosmq`, a topic's publisher socket in domain `pub:TOPIC` and its subscriber socket in
//! `sub:TOPIC`, so the ZAP handler enforces the ACL on the data ports too, not only on grants.

use std::collections::BTreeMap;
use std::path::Path;

use tracing::{debug, warn};

/// Access a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Subscribe.
    Read,
    /// Publish.
    Write,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    read: bool,
    write: bool,
}

impl Rule {
    fn matches(&self, topic: &str, access: Access) -> bool {
        let allowed = match access {
            Access::Read => self.read,
            Access::Write => self.write,
        };
        allowed && pattern_matches(&self.pattern, topic)
    }
}

/// The access list.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    everyone: Vec<Rule>,
    users: BTreeMap<String, Vec<Rule>>,
    /// `node` patterns before the first `user` line.
    everyone_names: Vec<String>,
    /// `node` patterns per user.
    user_names: BTreeMap<String, Vec<String>>,
}

/// Whether `name` matches a pattern: exact, or a prefix followed by `*`.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl Acl {
    /// Reads an ACL file; a malformed line is an error naming the line (a security file must
    /// not be half-applied).
    pub fn load(path: &Path) -> Result<Acl, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Acl::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Acl, String> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            // As mosquitto: a comment is a whole line starting with `#` (inside a pattern `#` is
            // a wildcard).
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["user", name] => {
                    user = Some((*name).to_owned());
                    acl.users.entry((*name).to_owned()).or_default();
                }
                ["topic", access, pattern] => {
                    let (read, write) = match *access {
                        "read" => (true, false),
                        "write" => (false, true),
                        "readwrite" => (true, true),
                        other => return Err(format!("line {}: unknown access '{other}'", n + 1)),
                    };
                    let rule = Rule {
                        pattern: pattern.replace('#', "*"),
                        read,
                        write,
                    };
                    match &user {
                        Some(u) => acl.users.entry(u.clone()).or_default().push(rule),
                        None => acl.everyone.push(rule),
                    }
                }
                ["node", pattern] => {
                    let pattern = pattern.replace('#', "*");
                    match &user {
                        Some(u) => acl.user_names.entry(u.clone()).or_default().push(pattern),
                        None => acl.everyone_names.push(pattern),
                    }
                }
                _ => {
                    return Err(format!(
                        "line {}: expected 'user NAME', 'topic ACCESS PATTERN' or 'node PATTERN'",
                        n + 1
                    ))
                }
            }
        }
        Ok(acl)
    }

    /// Whether `principal` (user or node name) may `access` `topic`.
    pub fn allows(&self, principal: &str, topic: &str, access: Access) -> bool {
        self.everyone
            .iter()
            .chain(self.users.get(principal).into_iter().flatten())
            .any(|r| r.matches(topic, access))
    }

    /// Whether `user` may use node name `node`: yes unless `node` lines apply to the user and
    /// none matches.
    pub fn allows_name(&self, user: &str, node: &str) -> bool {
        let mut patterns = self
            .everyone_names
            .iter()
            .chain(self.user_names.get(user).into_iter().flatten())
            .peekable();
        patterns.peek().is_none() || patterns.any(|p| pattern_matches(p, node))
    }
}

/// PLAIN user names and passwords.
#[derive(Debug, Clone, Default)]
pub struct Passwords(BTreeMap<String, String>);

impl Passwords {
    pub fn load(path: &Path) -> Result<Passwords, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut users = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (user, password) = line.split_once(':').ok_or_else(|| {
                format!("{}: line {}: expected user:password", path.display(), n + 1)
            })?;
            users.insert(user.to_owned(), password.to_owned());
        }
        Ok(Passwords(users))
    }

    pub(crate) fn check(&self, user: &[u8], password: &[u8]) -> Option<&str> {
        let user = std::str::from_utf8(user).ok()?;
        let (name, expected) = self.0.get_key_value(user)?;
        // Constant-time compare: the time taken must not tell how much of a guess was right.
        let ok = expected.len() == password.len()
            && expected
                .bytes()
                .zip(password)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        ok.then_some(name.as_str())
    }
}

/// ZAP domain of the control socket.
pub const CONTROL_DOMAIN: &str = "zerosmq";

/// ZAP domain of a topic socket: `pub:TOPIC` (publishers connect) or `sub:TOPIC`.
pub fn topic_domain(topic: &str, access: Access) -> String {
    match access {
        Access::Write => format!("pub:{topic}"),
        Access::Read => format!("sub:{topic}"),
    }
}

/// Answers ZAP requests (RFC 27) on `socket` until the context terminates.
pub fn serve_zap(socket: zmq::Socket, passwords: Passwords, acl: Option<Acl>) {
    loop {
        let frames = match socket.recv_multipart(0) {
            Ok(f) => f,
            Err(zmq::Error::ETERM) => return,
            Err(e) => {
                warn!(error = %e, "ZAP receive failed");
                return;
            }
        };
        let reply = zap_decide(&frames, &passwords, acl.as_ref());
        if let Err(e) = socket.send_multipart(reply, 0) {
            if e == zmq::Error::ETERM {
                return;
            }
            warn!(error = %e, "ZAP reply failed");
        }
    }
}

/// One ZAP decision: `[version, id, domain, address, identity, mechanism, user, password]` ->
/// `[version, id, status, text, user id, metadata]`.
fn zap_decide(frames: &[Vec<u8>], passwords: &Passwords, acl: Option<&Acl>) -> Vec<Vec<u8>> {
    let field = |i: usize| frames.get(i).map(Vec::as_slice).unwrap_or_default();
    let reply = |status: &str, text: &str, user: &str| {
        vec![
            b"1.0".to_vec(),
            field(1).to_vec(),
            status.into(),
            text.into(),
            user.into(),
            Vec::new(),
        ]
    };
    if field(0) != b"1.0" || field(5) != b"PLAIN" {
        warn!("ZAP: refused a connection that is not PLAIN");
        return reply("400", "PLAIN required", "");
    }
    let address = String::from_utf8_lossy(field(3)).into_owned();
    let Some(user) = passwords.check(field(6), field(7)) else {
        warn!(%address, user = %String::from_utf8_lossy(field(6)), "refused: wrong user name or password");
        return reply("400", "wrong user name or password", "");
    };
    let domain = String::from_utf8_lossy(field(2));
    let access = match domain.split_once(':') {
        Some(("pub", topic)) => Some((topic, Access::Write)),
        Some(("sub", topic)) => Some((topic, Access::Read)),
        _ => None,
    };
    if let (Some((topic, access)), Some(acl)) = (access, acl) {
        if !acl.allows(user, topic, access) {
            warn!(%address, %user, %topic, ?access, "refused by the ACL on a data port");
            return reply("400", "not allowed by the ACL", "");
        }
    }
    debug!(%address, %user, %domain, "authenticated");
    reply("200", "OK", user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_rules_apply_per_user_and_to_everyone() {
        let acl = Acl::parse(
            "# comment\ntopic read clock\nuser alice\ntopic write sensors/*\ntopic readwrite chat\nuser bob\ntopic read sensors#\n",
        )
        .unwrap();
        assert!(acl.allows("alice", "sensors/imu", Access::Write));
        assert!(!acl.allows("alice", "sensors/imu", Access::Read));
        assert!(acl.allows("alice", "chat", Access::Read));
        assert!(acl.allows("bob", "sensors/imu", Access::Read));
        assert!(!acl.allows("bob", "sensors/imu", Access::Write));
        assert!(
            acl.allows("carol", "clock", Access::Read),
            "rules before any user apply to all"
        );
        assert!(!acl.allows("carol", "chat", Access::Read));
        assert!(
            !acl.allows("alice", "chatter", Access::Read),
            "exact patterns are exact"
        );
        assert!(Acl::parse("topic sometimes x").is_err());
        assert!(Acl::parse("node").is_err());
        assert!(Acl::parse("users alice").is_err());
    }

    #[test]
    fn node_lines_reserve_names() {
        let acl =
            Acl::parse("node shared-*\nuser alice\nnode a-*\nuser bob\nnode b-one\n").unwrap();
        assert!(acl.allows_name("alice", "a-pub"));
        assert!(
            acl.allows_name("alice", "shared-x"),
            "everyone's lines apply too"
        );
        assert!(!acl.allows_name("alice", "b-one"));
        assert!(acl.allows_name("bob", "b-one"));
        assert!(!acl.allows_name("bob", "b-two"), "exact patterns are exact");
        assert!(
            !acl.allows_name("carol", "a-pub"),
            "everyone's lines restrict carol"
        );
        let open = Acl::parse("user alice\nnode a-*\n").unwrap();
        assert!(
            open.allows_name("bob", "anything"),
            "no line for bob: any name"
        );
        assert!(!open.allows_name("alice", "anything"));
    }

    #[test]
    fn zap_checks_passwords_and_the_acl_on_data_ports() {
        let passwords = Passwords(
            [("alice".to_owned(), "s3cret".to_owned())]
                .into_iter()
                .collect(),
        );
        let acl = Acl::parse("user alice\ntopic write t\n").unwrap();
        let req = |domain: &str, user: &str, password: &str| -> Vec<Vec<u8>> {
            ["1.0", "7", domain, "127.0.0.1", "", "PLAIN", user, password]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect()
        };
        let status = |r: Vec<Vec<u8>>| String::from_utf8(r[2].clone()).unwrap();
        assert_eq!(
            status(zap_decide(
                &req("zerosmq", "alice", "s3cret"),
                &passwords,
                Some(&acl)
            )),
            "200"
        );
        assert_eq!(
            status(zap_decide(
                &req("zerosmq", "alice", "s3cre"),
                &passwords,
                Some(&acl)
            )),
            "400"
        );
        assert_eq!(
            status(zap_decide(
                &req("zerosmq", "mallory", "s3cret"),
                &passwords,
                Some(&acl)
            )),
            "400"
        );
        assert_eq!(
            status(zap_decide(
                &req("pub:t", "alice", "s3cret"),
                &passwords,
                Some(&acl)
            )),
            "200"
        );
        assert_eq!(
            status(zap_decide(
                &req("sub:t", "alice", "s3cret"),
                &passwords,
                Some(&acl)
            )),
            "400"
        );
        assert_eq!(
            status(zap_decide(
                &req("sub:t", "alice", "s3cret"),
                &passwords,
                None
            )),
            "200"
        );
        assert_eq!(
            status(zap_decide(&[b"1.0".to_vec()], &passwords, None)),
            "400"
        );
        let ok = zap_decide(&req("zerosmq", "alice", "s3cret"), &passwords, None);
        assert_eq!(ok[1], b"7");
        assert_eq!(ok[4], b"alice");
    }
}

/// The master's security settings, loaded at start.
#[derive(Debug, Default)]
pub struct Security {
    /// Every libzmq socket (the control socket) is a PLAIN server checked by the ZAP handler.
    pub plain: bool,
    /// The PLAIN users, for the native engine's handshakes (the ZAP thread has its own copy).
    pub passwords: Option<Passwords>,
    /// Every topic port is a CURVE server: encrypted traffic, and clients that know the
    /// master's public key (and, with `--curve-clients`, whose own key is listed).
    pub curve: Option<CurveSecurity>,
    pub acl: Option<Acl>,
}

/// The master's CURVE key pair and the admitted client keys (see [`crate::keys`]).
#[derive(Debug, Clone)]
pub struct CurveSecurity {
    pub keys: zerosmq_core::zmtp::curve::CurveKeyPair,
    /// `None`: any client that knows the server key.
    pub clients: Option<crate::keys::ClientKeys>,
}

impl Security {
    /// Loads the files of `config` and, with passwords, starts the ZAP handler on `ctx`. Must run
    /// before any socket binds, so that no handshake happens without it.
    pub fn start(
        config: &crate::MasterConfig,
        ctx: &crate::sockets::MasterContext,
    ) -> Result<Security, crate::MasterError> {
        let config_error = |e: crate::keys::KeyError| crate::MasterError::Config(e.to_string());
        let acl = config
            .acl
            .as_deref()
            .map(Acl::load)
            .transpose()
            .map_err(crate::MasterError::Config)?;
        let curve = match (&config.curve_keys, &config.curve_clients) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(crate::MasterError::Config(
                    "--curve-clients needs --curve-keys (the master's own key pair)".into(),
                ))
            }
            (Some(_), _) if config.passwords.is_some() => {
                return Err(crate::MasterError::Config(
                    "choose PLAIN (--passwords) or CURVE (--curve-keys): a port has one mechanism"
                        .into(),
                ))
            }
            (Some(keys), clients) => Some(CurveSecurity {
                keys: crate::keys::load_pair(keys).map_err(config_error)?,
                clients: clients
                    .as_deref()
                    .map(crate::keys::ClientKeys::load)
                    .transpose()
                    .map_err(config_error)?,
            }),
        };
        if let Some(c) = &curve {
            let public = crate::keys::key_text(c.keys.public());
            match &c.clients {
                Some(k) => {
                    tracing::info!(%public, admitted = k.len(), acl = acl.is_some(), "CURVE on every topic port: clients listed in --curve-clients")
                }
                None => {
                    tracing::info!(%public, acl = acl.is_some(), "CURVE on every topic port: any client that knows the public key")
                }
            }
            // The control socket is libzmq's, built without CURVE (zmq-sys links no libsodium).
            warn!("the control service has no CURVE in this build: requests and replies (node and topic names, ports) travel in clear; topic data is encrypted");
            if acl.is_some() {
                warn!("CURVE with an ACL: grants are checked by node name, the topic ports by client key name");
            }
            return Ok(Security {
                plain: false,
                passwords: None,
                curve,
                acl,
            });
        }
        let Some(path) = &config.passwords else {
            if acl.is_some() {
                warn!("ACL without passwords: grants are checked by node name, data ports are not protected");
            }
            return Ok(Security {
                plain: false,
                passwords: None,
                curve: None,
                acl,
            });
        };
        let passwords = Passwords::load(path).map_err(crate::MasterError::Config)?;
        let zap = ctx
            .socket(zmq::REP)
            .map_err(|e| crate::MasterError::zmq("create ZAP socket", e))?;
        zap.set_linger(0)
            .map_err(|e| crate::MasterError::zmq("ZAP linger", e))?;
        zap.bind("inproc://zeromq.zap.01")
            .map_err(|e| crate::MasterError::zmq("bind ZAP handler", e))?;
        let zap_acl = acl.clone();
        std::thread::Builder::new()
            .name("zerosmq-zap".into())
            .spawn({
                let passwords = passwords.clone();
                move || serve_zap(zap, passwords, zap_acl)
            })?;
        tracing::info!(users = %path.display(), acl = acl.is_some(), "PLAIN authentication on every socket");
        Ok(Security {
            plain: true,
            passwords: Some(passwords),
            curve: None,
            acl,
        })
    }

    /// Makes `socket` a PLAIN server in ZAP `domain` when passwords are on.
    pub fn protect(&self, socket: &zmq::Socket, domain: &str) -> Result<(), zmq::Error> {
        if self.plain {
            socket.set_plain_server(true)?;
            socket.set_zap_domain(domain)?;
        }
        Ok(())
    }

    /// Whether the authenticated `user` may use node name `node` (the ACL's `node` lines; without
    /// authentication every name is allowed).
    pub fn allows_name(&self, user: Option<&str>, node: &str) -> bool {
        match (&self.acl, user) {
            (Some(acl), Some(user)) => acl.allows_name(user, node),
            _ => true,
        }
    }

    /// Whether a grant is allowed: by the authenticated user when there is one, else by node.
    pub fn allows(&self, user: Option<&str>, node: &str, topic: &str, access: Access) -> bool {
        self.acl
            .as_ref()
            .is_none_or(|acl| acl.allows(user.unwrap_or(node), topic, access))
    }
}
