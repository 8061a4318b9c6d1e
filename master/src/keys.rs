//! CURVE keys of the master: its key file (`--curve-keygen` writes one, `--curve-keys` reads
//! it) and the directory of admitted client keys (`--curve-clients`).
//!
//! A key file holds the public key on its first line and the secret key on its second, Z85
//! (40 characters each), as libzmq's `zmq_curve_keypair` prints them; `#` lines and blank lines
//! are skipped. A client key file (`NAME.pub`) holds one public key; `NAME` is the client's
//! name in the ACL, as a PLAIN user's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand_core::OsRng;
use zeroize::Zeroizing;
use zerosmq_core::zmtp::curve::{key_file_lines, CurveKeyPair, KeyFileError, KEY_LEN};
use zerosmq_core::zmtp::z85;

/// Why a key file or directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: expected the public key and the secret key, Z85, one per line")]
    Missing { path: PathBuf },
    #[error("{path}: {what} is not a Z85 CURVE key (40 characters)")]
    NotAKey { path: PathBuf, what: &'static str },
    #[error("{path}: the public key does not belong to the secret key")]
    Mismatch { path: PathBuf },
    #[error("{path}: the same public key as {other}")]
    Duplicate { path: PathBuf, other: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a new key pair (from the OS's randomness) to `path`, readable by its owner only, and
/// returns the public key's Z85 text. An existing file is not overwritten.
pub fn generate(path: &Path) -> Result<String, KeyError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let pair = CurveKeyPair::generate(&mut OsRng);
    let public = z85::encode_key(pair.public());
    let secret = Zeroizing::new(z85::encode_key(pair.secret()));
    let mut text = Zeroizing::new(Vec::with_capacity(2 * z85::KEY_TEXT_LEN + 2));
    text.extend_from_slice(&public);
    text.push(b'\n');
    text.extend_from_slice(&secret[..]);
    text.push(b'\n');
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&text))
        .map_err(io(path))?;
    Ok(String::from_utf8_lossy(&public).into_owned())
}

/// Reads a key file (its format is core's: [`CurveKeyPair::from_key_file`]).
pub fn load_pair(path: &Path) -> Result<CurveKeyPair, KeyError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
    CurveKeyPair::from_key_file(&text).map_err(|e| {
        let path = path.to_owned();
        match e {
            KeyFileError::NotAKey { public: true } => KeyError::NotAKey {
                path,
                what: "the public key",
            },
            KeyFileError::NotAKey { .. } => KeyError::NotAKey {
                path,
                what: "the secret key",
            },
            KeyFileError::Mismatch => KeyError::Mismatch { path },
            _ => KeyError::Missing { path },
        }
    })
}

/// The admitted client keys, by the name of their file.
#[derive(Debug, Clone, Default)]
pub struct ClientKeys {
    names: HashMap<[u8; KEY_LEN], String>,
}

impl ClientKeys {
    /// Reads every `*.pub` file of `dir` (other files are skipped); a file that is not a key, or
    /// a key given twice, is an error (a security setting must not be half-applied).
    pub fn load(dir: &Path) -> Result<ClientKeys, KeyError> {
        let mut keys = ClientKeys::default();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pub") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let key = key_file_lines(&text)
                .next()
                .and_then(|l| z85::decode_key(l.as_bytes()).ok())
                .ok_or(KeyError::NotAKey {
                    path: path.clone(),
                    what: "its first line",
                })?;
            if let Some(other) = keys.names.insert(key, name.to_owned()) {
                return Err(KeyError::Duplicate { path, other });
            }
        }
        Ok(keys)
    }

    /// The name of an admitted key.
    pub fn name(&self, key: &[u8; KEY_LEN]) -> Option<&str> {
        self.names.get(key).map(String::as_str)
    }

    /// Admits `key` under `name` (a node of the master's own process); false when the key or
    /// the name is already there.
    pub(crate) fn admit(&mut self, key: [u8; KEY_LEN], name: &str) -> bool {
        if self.names.contains_key(&key) || self.names.values().any(|n| n == name) {
            return false;
        }
        self.names.insert(key, name.to_owned());
        true
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The text form of a public key, for logs.
pub fn key_text(key: &[u8; KEY_LEN]) -> String {
    String::from_utf8_lossy(&z85::encode_key(key)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zerosmq-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn generated_pair_loads_and_matches_its_public_key() {
        let d = dir("gen");
        let file = d.join("master.key");
        let public = generate(&file).unwrap();
        let pair = load_pair(&file).unwrap();
        assert_eq!(key_text(pair.public()), public);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().next(), Some(public.as_str()));
        assert_eq!(text.lines().count(), 2);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secret key readable by others: {mode:o}");
        assert!(generate(&file).is_err(), "an existing key file is kept");
        assert_ne!(generate(&d.join("other.key")).unwrap(), public);
    }

    #[test]
    fn libzmq_key_pair_loads_and_bad_files_are_errors() {
        // RFC 26's test keys as pyzmq's curve_keypair prints them (tests/curve_interop.rs).
        let d = dir("bad");
        let ok = d.join("ok.key");
        std::fs::write(
            &ok,
            "# server\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\nJTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n",
        )
        .unwrap();
        assert!(load_pair(&ok).is_ok());
        let cases = [
            ("one line", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n"),
            ("short", "rq:rM>}U?@Lns47E1%kR\nJTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n"),
            ("mismatch", "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\nJTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n"),
        ];
        for (name, text) in cases {
            let f = d.join(name);
            std::fs::write(&f, text).unwrap();
            let e = load_pair(&f).unwrap_err();
            assert!(
                e.to_string().contains(name) || !matches!(e, KeyError::Io { .. }),
                "{e}"
            );
        }
        assert!(matches!(
            load_pair(&d.join("mismatch")),
            Err(KeyError::Mismatch { .. })
        ));
        assert!(matches!(
            load_pair(&d.join("absent")),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn client_keys_are_named_by_their_file() {
        let d = dir("clients");
        std::fs::write(
            d.join("alice.pub"),
            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\n",
        )
        .unwrap();
        std::fs::write(d.join("README"), "not a key").unwrap();
        let keys = ClientKeys::load(&d).unwrap();
        assert_eq!(keys.len(), 1);
        let alice = z85::decode_key(b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID").unwrap();
        assert_eq!(keys.name(&alice), Some("alice"));
        assert_eq!(keys.name(&[0; 32]), None);
        std::fs::write(
            d.join("again.pub"),
            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\n",
        )
        .unwrap();
        assert!(matches!(
            ClientKeys::load(&d),
            Err(KeyError::Duplicate { .. })
        ));
        std::fs::write(d.join("again.pub"), "garbage\n").unwrap();
        assert!(matches!(
            ClientKeys::load(&d),
            Err(KeyError::NotAKey { .. })
        ));
    }
}
