//! Command frames (RFC 23/37): `name-size name data`, and the commands this subset speaks:
//! READY (properties), ERROR, SUBSCRIBE / CANCEL (3.1), PING / PONG (3.1 heartbeats), and the
//! PLAIN client's HELLO / WELCOME / INITIATE (RFC 24).

use super::frame::FrameHeader;
use super::FrameEncodeError;

/// ZeroMQ socket types, as named in READY's `Socket-Type` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Req,
    Rep,
    Dealer,
    Router,
    Pub,
    XPub,
    Sub,
    XSub,
    Push,
    Pull,
    Pair,
}

impl SocketType {
    const ALL: [SocketType; 11] = [
        SocketType::Req,
        SocketType::Rep,
        SocketType::Dealer,
        SocketType::Router,
        SocketType::Pub,
        SocketType::XPub,
        SocketType::Sub,
        SocketType::XSub,
        SocketType::Push,
        SocketType::Pull,
        SocketType::Pair,
    ];

    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
            SocketType::Pub => "PUB",
            SocketType::XPub => "XPUB",
            SocketType::Sub => "SUB",
            SocketType::XSub => "XSUB",
            SocketType::Push => "PUSH",
            SocketType::Pull => "PULL",
            SocketType::Pair => "PAIR",
        }
    }

    /// Parses a wire name (exact, as libzmq compares).
    pub fn parse(name: &[u8]) -> Option<SocketType> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == name)
    }

    /// Whether a socket of this type may talk to a peer of `peer` type (RFC 23's table).
    pub const fn accepts(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Req, Rep | Router)
                | (Rep, Req | Dealer)
                | (Dealer, Rep | Dealer | Router)
                | (Router, Req | Dealer | Router)
                | (Pub | XPub, Sub | XSub)
                | (Sub | XSub, Pub | XPub)
                | (Push, Pull)
                | (Pull, Push)
                | (Pair, Pair)
        )
    }
}

/// Why a command body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The body ends inside the name or a property.
    Truncated,
    /// A PING context longer than 16 bytes.
    PingContextTooLong,
}

/// Property names this codec knows.
pub const PROP_SOCKET_TYPE: &[u8] = b"Socket-Type";
/// See [`PROP_SOCKET_TYPE`].
pub const PROP_IDENTITY: &[u8] = b"Identity";

/// Longest PING context (RFC 37).
pub const MAX_PING_CONTEXT: usize = 16;

/// A parsed command; every slice borrows the frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// Handshake metadata.
    Ready(Properties<'a>),
    /// The peer refuses the connection; `reason` is text for humans (a ZAP status code such as
    /// `400` when a PLAIN server refuses the credentials).
    Error { reason: &'a [u8] },
    /// PLAIN: the server accepted HELLO's credentials.
    Welcome,
    /// ZMTP 3.1 subscription.
    Subscribe(&'a [u8]),
    /// ZMTP 3.1 unsubscription.
    Cancel(&'a [u8]),
    /// Heartbeat; must be answered with PONG carrying `context`.
    Ping {
        ttl_deciseconds: u16,
        context: &'a [u8],
    },
    /// Heartbeat answer.
    Pong { context: &'a [u8] },
    /// A command this codec does not know (ignored by RFC 37's rules).
    Unknown { name: &'a [u8], data: &'a [u8] },
}

impl<'a> Command<'a> {
    /// Parses a command frame's body. Never panics.
    pub fn parse(body: &'a [u8]) -> Result<Self, CommandError> {
        let (&name_len, rest) = body.split_first().ok_or(CommandError::Truncated)?;
        let name = rest
            .get(..usize::from(name_len))
            .ok_or(CommandError::Truncated)?;
        let data = &rest[name.len()..];
        Ok(match name {
            b"READY" => Command::Ready(Properties::parse(data)?),
            b"ERROR" => {
                let (&len, rest) = data.split_first().ok_or(CommandError::Truncated)?;
                let reason = rest
                    .get(..usize::from(len))
                    .ok_or(CommandError::Truncated)?;
                Command::Error { reason }
            }
            b"WELCOME" => Command::Welcome,
            b"SUBSCRIBE" => Command::Subscribe(data),
            b"CANCEL" => Command::Cancel(data),
            b"PING" => {
                let (ttl, context) = data
                    .split_first_chunk::<2>()
                    .ok_or(CommandError::Truncated)?;
                if context.len() > MAX_PING_CONTEXT {
                    return Err(CommandError::PingContextTooLong);
                }
                Command::Ping {
                    ttl_deciseconds: u16::from_be_bytes(*ttl),
                    context,
                }
            }
            b"PONG" => Command::Pong { context: data },
            _ => Command::Unknown { name, data },
        })
    }
}

/// READY's metadata: `name-len name value-len(4, BE) value` repeated; validated when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Properties<'a>(&'a [u8]);

impl<'a> Properties<'a> {
    /// Checks that `data` is a well-formed property list.
    pub fn parse(data: &'a [u8]) -> Result<Self, CommandError> {
        let mut rest = data;
        while !rest.is_empty() {
            let (_, _, tail) = split_property(rest).ok_or(CommandError::Truncated)?;
            rest = tail;
        }
        Ok(Properties(data))
    }

    /// Iterates over `(name, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            let (name, value, tail) = split_property(rest)?;
            rest = tail;
            Some((name, value))
        })
    }

    /// The value of a property; names compare case-insensitively (RFC 23).
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The peer's socket type, when present and known.
    pub fn socket_type(&self) -> Option<SocketType> {
        self.get(PROP_SOCKET_TYPE).and_then(SocketType::parse)
    }
}

fn split_property(bytes: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (&name_len, rest) = bytes.split_first()?;
    let name = rest.get(..usize::from(name_len))?;
    let rest = &rest[name.len()..];
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let value_len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let value = rest.get(..value_len)?;
    Some((name, value, &rest[value_len..]))
}

/// Writes a whole command frame (header, name, `parts` concatenated) into `buf`; returns the
/// bytes used.
fn encode_command(name: &[u8], parts: &[&[u8]], buf: &mut [u8]) -> Result<usize, FrameEncodeError> {
    let name_len = u8::try_from(name.len()).map_err(|_| FrameEncodeError::BufferTooSmall)?;
    let body_len = parts
        .iter()
        .try_fold(1 + name.len(), |n, p| n.checked_add(p.len()))
        .ok_or(FrameEncodeError::BufferTooSmall)?;
    let mut at = FrameHeader::command(body_len).encode(buf)?;
    for part in [&[name_len][..], name].iter().chain(parts) {
        let end = at + part.len();
        buf.get_mut(at..end)
            .ok_or(FrameEncodeError::BufferTooSmall)?
            .copy_from_slice(part);
        at = end;
    }
    Ok(at)
}

/// READY with `Socket-Type`, plus an `Identity` (empty by default) for REQ, DEALER and ROUTER
/// as libzmq sends it.
pub fn encode_ready(
    socket_type: SocketType,
    identity: &[u8],
    buf: &mut [u8],
) -> Result<usize, FrameEncodeError> {
    encode_metadata(b"READY", socket_type, identity, buf)
}

/// PLAIN's INITIATE: the same metadata as READY (RFC 24).
pub fn encode_initiate(
    socket_type: SocketType,
    identity: &[u8],
    buf: &mut [u8],
) -> Result<usize, FrameEncodeError> {
    encode_metadata(b"INITIATE", socket_type, identity, buf)
}

/// PLAIN's WELCOME (the server's answer to an accepted HELLO).
pub fn encode_welcome(buf: &mut [u8]) -> Result<usize, FrameEncodeError> {
    encode_command(b"WELCOME", &[], buf)
}

/// PLAIN's HELLO: user name and password as short strings (at most 255 bytes each, else
/// [`FrameEncodeError::BufferTooSmall`]).
pub fn encode_hello(
    user: &[u8],
    password: &[u8],
    buf: &mut [u8],
) -> Result<usize, FrameEncodeError> {
    let user_len = u8::try_from(user.len()).map_err(|_| FrameEncodeError::BufferTooSmall)?;
    let password_len =
        u8::try_from(password.len()).map_err(|_| FrameEncodeError::BufferTooSmall)?;
    encode_command(
        b"HELLO",
        &[&[user_len], user, &[password_len], password],
        buf,
    )
}

fn encode_metadata(
    name: &[u8],
    socket_type: SocketType,
    identity: &[u8],
    buf: &mut [u8],
) -> Result<usize, FrameEncodeError> {
    let st = socket_type.as_str().as_bytes();
    let st_len = (st.len() as u32).to_be_bytes();
    let id_len = u32::try_from(identity.len())
        .map_err(|_| FrameEncodeError::BufferTooSmall)?
        .to_be_bytes();
    let with_identity = matches!(
        socket_type,
        SocketType::Req | SocketType::Dealer | SocketType::Router
    );
    let st_name = [PROP_SOCKET_TYPE.len() as u8];
    let id_name = [PROP_IDENTITY.len() as u8];
    let base: [&[u8]; 4] = [&st_name, PROP_SOCKET_TYPE, &st_len, st];
    if with_identity {
        let parts: [&[u8]; 8] = [
            base[0],
            base[1],
            base[2],
            base[3],
            &id_name,
            PROP_IDENTITY,
            &id_len,
            identity,
        ];
        encode_command(name, &parts, buf)
    } else {
        encode_command(name, &base, buf)
    }
}

/// ERROR with a reason (cut to 255 bytes).
pub fn encode_error(reason: &[u8], buf: &mut [u8]) -> Result<usize, FrameEncodeError> {
    let reason = reason.get(..255).unwrap_or(reason);
    encode_command(b"ERROR", &[&[reason.len() as u8], reason], buf)
}

/// ZMTP 3.1 SUBSCRIBE.
pub fn encode_subscribe(prefix: &[u8], buf: &mut [u8]) -> Result<usize, FrameEncodeError> {
    encode_command(b"SUBSCRIBE", &[prefix], buf)
}

/// ZMTP 3.1 CANCEL.
pub fn encode_cancel(prefix: &[u8], buf: &mut [u8]) -> Result<usize, FrameEncodeError> {
    encode_command(b"CANCEL", &[prefix], buf)
}

/// PING with a TTL in tenths of a second and a context (at most 16 bytes).
pub fn encode_ping(
    ttl_deciseconds: u16,
    context: &[u8],
    buf: &mut [u8],
) -> Result<usize, FrameEncodeError> {
    if context.len() > MAX_PING_CONTEXT {
        return Err(FrameEncodeError::BufferTooSmall);
    }
    encode_command(b"PING", &[&ttl_deciseconds.to_be_bytes(), context], buf)
}

/// PONG echoing a PING's context.
pub fn encode_pong(context: &[u8], buf: &mut [u8]) -> Result<usize, FrameEncodeError> {
    encode_command(b"PONG", &[context], buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut [u8]) -> Result<usize, FrameEncodeError>) -> ([u8; 64], usize) {
        let mut b = [0u8; 64];
        let n = f(&mut b).unwrap();
        (b, n)
    }

    #[test]
    fn ready_exact_bytes_match_libzmq() {
        // libzmq 4.3.4 SUB's READY, recorded (bytes 64..91 of its stream).
        let recorded = &include_bytes!("testdata/libzmq-sub-v31.bin")[64..91];
        let (b, n) = enc(|b| encode_ready(SocketType::Sub, b"", b));
        assert_eq!(&b[..n], recorded);
        // libzmq REQ adds an empty Identity.
        let recorded = &include_bytes!("testdata/libzmq-req.bin")[64..104];
        let (b, n) = enc(|b| encode_ready(SocketType::Req, b"", b));
        assert_eq!(&b[..n], recorded);
    }

    #[test]
    fn other_commands_exact_bytes() {
        let (b, n) = enc(|b| encode_subscribe(b"imu", b));
        assert_eq!(&b[..n], b"\x04\x0d\x09SUBSCRIBEimu");
        let (b, n) = enc(|b| encode_cancel(b"imu", b));
        assert_eq!(&b[..n], b"\x04\x0a\x06CANCELimu");
        let (b, n) = enc(|b| encode_ping(100, b"ab", b));
        assert_eq!(&b[..n], b"\x04\x09\x04PING\x00\x64ab");
        let (b, n) = enc(|b| encode_pong(b"ab", b));
        assert_eq!(&b[..n], b"\x04\x07\x04PONGab");
        let (b, n) = enc(|b| encode_hello(b"u", b"pw", b));
        assert_eq!(&b[..n], b"\x04\x0b\x05HELLO\x01u\x02pw");
        let (b, n) = enc(|b| encode_initiate(SocketType::Sub, b"", b));
        assert_eq!(
            &b[..n],
            b"\x04\x1c\x08INITIATE\x0bSocket-Type\x00\x00\x00\x03SUB"
        );
        assert_eq!(
            encode_hello(&[b'u'; 256], b"", &mut [0u8; 600]),
            Err(FrameEncodeError::BufferTooSmall)
        );
        assert_eq!(Command::parse(b"\x07WELCOME"), Ok(Command::Welcome));
        let (b, n) = enc(|b| encode_error(b"no", b));
        assert_eq!(&b[..n], b"\x04\x09\x05ERROR\x02no");
        let mut small = [0u8; 8];
        assert_eq!(
            encode_subscribe(b"imu", &mut small),
            Err(FrameEncodeError::BufferTooSmall)
        );
    }

    #[test]
    fn parse_commands() {
        let ready = &include_bytes!("testdata/libzmq-req.bin")[66..104];
        let Ok(Command::Ready(p)) = Command::parse(ready) else {
            panic!("not READY")
        };
        assert_eq!(p.socket_type(), Some(SocketType::Req));
        assert_eq!(p.get(b"identity"), Some(&b""[..]));
        assert_eq!(p.iter().count(), 2);
        assert_eq!(
            Command::parse(b"\x09SUBSCRIBEimu"),
            Ok(Command::Subscribe(b"imu"))
        );
        assert_eq!(Command::parse(b"\x06CANCEL"), Ok(Command::Cancel(b"")));
        assert_eq!(
            Command::parse(b"\x04PING\x00\x0ax"),
            Ok(Command::Ping {
                ttl_deciseconds: 10,
                context: b"x"
            })
        );
        assert_eq!(
            Command::parse(b"\x04PONG"),
            Ok(Command::Pong { context: b"" })
        );
        assert_eq!(
            Command::parse(b"\x05ERROR\x03bad"),
            Ok(Command::Error { reason: b"bad" })
        );
        assert_eq!(
            Command::parse(b"\x03FOOx"),
            Ok(Command::Unknown {
                name: b"FOO",
                data: b"x"
            })
        );
    }

    #[test]
    fn parse_refuses_truncation() {
        for bad in [
            &b""[..],
            b"\x05REA",
            b"\x05READY\x0bSocket",
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x04PUB",
            b"\x05READY\x01",
            b"\x05ERROR",
            b"\x05ERROR\x04bad",
            b"\x04PING\x00",
        ] {
            assert_eq!(Command::parse(bad), Err(CommandError::Truncated), "{bad:?}");
        }
        assert_eq!(
            Command::parse(b"\x04PING\x00\x01abcdefghijklmnopq"),
            Err(CommandError::PingContextTooLong)
        );
    }

    #[test]
    fn socket_type_table() {
        assert!(SocketType::Sub.accepts(SocketType::XPub));
        assert!(SocketType::Pub.accepts(SocketType::Sub));
        assert!(SocketType::Req.accepts(SocketType::Rep));
        assert!(!SocketType::Req.accepts(SocketType::Pub));
        assert!(!SocketType::Sub.accepts(SocketType::Sub));
        for t in SocketType::ALL {
            assert_eq!(SocketType::parse(t.as_str().as_bytes()), Some(t));
        }
        assert_eq!(SocketType::parse(b"sub"), None);
    }
}
