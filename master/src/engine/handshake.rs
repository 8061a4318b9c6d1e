//! The server side of the ZMTP handshake (RFC 23/37, PLAIN from RFC 24), sans-IO: the engine
//! feeds it the peer's greeting and commands and sends what it writes into `out`.
//!
//! Core's `Connection` is the client side; the server side needs HELLO and INITIATE parsing and
//! a WELCOME encoder, kept here because only the master (std) needs them.

use zerosmq_core::zmtp::command::encode_ready;
use zerosmq_core::zmtp::greeting::{MECHANISM_NULL, MECHANISM_PLAIN};
use zerosmq_core::zmtp::{Command, CommandError, Greeting, GreetingError, Properties, SocketType};

/// WELCOME: a command frame of the 7-byte name alone.
const WELCOME: [u8; 10] = [0x04, 8, 7, b'W', b'E', b'L', b'C', b'O', b'M', b'E'];

/// PLAIN's refusal exactly as libzmq 4.3's PLAIN server sends it: its `"\x05ERROR"` literal
/// reads as `0x5E 'RROR'` in C, and libzmq's PLAIN client only recognises that form (a
/// well-formed ERROR is an "unexpected command" to it). Core's client accepts both.
const PLAIN_REFUSED: [u8; 11] = [0x04, 9, 0x5E, b'R', b'R', b'O', b'R', 3, b'4', b'0', b'0'];

/// The security mechanism a port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mechanism {
    Null,
    Plain,
}

impl Mechanism {
    /// Our greeting: version 3.1, this mechanism, as-server set for PLAIN (RFC 24) and clear
    /// for NULL (as libzmq sends it).
    pub(super) fn greeting(self) -> [u8; 64] {
        let mut g = match self {
            Mechanism::Null => Greeting::ours_with(MECHANISM_NULL),
            Mechanism::Plain => Greeting::ours_with(MECHANISM_PLAIN),
        };
        g.as_server = self == Mechanism::Plain;
        g.to_bytes()
    }

    fn name(self) -> &'static [u8] {
        match self {
            Mechanism::Null => MECHANISM_NULL,
            Mechanism::Plain => MECHANISM_PLAIN,
        }
    }
}

/// Why a handshake failed; the peer is disconnected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HandshakeError {
    Greeting(GreetingError),
    /// The peer's mechanism is not this port's.
    WrongMechanism,
    /// A command that cannot come now, or a message before the handshake ended.
    Unexpected,
    Malformed(CommandError),
    MissingSocketType,
    IncompatiblePeer(SocketType),
    /// PLAIN credentials or the ACL refused; `user` for the log.
    Refused {
        user: String,
    },
    /// The peer sent ERROR.
    PeerError(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Greeting(GreetingError::BadSignature) => {
                f.write_str("not a ZMTP 3 peer (bad greeting signature)")
            }
            HandshakeError::Greeting(e) => write!(f, "greeting refused: {e:?}"),
            HandshakeError::WrongMechanism => f.write_str("peer's security mechanism is not ours"),
            HandshakeError::Unexpected => f.write_str("frame not allowed during the handshake"),
            HandshakeError::Malformed(e) => write!(f, "malformed command: {e:?}"),
            HandshakeError::MissingSocketType => f.write_str("READY has no known Socket-Type"),
            HandshakeError::IncompatiblePeer(t) => {
                write!(f, "peer socket type {} does not match ours", t.as_str())
            }
            HandshakeError::Refused { user } => {
                write!(f, "PLAIN user '{user}' refused (password or ACL)")
            }
            HandshakeError::PeerError(reason) => write!(f, "peer sent ERROR: {reason}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Greeting,
    /// NULL: the peer's READY is due.
    Ready,
    /// PLAIN: HELLO is due, then INITIATE.
    Hello,
    Initiate,
    Open,
}

/// One connection's handshake.
#[derive(Debug, Clone)]
pub(super) struct Handshake {
    ours: SocketType,
    mechanism: Mechanism,
    phase: Phase,
    minor: u8,
    /// The authenticated PLAIN user.
    user: Option<String>,
}

impl Handshake {
    pub(super) fn new(ours: SocketType, mechanism: Mechanism) -> Self {
        Handshake {
            ours,
            mechanism,
            phase: Phase::Greeting,
            minor: 0,
            user: None,
        }
    }

    pub(super) fn wants_greeting(&self) -> bool {
        self.phase == Phase::Greeting
    }

    pub(super) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// The negotiated minor version (0: ZMTP 3.0, 1: 3.1).
    pub(super) fn minor(&self) -> u8 {
        self.minor
    }

    pub(super) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The peer's 64-byte greeting.
    pub(super) fn on_greeting(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        let greeting = Greeting::parse(bytes).map_err(HandshakeError::Greeting)?;
        if greeting.mechanism_name() != self.mechanism.name() {
            return Err(HandshakeError::WrongMechanism);
        }
        self.minor = greeting.negotiated_minor();
        self.phase = match self.mechanism {
            Mechanism::Null => Phase::Ready,
            Mechanism::Plain => Phase::Hello,
        };
        Ok(())
    }

    /// A command during the handshake. `allow(user, password)` checks PLAIN credentials and
    /// the access they need. Returns true when the handshake is complete.
    pub(super) fn on_command(
        &mut self,
        body: &[u8],
        allow: impl FnOnce(&[u8], &[u8]) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, HandshakeError> {
        match (self.phase, body_name(body)) {
            (Phase::Hello, Some(b"HELLO")) => {
                let (user, password) =
                    parse_hello(body).ok_or(HandshakeError::Malformed(CommandError::Truncated))?;
                let user_text = String::from_utf8_lossy(user).into_owned();
                if !allow(user, password) {
                    // The ZAP status code, which libzmq clients report as an authentication
                    // failure (and core's as `AuthFailed { status: 400 }`).
                    out.extend_from_slice(&PLAIN_REFUSED);
                    return Err(HandshakeError::Refused { user: user_text });
                }
                out.extend_from_slice(&WELCOME);
                self.user = Some(user_text);
                self.phase = Phase::Initiate;
                Ok(false)
            }
            (Phase::Initiate, Some(b"INITIATE")) => {
                let props = Properties::parse(&body[1 + 8..]).map_err(HandshakeError::Malformed)?;
                self.check_peer(props, out)
            }
            (_, Some(b"ERROR")) => {
                let reason = match Command::parse(body) {
                    Ok(Command::Error { reason }) => String::from_utf8_lossy(reason).into_owned(),
                    _ => String::new(),
                };
                Err(HandshakeError::PeerError(reason))
            }
            (Phase::Ready, _) => match Command::parse(body).map_err(HandshakeError::Malformed)? {
                Command::Ready(props) => self.check_peer(props, out),
                _ => Err(HandshakeError::Unexpected),
            },
            _ => Err(HandshakeError::Unexpected),
        }
    }

    /// The peer's metadata (READY or INITIATE): checks its socket type, answers READY.
    fn check_peer(
        &mut self,
        props: Properties<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, HandshakeError> {
        let peer = props
            .socket_type()
            .ok_or(HandshakeError::MissingSocketType)?;
        if !self.ours.accepts(peer) {
            // As libzmq: close without a word.
            return Err(HandshakeError::IncompatiblePeer(peer));
        }
        push_encoded(out, |b| encode_ready(self.ours, b"", b));
        self.phase = Phase::Open;
        Ok(true)
    }
}

/// A command's name, when the body holds one.
fn body_name(body: &[u8]) -> Option<&[u8]> {
    let (&len, rest) = body.split_first()?;
    rest.get(..usize::from(len))
}

/// HELLO's body: `5 HELLO user-len user password-len password`.
fn parse_hello(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let data = body.get(1 + 5..)?;
    let (&user_len, rest) = data.split_first()?;
    let user = rest.get(..usize::from(user_len))?;
    let (&password_len, rest) = rest.get(user.len()..)?.split_first()?;
    let password = rest.get(..usize::from(password_len))?;
    Some((user, password))
}

/// Runs a core encoder into the end of `out` (a command frame is at most a few hundred bytes).
pub(super) fn push_encoded(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut [u8]) -> Result<usize, zerosmq_core::zmtp::FrameEncodeError>,
) {
    let mut frame = [0u8; 512];
    if let Ok(n) = encode(&mut frame) {
        out.extend_from_slice(&frame[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerosmq_core::zmtp::command::{encode_hello, encode_initiate};

    fn frame_body(frame: &[u8]) -> &[u8] {
        &frame[2..]
    }

    fn client_greeting(mechanism: &[u8], minor: u8) -> [u8; 64] {
        let mut g = Greeting::ours_with(mechanism);
        g.minor = minor;
        g.to_bytes()
    }

    #[test]
    fn greeting_bytes_match_libzmq() {
        let null = Mechanism::Null.greeting();
        assert_eq!(&null[..12], &[0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1]);
        assert_eq!(&null[12..16], b"NULL");
        assert_eq!(null[32], 0);
        let plain = Mechanism::Plain.greeting();
        assert_eq!(&plain[12..17], b"PLAIN");
        assert_eq!(plain[32], 1);
    }

    #[test]
    fn null_handshake_answers_ready_and_refuses_wrong_types() {
        let mut h = Handshake::new(SocketType::XPub, Mechanism::Null);
        h.on_greeting(&client_greeting(MECHANISM_NULL, 0)).unwrap();
        assert_eq!(h.minor(), 0);
        let mut ready = [0u8; 64];
        let n = encode_ready(SocketType::Sub, b"", &mut ready).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            h.on_command(frame_body(&ready[..n]), |_, _| true, &mut out),
            Ok(true)
        );
        let mut expected = [0u8; 64];
        let m = encode_ready(SocketType::XPub, b"", &mut expected).unwrap();
        assert_eq!(out, &expected[..m]);
        assert!(h.is_open());

        let mut h = Handshake::new(SocketType::XPub, Mechanism::Null);
        h.on_greeting(&client_greeting(MECHANISM_NULL, 1)).unwrap();
        assert_eq!(h.minor(), 1);
        let n = encode_ready(SocketType::Pub, b"", &mut ready).unwrap();
        assert_eq!(
            h.on_command(frame_body(&ready[..n]), |_, _| true, &mut Vec::new()),
            Err(HandshakeError::IncompatiblePeer(SocketType::Pub))
        );
        let mut h = Handshake::new(SocketType::Sub, Mechanism::Plain);
        assert_eq!(
            h.on_greeting(&client_greeting(MECHANISM_NULL, 1)),
            Err(HandshakeError::WrongMechanism)
        );
    }

    #[test]
    fn plain_handshake_checks_credentials() {
        let mut hello = [0u8; 64];
        let n = encode_hello(b"alice", b"pw", &mut hello).unwrap();
        let mut h = Handshake::new(SocketType::Sub, Mechanism::Plain);
        h.on_greeting(&client_greeting(MECHANISM_PLAIN, 1)).unwrap();
        let mut out = Vec::new();
        let ok = h.on_command(
            frame_body(&hello[..n]),
            |u, p| u == b"alice" && p == b"pw",
            &mut out,
        );
        assert_eq!(ok, Ok(false));
        assert_eq!(out, WELCOME);
        assert_eq!(h.user(), Some("alice"));
        let mut initiate = [0u8; 64];
        let m = encode_initiate(SocketType::Pub, b"", &mut initiate).unwrap();
        out.clear();
        assert_eq!(
            h.on_command(frame_body(&initiate[..m]), |_, _| false, &mut out),
            Ok(true)
        );
        assert_eq!(&out[2..8], b"\x05READY");

        let mut h = Handshake::new(SocketType::Sub, Mechanism::Plain);
        h.on_greeting(&client_greeting(MECHANISM_PLAIN, 1)).unwrap();
        out.clear();
        assert_eq!(
            h.on_command(frame_body(&hello[..n]), |_, _| false, &mut out),
            Err(HandshakeError::Refused {
                user: "alice".into()
            })
        );
        // Byte for byte what libzmq 4.3.5's PLAIN server sent when it refused a client.
        let recorded =
            include_bytes!("../../../core/src/zmtp/testdata/libzmq-plain-xpub-refused.bin");
        assert!(recorded.ends_with(&out), "{recorded:02x?}");
        assert_eq!(parse_hello(&[5, b'H']), None);
    }

    /// Any command body in any phase: a result, never a panic.
    #[test]
    fn arbitrary_commands_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let names: [&[u8]; 5] = [
            b"\x05HELLO",
            b"\x08INITIATE",
            b"\x05READY",
            b"\x05ERROR",
            b"",
        ];
        for round in 0..20_000u32 {
            let mechanism = if round % 2 == 0 {
                Mechanism::Null
            } else {
                Mechanism::Plain
            };
            let mut h = Handshake::new(SocketType::XPub, mechanism);
            let name = if mechanism == Mechanism::Plain {
                MECHANISM_PLAIN
            } else {
                MECHANISM_NULL
            };
            h.on_greeting(&client_greeting(name, 1)).unwrap();
            let mut body = names[round as usize % names.len()].to_vec();
            for _ in 0..(round % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                body.push((state >> 24) as u8 % 16);
            }
            let mut out = Vec::new();
            let _ = h.on_command(&body, |_, _| round % 3 == 0, &mut out);
            let _ = h.on_command(&body, |_, _| true, &mut out);
        }
    }
}
