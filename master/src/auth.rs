//! Who may connect and what they may do: PLAIN passwords and CURVE client keys, checked in the
//! handshake of every connection (`engine/handshake.rs`), and an access list mapping users (the
//! PLAIN user, the CURVE client's key name, or the node name without either) to the topics they
//! may publish and subscribe.
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
//! With passwords (or CURVE keys), every master port authenticates: the control port admits any
//! user with the right password (or a listed key) and checks the ACL on each grant; a topic's
//! ports check the ACL in the handshake too, so the data ports are protected, not only grants.

use std::collections::BTreeMap;
use std::path::Path;

use tracing::warn;

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
}

/// The master's security settings, loaded at start.
#[derive(Debug, Default)]
pub struct Security {
    /// The PLAIN users: every port is a PLAIN server.
    pub passwords: Option<Passwords>,
    /// Every port (control and topics) is a CURVE server: encrypted traffic, and clients that
    /// know the master's public key (and, with `--curve-clients`, whose own key is listed).
    pub curve: Option<CurveSecurity>,
    pub acl: Option<Acl>,
    /// Credentials of the nodes in the master's own process ([`crate::MasterConfig::internal_nodes`]).
    pub internal: Vec<(String, InternalCredentials)>,
}

/// What a node in the master's own process (the Foxglove endpoint, the web page) presents so
/// that the master's PLAIN or CURVE admits it under its own name, to which the ACL applies.
#[derive(Clone)]
pub enum InternalCredentials {
    /// A PLAIN user of that name, with a password made at start and known only in the process.
    Plain { user: String, password: String },
    /// A CURVE key pair made at start, admitted under that name (also with `--curve-clients`).
    Curve {
        server_public: String,
        keys: zerosmq_core::zmtp::curve::CurveKeyPair,
    },
}

impl std::fmt::Debug for InternalCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InternalCredentials::Plain { user, .. } => write!(f, "Plain {{ user: {user:?} }}"),
            InternalCredentials::Curve { server_public, .. } => {
                write!(f, "Curve {{ server_public: {server_public:?} }}")
            }
        }
    }
}

impl Security {
    /// The data ports' mechanism, as a greeting names it.
    pub fn mechanism(&self) -> &'static str {
        match (&self.curve, &self.passwords) {
            (Some(_), _) => "CURVE",
            (None, Some(_)) => "PLAIN",
            (None, None) => "NULL",
        }
    }
}

/// The master's CURVE key pair and the admitted client keys (see [`crate::keys`]).
#[derive(Debug, Clone)]
pub struct CurveSecurity {
    pub keys: zerosmq_core::zmtp::curve::CurveKeyPair,
    /// `None`: any client that knows the server key.
    pub clients: Option<crate::keys::ClientKeys>,
}

impl Security {
    /// Loads the files of `config` and makes the credentials of its internal nodes.
    pub fn start(config: &crate::MasterConfig) -> Result<Security, crate::MasterError> {
        let mut security = Security::load(config)?;
        for name in &config.internal_nodes {
            let taken = || {
                crate::MasterError::Config(format!(
                    "the master's own node '{name}' needs that name, and it is already a user or client key name: rename that one"
                ))
            };
            let credentials = if let Some(curve) = &mut security.curve {
                let keys = zerosmq_core::zmtp::curve::CurveKeyPair::generate(&mut rand_core::OsRng);
                if let Some(clients) = &mut curve.clients {
                    if !clients.admit(*keys.public(), name) {
                        return Err(taken());
                    }
                }
                InternalCredentials::Curve {
                    server_public: crate::keys::key_text(curve.keys.public()),
                    keys,
                }
            } else if let Some(passwords) = &mut security.passwords {
                let mut secret = [0u8; 24];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
                let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
                if passwords.0.insert(name.clone(), password.clone()).is_some() {
                    return Err(taken());
                }
                InternalCredentials::Plain {
                    user: name.clone(),
                    password,
                }
            } else {
                continue;
            };
            security.internal.push((name.clone(), credentials));
        }
        Ok(security)
    }

    fn load(config: &crate::MasterConfig) -> Result<Security, crate::MasterError> {
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
                    tracing::info!(%public, admitted = k.len(), acl = acl.is_some(), "CURVE on the control port and every topic port: clients listed in --curve-clients")
                }
                None => {
                    tracing::info!(%public, acl = acl.is_some(), "CURVE on the control port and every topic port: any client that knows the public key")
                }
            }
            if acl.is_some() && c.clients.is_none() {
                warn!("CURVE with an ACL but without --curve-clients: clients have no names, so grants are checked by node name and the topic ports by the rules for everyone");
            }
            return Ok(Security {
                passwords: None,
                curve,
                acl,
                internal: Vec::new(),
            });
        }
        let Some(path) = &config.passwords else {
            if acl.is_some() {
                warn!("ACL without passwords: grants are checked by node name, data ports are not protected");
            }
            return Ok(Security {
                passwords: None,
                curve: None,
                acl,
                internal: Vec::new(),
            });
        };
        let passwords = Passwords::load(path).map_err(crate::MasterError::Config)?;
        tracing::info!(users = %path.display(), acl = acl.is_some(), "PLAIN authentication on every socket");
        Ok(Security {
            passwords: Some(passwords),
            curve: None,
            acl,
            internal: Vec::new(),
        })
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
