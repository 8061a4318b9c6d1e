//! The 64-byte greeting (RFC 23/37): signature, version, mechanism, as-server, filler.
//!
//! ```text
//! 0      0xFF           signature start
//! 1..9   padding        any bytes (libzmq sends 0 0 0 0 0 0 0 1)
//! 9      0x7F           signature end
//! 10     major (3)      11  minor (0 or 1)
//! 12..32 mechanism      "NULL" or "PLAIN", padded with zeros
//! 32     as-server      0 or 1
//! 33..64 filler         zeros
//! ```

/// Bytes in a greeting.
pub const GREETING_LEN: usize = 64;
const SIGNATURE_END: usize = 9;
const MAJOR: usize = 10;
const MINOR: usize = 11;
const MECHANISM: core::ops::Range<usize> = 12..32;
const AS_SERVER: usize = 32;

/// Protocol version this codec speaks: 3.1 (it also talks to 3.0 peers).
pub const OUR_MAJOR: u8 = 3;
/// See [`OUR_MAJOR`].
pub const OUR_MINOR: u8 = 1;

/// The NULL security mechanism (no authentication).
pub const MECHANISM_NULL: &[u8] = b"NULL";
/// The PLAIN security mechanism (RFC 24: user name and password in clear).
pub const MECHANISM_PLAIN: &[u8] = b"PLAIN";
/// The CURVE security mechanism (RFC 26), with the `curve` feature.
pub const MECHANISM_CURVE: &[u8] = b"CURVE";

/// Whether this build speaks a mechanism.
fn known_mechanism(name: &[u8]) -> bool {
    matches!(name, MECHANISM_NULL | MECHANISM_PLAIN)
        || (cfg!(feature = "curve") && name == MECHANISM_CURVE)
}

/// A parsed greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    pub major: u8,
    pub minor: u8,
    /// Mechanism name, zero padded.
    pub mechanism: [u8; 20],
    pub as_server: bool,
}

/// Why a greeting was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GreetingError {
    /// Fewer than [`GREETING_LEN`] bytes.
    Incomplete,
    /// Not `0xFF ... 0x7F`: not a ZMTP peer (or ZMTP 1.0).
    BadSignature,
    /// A version before 3.0.
    UnsupportedVersion { major: u8, minor: u8 },
    /// A mechanism other than NULL, PLAIN and (with the `curve` feature) CURVE, or not the one we
    /// asked for.
    UnsupportedMechanism,
}

impl Greeting {
    /// Our greeting: version 3.1, NULL, as client.
    pub const fn ours() -> Self {
        Self::ours_with(MECHANISM_NULL)
    }

    /// Our greeting with another mechanism name (at most 20 bytes; longer is cut).
    pub const fn ours_with(name: &[u8]) -> Self {
        let mut mechanism = [0u8; 20];
        let mut i = 0;
        while i < name.len() && i < mechanism.len() {
            mechanism[i] = name[i];
            i += 1;
        }
        Greeting {
            major: OUR_MAJOR,
            minor: OUR_MINOR,
            mechanism,
            as_server: false,
        }
    }

    /// The 64 bytes on the wire.
    pub fn to_bytes(&self) -> [u8; GREETING_LEN] {
        let mut g = [0u8; GREETING_LEN];
        g[0] = 0xFF;
        g[SIGNATURE_END] = 0x7F;
        g[MAJOR] = self.major;
        g[MINOR] = self.minor;
        g[MECHANISM].copy_from_slice(&self.mechanism);
        g[AS_SERVER] = u8::from(self.as_server);
        g
    }

    /// The mechanism name without its zero padding.
    pub fn mechanism_name(&self) -> &[u8] {
        let end = self
            .mechanism
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.mechanism.len());
        &self.mechanism[..end]
    }

    /// The mechanism field of raw greeting bytes without its zero padding, unchecked (empty when
    /// the bytes end before it): what a peer names, for a log line, even a mechanism
    /// [`parse`](Self::parse) refuses.
    pub fn mechanism_in(bytes: &[u8]) -> &[u8] {
        let field = bytes.get(MECHANISM).unwrap_or_default();
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        &field[..end]
    }

    /// Parses and checks a peer's greeting (version 3.x or later, NULL or PLAIN mechanism;
    /// whether it is the one we speak is the connection's check).
    pub fn parse(bytes: &[u8]) -> Result<Self, GreetingError> {
        let g: &[u8; GREETING_LEN] = bytes
            .get(..GREETING_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(GreetingError::Incomplete)?;
        // Only the low bit of the signature's last byte is defined; libzmq checks the same.
        if g[0] != 0xFF || g[SIGNATURE_END] & 1 != 1 {
            return Err(GreetingError::BadSignature);
        }
        let (major, minor) = (g[MAJOR], g[MINOR]);
        if major < 3 {
            return Err(GreetingError::UnsupportedVersion { major, minor });
        }
        let mut mechanism = [0u8; 20];
        mechanism.copy_from_slice(&g[MECHANISM]);
        let greeting = Greeting {
            major,
            minor,
            mechanism,
            as_server: g[AS_SERVER] == 1,
        };
        if !known_mechanism(greeting.mechanism_name()) {
            return Err(GreetingError::UnsupportedMechanism);
        }
        Ok(greeting)
    }

    /// The minor version both sides speak: 1 when the peer speaks 3.1 or later, else 0.
    pub fn negotiated_minor(&self) -> u8 {
        if self.major > 3 {
            OUR_MINOR
        } else {
            self.minor.min(OUR_MINOR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libzmq 4.3.4's greeting, recorded.
    const LIBZMQ: &[u8] = include_bytes!("testdata/libzmq-pub.bin");

    #[test]
    fn ours_exact_bytes() {
        let g = Greeting::ours().to_bytes();
        let mut want = [0u8; 64];
        want[0] = 0xFF;
        want[9] = 0x7F;
        want[10] = 3;
        want[11] = 1;
        want[12..16].copy_from_slice(b"NULL");
        assert_eq!(g, want);
        assert_eq!(Greeting::parse(&g), Ok(Greeting::ours()));
    }

    #[test]
    fn parses_libzmq() {
        let g = Greeting::parse(&LIBZMQ[..64]).unwrap();
        assert_eq!((g.major, g.minor, g.as_server), (3, 1, false));
        assert_eq!(g.mechanism_name(), b"NULL");
        assert_eq!(g.negotiated_minor(), 1);
    }

    #[test]
    fn refuses_bad_greetings() {
        let good = Greeting::ours().to_bytes();
        assert_eq!(Greeting::parse(&good[..63]), Err(GreetingError::Incomplete));
        let mut b = good;
        b[0] = 0;
        assert_eq!(Greeting::parse(&b), Err(GreetingError::BadSignature));
        let mut b = good;
        b[10] = 2;
        assert_eq!(
            Greeting::parse(&b),
            Err(GreetingError::UnsupportedVersion { major: 2, minor: 1 })
        );
        let mut b = good;
        b[12..18].copy_from_slice(b"GSSAPI");
        assert_eq!(
            Greeting::parse(&b),
            Err(GreetingError::UnsupportedMechanism)
        );
        assert_eq!(Greeting::mechanism_in(&b), b"GSSAPI");
        assert_eq!(
            Greeting::mechanism_in(&b[..14]),
            b"",
            "cut before the field's end"
        );
        b[12..18].copy_from_slice(b"PLAIN\0");
        assert_eq!(Greeting::parse(&b).unwrap().mechanism_name(), b"PLAIN");
        b[12..17].copy_from_slice(b"CURVE");
        assert_eq!(Greeting::parse(&b).is_ok(), cfg!(feature = "curve"));
        let mut b = good;
        b[11] = 0;
        assert_eq!(Greeting::parse(&b).unwrap().negotiated_minor(), 0);
        b[10] = 4;
        assert_eq!(Greeting::parse(&b).unwrap().negotiated_minor(), 1);
    }
}
