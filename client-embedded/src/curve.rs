//! The node's CURVE setting (feature `curve`): the master's public key, the node's key pair and
//! the generator of every connection's ephemeral key and nonces.
//!
//! Randomness comes from the caller's `CryptoRng` once, in `with_curve`: it seeds a Salsa20
//! key, and each connection draws its randomness from that key's keystream after first
//! replacing the key with the keystream's first 32 bytes ("fast key erasure"), so no state kept
//! in the node can recompute an earlier connection's ephemeral secret. Salsa20 is the cipher
//! of CURVE's boxes, so the generator adds almost no code; a stored caller RNG would have made
//! `Node` generic over it or borrow it for its lifetime.

use core::cell::Cell;
use core::fmt;

use rand_core::{CryptoRng, RngCore};
use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::Salsa20;
use zerosmq_core::zmtp::curve::{CurveKeyPair, KEY_LEN};
use zerosmq_core::zmtp::{Connection, SocketType};

/// The public key given to `with_curve` is not the one of the secret key given with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurveKeyMismatch;

impl fmt::Display for CurveKeyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the CURVE public key given is not the secret key's")
    }
}

impl core::error::Error for CurveKeyMismatch {}

/// What every CURVE connection of a node starts from.
pub(crate) struct CurveConfig {
    server: [u8; KEY_LEN],
    keys: CurveKeyPair,
    /// The generator's key; replaced on every draw.
    seed: Cell<[u8; 32]>,
}

impl fmt::Debug for CurveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurveConfig")
            .field("server", &self.server)
            .field("public", self.keys.public())
            .finish_non_exhaustive()
    }
}

impl CurveConfig {
    pub(crate) fn new<R: CryptoRng + RngCore>(
        server: [u8; KEY_LEN],
        public: [u8; KEY_LEN],
        secret: [u8; KEY_LEN],
        rng: &mut R,
    ) -> Result<Self, CurveKeyMismatch> {
        let keys = CurveKeyPair::from_secret(secret);
        if keys.public() != &public {
            return Err(CurveKeyMismatch);
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Ok(CurveConfig {
            server,
            keys,
            seed: Cell::new(seed),
        })
    }

    /// A fresh CURVE client connection of `socket_type`, with its own ephemeral keys.
    pub(crate) fn connection(&self, socket_type: SocketType) -> Connection<'static> {
        let mut stream = Keystream(Salsa20::new(&self.seed.get().into(), &[0u8; 8].into()));
        let mut next = [0u8; 32];
        stream.fill_bytes(&mut next);
        self.seed.set(next);
        Connection::curve_client(socket_type, self.server, self.keys.clone(), &mut stream)
    }
}

impl Drop for CurveConfig {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.seed.get_mut());
    }
}

/// One draw's randomness: a Salsa20 keystream.
struct Keystream(Salsa20);

impl RngCore for Keystream {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
        // Only past 2^70 bytes of one keystream; a draw takes under a hundred.
        let _ = self.0.try_apply_keystream(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Keystream {}

#[cfg(test)]
mod tests {
    use super::*;
    use zerosmq_core::zmtp::curve::ReplayRng;
    use zerosmq_core::zmtp::Greeting;

    #[test]
    fn a_mismatched_public_key_is_refused_and_each_connection_has_its_own_keys() {
        let pair = CurveKeyPair::from_secret([7; 32]);
        let server = *CurveKeyPair::from_secret([9; 32]).public();
        assert_eq!(
            CurveConfig::new(server, [1; 32], *pair.secret(), &mut ReplayRng(1)).err(),
            Some(CurveKeyMismatch)
        );
        let cfg =
            CurveConfig::new(server, *pair.public(), *pair.secret(), &mut ReplayRng(1)).unwrap();
        let mut a = cfg.connection(SocketType::Req);
        let mut b = cfg.connection(SocketType::Req);
        let (mut ta, mut tb) = ([0u8; 320], [0u8; 320]);
        // Greetings are equal; the HELLOs carry different ephemeral keys.
        assert_eq!(a.poll_transmit(&mut ta), b.poll_transmit(&mut tb));
        let mut greeting = Greeting::ours_with(b"CURVE");
        greeting.as_server = true;
        let mut rx = [0u8; 320];
        for c in [&mut a, &mut b] {
            rx[..64].copy_from_slice(&greeting.to_bytes());
            assert_eq!(c.commit_in_place(64, &mut rx), Ok(None));
        }
        let n = a.poll_transmit(&mut ta).unwrap();
        assert_eq!(n, Some(202));
        assert_eq!(b.poll_transmit(&mut tb).unwrap(), n);
        assert_ne!(ta[..202], tb[..202]);
    }
}
