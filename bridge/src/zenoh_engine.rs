//! The Zenoh engine: one Zenoh session (peer or client).
//!
//! - Topic `T` is put on key `PREFIX/T`; the bridge subscribes `PREFIX/**` (remote publications
//!   only) and brings in what its `--in` patterns match.
//! - Origin mark: every sample it puts carries the bridge id as its attachment; a sample with
//!   its own id is dropped should one come back through another path.
//! - Loss: a message is counted lost when no subscriber matches its key at the moment it is
//!   sent (the link to the other side is down), or when Zenoh refuses it. Samples are sent
//!   reliable with congestion control `Block`, so nothing is dropped while the link is up.
//! - Typed topics: a sample's encoding is `application/postcard;SCHEMA` (SCHEMA: base64 of the
//!   topic's schema, see [`Schema`]); a sample arriving with such an encoding is published into
//!   the master as a typed topic. Untyped topics keep Zenoh's default encoding.
//! - Multicast scouting is off unless asked for: peers find each other through `--zenoh-connect`
//!   / `--zenoh-listen` (or a router), as zenoh-bridge-ros2dds users configure them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};
use zenoh::bytes::Encoding;
use zenoh::key_expr::KeyExpr;
use zenoh::matching::MatchingListener;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::sample::Locality;
use zenoh::{Config, Session, Wait};

use crate::bridge::{Bridge, Engine, RateLimited, Schema, SendError, CONTENT_TYPE};
use crate::counters::Counters;

/// How to join Zenoh.
#[derive(Debug, Clone, Default)]
pub struct ZenohConfig {
    /// `peer` or `client`.
    pub mode: String,
    pub connect: Vec<String>,
    pub listen: Vec<String>,
    /// Multicast scouting (off by default).
    pub scouting: bool,
    /// A Zenoh configuration file, read first; the options above override it.
    pub file: Option<String>,
}

/// Builds the Zenoh configuration.
pub fn config(c: &ZenohConfig) -> Result<Config, String> {
    let mut config = match &c.file {
        Some(f) => Config::from_file(f).map_err(|e| format!("zenoh config {f}: {e}"))?,
        None => Config::default(),
    };
    let set = |config: &mut Config, key: &str, value: String| {
        config
            .insert_json5(key, &value)
            .map_err(|e| format!("zenoh config {key}={value}: {e}"))
    };
    if !c.mode.is_empty() {
        if c.mode != "peer" && c.mode != "client" {
            return Err(format!(
                "--zenoh-mode must be peer or client, not '{}'",
                c.mode
            ));
        }
        set(&mut config, "mode", format!("\"{}\"", c.mode))?;
    }
    let list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter()
                .map(|e| format!("\"{e}\""))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    if !c.connect.is_empty() {
        set(&mut config, "connect/endpoints", list(&c.connect))?;
    }
    if !c.listen.is_empty() {
        set(&mut config, "listen/endpoints", list(&c.listen))?;
    }
    if c.file.is_none() || c.scouting {
        set(
            &mut config,
            "scouting/multicast/enabled",
            c.scouting.to_string(),
        )?;
    }
    Ok(config)
}

/// The Zenoh side of a bridge.
pub struct Zenoh {
    session: Session,
    prefix: String,
    origin: String,
    publishers: Mutex<HashMap<String, (Publisher<'static>, MatchingListener<()>)>>,
    _subscriber: Subscriber<()>,
    put_log: RateLimited,
}

impl Zenoh {
    /// Opens the session and starts bringing samples in to `bridge`.
    pub fn start(
        c: &ZenohConfig,
        origin: String,
        bridge: Arc<Bridge>,
    ) -> Result<Arc<Zenoh>, String> {
        let session = zenoh::open(config(c)?)
            .wait()
            .map_err(|e| format!("zenoh: {e}"))?;
        let prefix = bridge.opts.prefix.clone();
        let head = format!("{prefix}/");
        let own = origin.clone();
        let b = bridge.clone();
        let subscriber = session
            .declare_subscriber(format!("{prefix}/**"))
            .allowed_origin(Locality::Remote)
            .callback(move |sample| {
                let c = &b.counters;
                if sample
                    .attachment()
                    .is_some_and(|a| *a.to_bytes() == *own.as_bytes())
                {
                    Counters::bump(&c.engine_echoes);
                    return;
                }
                let encoding = std::borrow::Cow::<str>::from(sample.encoding());
                let schema = schema_text(&encoding);
                match sample.key_expr().as_str().strip_prefix(head.as_str()) {
                    Some(name) => {
                        b.from_engine(name.as_bytes(), &sample.payload().to_bytes(), schema)
                    }
                    None => Counters::bump(&c.in_bad_name),
                }
            })
            .wait()
            .map_err(|e| format!("zenoh subscriber: {e}"))?;
        Counters::bump(&bridge.counters.engine_connects);
        info!(zid = %session.zid(), mode = c.mode, "zenoh session open; subscribed {prefix}/**");
        Ok(Arc::new(Zenoh {
            session,
            prefix,
            origin,
            publishers: Mutex::new(HashMap::new()),
            _subscriber: subscriber,
            put_log: RateLimited::default(),
        }))
    }
}

/// The encoding of a typed topic's samples.
fn typed_encoding(schema: &Schema) -> Encoding {
    Encoding::from(format!("{CONTENT_TYPE};{}", schema.text))
}

/// The schema text of an encoding `application/postcard;SCHEMA`; `None` for any other.
fn schema_text(encoding: &str) -> Option<&str> {
    encoding
        .strip_prefix(CONTENT_TYPE)
        .and_then(|rest| rest.strip_prefix(';'))
        .filter(|s| !s.is_empty())
}

/// Whether `key` is a Zenoh key a sample can be put on: a valid key expression without
/// wildcards (`*`, `$*`) and without `?` or `#`, which Zenoh reserves.
fn zenoh_key_ok(key: &str) -> bool {
    !key.contains(['*', '$', '?', '#']) && KeyExpr::try_from(key.to_owned()).is_ok()
}

impl Engine for Zenoh {
    fn kind(&self) -> &'static str {
        "zenoh"
    }

    fn key_for(&self, topic: &str) -> Option<String> {
        let key = format!("{}/{topic}", self.prefix);
        zenoh_key_ok(&key).then_some(key)
    }

    fn open(&self, key: &str) {
        let mut pubs = self.publishers.lock().unwrap_or_else(|e| e.into_inner());
        self.declare(&mut pubs, key);
    }

    fn send(&self, key: &str, payload: &[u8], schema: Option<&Schema>) -> Result<(), SendError> {
        let mut pubs = self.publishers.lock().unwrap_or_else(|e| e.into_inner());
        let Some((p, _)) = self.declare(&mut pubs, key) else {
            return Err(SendError::Failed);
        };
        // Nobody on the other side (the link is down): counted, not silently dropped.
        if !p.matching_status().wait().is_ok_and(|s| s.matching()) {
            return Err(SendError::LinkDown);
        }
        let put = p
            .put(payload.to_vec())
            .attachment(self.origin.as_bytes().to_vec());
        match schema {
            Some(s) => put.encoding(typed_encoding(s)).wait(),
            None => put.wait(),
        }
        .map_err(|e| {
            if let Some(n) = self.put_log.due() {
                warn!(key, count = n, "zenoh put failed: {e}");
            }
            SendError::Failed
        })
    }
}

type Publishers = HashMap<String, (Publisher<'static>, MatchingListener<()>)>;

impl Zenoh {
    /// The publisher of `key`, declared on first use with a listener that logs when the
    /// other side's subscribers come and go (the link's state, as far as this key goes).
    fn declare<'a>(
        &self,
        pubs: &'a mut Publishers,
        key: &str,
    ) -> Option<&'a (Publisher<'static>, MatchingListener<()>)> {
        if !pubs.contains_key(key) {
            let declared = self
                .session
                .declare_publisher(key.to_owned())
                .congestion_control(CongestionControl::Block)
                .allowed_destination(Locality::Remote)
                .wait()
                .and_then(|p| {
                    let k = key.to_owned();
                    let l = p
                        .matching_listener()
                        .callback(move |s| {
                            if s.matching() {
                                info!(key = k, "zenoh matched: a subscriber on the other side");
                            } else {
                                warn!(
                                    key = k,
                                    "zenoh unmatched: no subscriber on the other side (link down?)"
                                );
                            }
                        })
                        .wait()?;
                    Ok((p, l))
                });
            match declared {
                Ok(pl) => {
                    pubs.insert(key.to_owned(), pl);
                }
                Err(e) => {
                    warn!(key, "zenoh publisher: {e}");
                    return None;
                }
            }
        }
        pubs.get(key)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn typed_encodings() {
        let s = crate::bridge::Schema::from_bytes(vec![1, 2, 250]);
        let e = super::typed_encoding(&s).to_string();
        assert_eq!(e, format!("application/postcard;{}", s.text));
        assert_eq!(super::schema_text(&e), Some(s.text.as_str()));
        assert_eq!(super::schema_text("zenoh/bytes"), None);
        assert_eq!(super::schema_text("application/postcard"), None);
        assert_eq!(super::schema_text("application/postcardx;AA"), None);
    }

    #[test]
    fn keys() {
        assert!(super::zenoh_key_ok("zerosmq/robot/imu"));
        assert!(!super::zenoh_key_ok("zerosmq/a*"));
        assert!(!super::zenoh_key_ok("zerosmq/a//b"));
        assert!(!super::zenoh_key_ok("zerosmq/a/"));
        assert!(!super::zenoh_key_ok("zerosmq/$x"));
    }
}
