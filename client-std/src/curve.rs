//! CURVE keys of a node (feature `curve`): the key pair type, reading a key file, and making
//! a pair. See [`NodeBuilder::curve`](crate::NodeBuilder::curve).

use std::path::Path;

pub use zerosmq_core::zmtp::curve::{CurveKeyPair, KEY_LEN};
use zerosmq_core::zmtp::z85;

use crate::transport::mechanism::Mechanism;
use crate::{Error, Result};

/// Reads a key file: the public key on the first line, the secret key on the second, Z85 (as
/// `zerosmq-master --curve-keygen` writes it and libzmq's `zmq_curve_keypair` prints it).
pub fn load_keys(path: impl AsRef<Path>) -> Result<CurveKeyPair> {
    let path = path.as_ref();
    let error = |reason: String| Error::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?);
    CurveKeyPair::from_key_file(&text).map_err(|e| error(e.to_string()))
}

/// A fresh key pair from the operating system's randomness.
pub fn generate_keys() -> CurveKeyPair {
    CurveKeyPair::generate(&mut rand_core::OsRng)
}

/// A public key's Z85 text (40 characters), as `*.pub` files of `--curve-clients` hold it.
pub fn key_text(key: &[u8; KEY_LEN]) -> String {
    String::from_utf8_lossy(&z85::encode_key(key)).into_owned()
}

/// The mechanism of a node with CURVE: `server` is the master's public key in Z85; without
/// `keys` the node makes an ephemeral pair.
pub(crate) fn mechanism(server: &str, keys: Option<CurveKeyPair>) -> Result<Mechanism> {
    let server = z85::decode_key(server.as_bytes()).map_err(|_| Error::InvalidKey)?;
    Ok(Mechanism::Curve {
        server,
        keys: Box::new(keys.unwrap_or_else(generate_keys)),
    })
}
