//! A data connection's ZMTP session on core's [`Connection`] (NULL, PLAIN and CURVE, server
//! side), and who it admits: PLAIN passwords, CURVE client keys and the ACL, checked in the
//! handshake of every data connection (what the ZAP handler does for libzmq sockets).
//!
//! The engine splits the stream itself (`zmtp::stream::next_unit`) and hands whole units over.
//! With NULL and PLAIN, core's `Connection` runs the handshake and the engine forwards the
//! frames of an open connection as they came (one copy, no per-message work here). With CURVE
//! every frame is a box: [`Handshake::open_frame`] opens it in place and assembles a message's
//! parts as plain frames, and [`Handshake::push_message`] boxes them again for each subscriber.

use rand_core::OsRng;
use tracing::warn;
use zerosmq_core::zmtp::curve::{CurveKeyPair, KEY_LEN};
use zerosmq_core::zmtp::{
    Connection, Event, FrameEncodeError, FrameHeader, Greeting, GreetingError, HeaderError,
    SocketType, ZmtpError,
};

use super::outbox::Outbox;
use crate::auth::{Access, Acl, Passwords, Security};
use crate::keys::{key_text, ClientKeys};

/// Who may connect to the data ports, from the master's security settings.
pub(crate) struct Auth {
    passwords: Option<Passwords>,
    curve: Option<(CurveKeyPair, Option<ClientKeys>)>,
    acl: Option<Acl>,
}

impl Auth {
    /// `None` when the data ports speak NULL (the ACL then applies to grants only).
    pub(crate) fn new(security: &Security) -> Option<Auth> {
        let curve = security
            .curve
            .as_ref()
            .map(|c| (c.keys.clone(), c.clients.clone()));
        if curve.is_none() && security.passwords.is_none() {
            return None;
        }
        Some(Auth {
            passwords: security.passwords.clone(),
            curve,
            acl: security.acl.clone(),
        })
    }

    /// The ACL's word on an authenticated principal, for a data port (`scope`: its topic and
    /// access); the control port (`None`) checks the ACL per request instead.
    fn check_acl(&self, who: &str, scope: Scope<'_>) -> Result<(), &'static str> {
        match (&self.acl, scope) {
            (Some(acl), Some((topic, access))) if !acl.allows(who, topic, access) => {
                Err("not allowed by the ACL")
            }
            _ => Ok(()),
        }
    }

    fn admit_plain(
        &self,
        user: &[u8],
        password: &[u8],
        scope: Scope<'_>,
    ) -> Result<String, &'static str> {
        let user = self
            .passwords
            .as_ref()
            .and_then(|p| p.check(user, password))
            .ok_or("wrong user name or password")?;
        self.check_acl(user, scope)?;
        Ok(user.to_owned())
    }

    /// The admitted client's name: its key file's with `--curve-clients`, none without.
    fn admit_curve(
        &self,
        key: &[u8; KEY_LEN],
        scope: Scope<'_>,
    ) -> Result<Option<String>, &'static str> {
        let Some((_, Some(clients))) = &self.curve else {
            // Anyone who knows the server key; the ACL's rules for everyone still apply.
            self.check_acl("", scope)?;
            return Ok(None);
        };
        let name = clients.name(key).ok_or("key not in --curve-clients")?;
        self.check_acl(name, scope)?;
        Ok(Some(name.to_owned()))
    }
}

/// What a connection is admitted to: a data port's topic and access, or (`None`) the control
/// port, whose requests the ACL checks one by one.
pub(crate) type Scope<'a> = Option<(&'a str, Access)>;

/// Why a session failed; the peer is disconnected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    Zmtp(ZmtpError),
    /// PLAIN credentials, a CURVE key or the ACL refused; `who` and `why` for the log.
    Refused {
        who: String,
        why: &'static str,
    },
    /// The peer's greeting names another mechanism than this port's.
    Mechanism {
        theirs: String,
        ours: &'static str,
    },
    /// A message before the handshake ended.
    Unexpected,
    /// A CURVE message of more parts than the engine buffers for one message.
    TooLarge {
        max: usize,
    },
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Zmtp(e) => e.fmt(f),
            HandshakeError::Refused { who, why } => write!(f, "{who} refused: {why}"),
            HandshakeError::Mechanism { theirs, ours } => {
                write!(f, "peer speaks {theirs}, this port speaks {ours}")
            }
            HandshakeError::Unexpected => f.write_str("frame not allowed during the handshake"),
            HandshakeError::TooLarge { max } => {
                write!(f, "multipart message over the {max}-byte limit")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<ZmtpError> for HandshakeError {
    fn from(e: ZmtpError) -> Self {
        HandshakeError::Zmtp(e)
    }
}

/// What a CURVE box held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// Nothing for the engine (a PONG is queued by [`Handshake::transmit`]).
    Nothing,
    /// A message's last part arrived: [`Handshake::message`] holds it as plain frames.
    Message,
    /// A subscription (`true`) or cancellation of `frame[start..start + len]`.
    Subscription {
        subscribe: bool,
        start: usize,
        len: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Null,
    Plain,
    Curve,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Null => "NULL",
            Mechanism::Plain => "PLAIN",
            Mechanism::Curve => "CURVE",
        }
    }
}

/// One connection's ZMTP session.
pub(crate) struct Handshake {
    zmtp: Connection<'static>,
    greeted: bool,
    mechanism: Mechanism,
    /// `mechanism == Curve`, for the per-message test.
    curve: bool,
    /// The PLAIN user or the CURVE client's key file name.
    user: Option<String>,
    /// CURVE: the message being assembled, as plain frames (header and body per part).
    message: Vec<u8>,
}

impl Handshake {
    pub(crate) fn new(ours: SocketType, auth: Option<&Auth>) -> Self {
        let (zmtp, mechanism) = match auth {
            Some(Auth {
                curve: Some((keys, _)),
                ..
            }) => (
                Connection::curve_server(ours, keys.clone(), &mut OsRng),
                Mechanism::Curve,
            ),
            Some(Auth {
                passwords: Some(_), ..
            }) => (Connection::plain_server(ours), Mechanism::Plain),
            _ => (Connection::new(ours), Mechanism::Null),
        };
        Handshake {
            zmtp,
            greeted: false,
            mechanism,
            curve: mechanism == Mechanism::Curve,
            user: None,
            message: Vec::new(),
        }
    }

    pub(crate) fn wants_greeting(&self) -> bool {
        !self.greeted
    }

    pub(crate) fn is_open(&self) -> bool {
        self.zmtp.is_open()
    }

    /// Every frame goes through [`open_frame`](Self::open_frame), also once open.
    pub(crate) fn is_curve(&self) -> bool {
        self.curve
    }

    /// The negotiated minor version (0: ZMTP 3.0, 1: 3.1).
    pub(crate) fn minor(&self) -> u8 {
        self.zmtp.minor()
    }

    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Why a peer that closed in the middle of its greeting probably did: a libzmq peer
    /// closes there when our greeting names another mechanism than its own.
    pub(crate) fn closed_in_greeting(&self) -> &'static str {
        match self.mechanism {
            Mechanism::Null => "peer closed the connection in its greeting (this port speaks NULL: a PLAIN or CURVE peer leaves so)",
            Mechanism::Plain => "peer closed the connection in its greeting (this port speaks PLAIN: a NULL or CURVE peer leaves so)",
            Mechanism::Curve => "peer closed the connection in its greeting (this port speaks CURVE: a NULL or PLAIN peer, or one without CURVE, leaves so)",
        }
    }

    /// Queues what the session has to send (greeting, handshake commands, a boxed PONG).
    /// Returns whether it queued anything.
    pub(crate) fn transmit(&mut self, out: &mut Vec<u8>) -> bool {
        let mut sent = false;
        while self.zmtp.wants_transmit() {
            let queued = push_with(out, 512, |tx| {
                self.zmtp.poll_transmit(tx).map(|n| n.unwrap_or(0))
            });
            if !queued {
                break;
            }
            sent = true;
        }
        sent
    }

    /// The peer's 64-byte greeting.
    pub(crate) fn on_greeting(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        self.greeted = true;
        match self.zmtp.on_greeting_bytes(bytes) {
            // Whether a libzmq peer of another mechanism closes before or after its whole
            // greeting is a race: both ends are logged naming the two mechanisms.
            Err(ZmtpError::Greeting(GreetingError::UnsupportedMechanism)) => {
                Err(HandshakeError::Mechanism {
                    theirs: mechanism_in(bytes),
                    ours: self.mechanism.name(),
                })
            }
            other => Ok(other?),
        }
    }

    /// A whole frame (header and body) during the handshake, or any frame with CURVE, with
    /// admission decided for `topic` and `access` when the peer's credentials arrived. Returns
    /// what a CURVE box held, and whether the handshake just completed.
    pub(super) fn on_frame(
        &mut self,
        frame: &mut [u8],
        auth: Option<&Auth>,
        topic: &str,
        access: Access,
        max_message: usize,
    ) -> Result<(Opened, bool), HandshakeError> {
        self.on_scoped_frame(frame, auth, Some((topic, access)), max_message)
    }

    /// [`on_frame`](Self::on_frame) for the control port: admission checks credentials and
    /// keys only (the ACL applies to each request).
    pub(crate) fn on_control_frame(
        &mut self,
        frame: &mut [u8],
        auth: Option<&Auth>,
        max_message: usize,
    ) -> Result<(Opened, bool), HandshakeError> {
        self.on_scoped_frame(frame, auth, None, max_message)
    }

    fn on_scoped_frame(
        &mut self,
        frame: &mut [u8],
        auth: Option<&Auth>,
        scope: Scope<'_>,
        max_message: usize,
    ) -> Result<(Opened, bool), HandshakeError> {
        let (header, header_len) = FrameHeader::parse(frame).map_err(|e| match e {
            HeaderError::Incomplete { .. } => ZmtpError::UnexpectedFrame,
            e => ZmtpError::Header(e),
        })?;
        let body = frame
            .get_mut(header_len..)
            .ok_or(ZmtpError::UnexpectedFrame)?;
        let was_open = self.zmtp.is_open();
        let event = self.zmtp.on_frame_bytes(header, body)?;
        if self.zmtp.awaits_admission() {
            self.admit(body, auth, scope)?;
            return Ok((Opened::Nothing, self.zmtp.is_open()));
        }
        let opened = match event {
            Some(Event::Ready { .. }) => return Ok((Opened::Nothing, true)),
            _ if !was_open => Opened::Nothing,
            Some(Event::Message { len, more }) => {
                let part = FrameHeader::message(len, more).to_bytes();
                if self.message.len() + len + part.1 > max_message {
                    return Err(HandshakeError::TooLarge { max: max_message });
                }
                self.message.extend_from_slice(&part.0[..part.1]);
                self.message.extend_from_slice(&body[..len]);
                if more {
                    Opened::Nothing
                } else {
                    Opened::Message
                }
            }
            Some(Event::Subscribe { start, len }) => Opened::Subscription {
                subscribe: true,
                start: start + header_len,
                len,
            },
            Some(Event::Cancel { start, len }) => Opened::Subscription {
                subscribe: false,
                start: start + header_len,
                len,
            },
            None => Opened::Nothing,
        };
        Ok((opened, false))
    }

    /// The peer's credentials arrived: admit or refuse them.
    fn admit(
        &mut self,
        body: &[u8],
        auth: Option<&Auth>,
        scope: Scope<'_>,
    ) -> Result<(), HandshakeError> {
        let refused = |who: String, why| HandshakeError::Refused { who, why };
        if let Some(key) = self.zmtp.curve_client_key().copied() {
            let decision = auth.map_or(Err("no CURVE keys"), |a| a.admit_curve(&key, scope));
            let who = || format!("CURVE client {}", key_text(&key));
            return match decision {
                Ok(name) => {
                    self.zmtp.admit(true)?;
                    self.user = name;
                    Ok(())
                }
                Err(why) => {
                    let who = match auth.and_then(|a| a.curve.as_ref()?.1.as_ref()?.name(&key)) {
                        Some(name) => format!("CURVE client '{name}'"),
                        None => who(),
                    };
                    // Queues ERROR 400, as libzmq's ZAP refusal.
                    let _ = self.zmtp.admit(false);
                    Err(refused(who, why))
                }
            };
        }
        let Some((user, password)) = self.zmtp.plain_credentials(body) else {
            return Err(ZmtpError::UnexpectedFrame.into());
        };
        let decision = auth.map_or(Err("no passwords"), |a| {
            a.admit_plain(user, password, scope)
        });
        match decision {
            Ok(user) => {
                self.zmtp.admit_plain(true)?;
                self.user = Some(user);
                Ok(())
            }
            Err(why) => {
                let who = format!("PLAIN user '{}'", String::from_utf8_lossy(user));
                let _ = self.zmtp.admit_plain(false);
                Err(refused(who, why))
            }
        }
    }

    /// CURVE publishers: the message [`on_frame`](Self::on_frame) assembled, as plain frames,
    /// taken (the caller gives the buffer back with [`recycle`](Self::recycle)).
    pub(crate) fn take_message(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.message)
    }

    pub(crate) fn recycle(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if buf.capacity() <= super::READ_LEN * 4 {
            self.message = buf;
        }
    }

    /// Queues a message given as plain frames: as they are, or boxed part by part with CURVE.
    pub(super) fn push_message(&mut self, wire: &[u8], outbox: &mut Outbox) {
        if !self.curve {
            return outbox.push_message(wire);
        }
        self.box_message(wire, outbox.control_buf());
        outbox.end_message();
    }

    /// CURVE: `wire` (a message as plain frames) boxed part by part, at the end of `out`.
    pub(crate) fn box_message(&mut self, wire: &[u8], out: &mut Vec<u8>) {
        let mut rest = wire;
        while let Ok((header, header_len)) = FrameHeader::parse(rest) {
            let Some(body) = usize::try_from(header.len)
                .ok()
                .and_then(|len| rest.get(header_len..header_len + len))
            else {
                break;
            };
            let need = self.zmtp.message_wire_len(body.len());
            let zmtp = &mut self.zmtp;
            push_with(out, need, |tx| zmtp.write_message(&[body], header.more, tx));
            rest = &rest[header_len + body.len()..];
        }
    }

    /// Our SUBSCRIBE (or the 3.0 message form), boxed with CURVE.
    pub(super) fn push_subscribe(&mut self, prefix: &[u8], out: &mut Vec<u8>) {
        let need = self.zmtp.message_wire_len(prefix.len() + 16);
        let zmtp = &mut self.zmtp;
        if !push_with(out, need, |tx| zmtp.write_subscribe(prefix, tx)) {
            warn!("subscription too long to encode");
        }
    }

    /// A heartbeat PING, boxed with CURVE.
    pub(crate) fn push_ping(&mut self, out: &mut Vec<u8>) {
        let zmtp = &mut self.zmtp;
        push_with(out, 128, |tx| zmtp.write_ping(tx));
    }
}

/// Runs an encoder into the end of `out` with `room` bytes; returns whether it wrote anything.
fn push_with(
    out: &mut Vec<u8>,
    room: usize,
    encode: impl FnOnce(&mut [u8]) -> Result<usize, FrameEncodeError>,
) -> bool {
    let at = out.len();
    out.resize(at + room, 0);
    let n = encode(&mut out[at..]).unwrap_or(0);
    out.truncate(at + n);
    n > 0
}

/// Runs a core encoder into the end of `out` (a command frame is at most a few hundred bytes).
pub(super) fn push_encoded(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut [u8]) -> Result<usize, FrameEncodeError>,
) {
    push_with(out, 512, encode);
}

/// The mechanism a greeting names, printable for a log line.
fn mechanism_in(greeting: &[u8]) -> String {
    Greeting::mechanism_in(greeting)
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerosmq_core::zmtp::stream::{next_unit, Unit};
    use zerosmq_core::zmtp::{PlainCredentials, GREETING_LEN};

    /// Our side's outcome for each unit: (what a box held, whether the handshake completed).
    type Seen = Vec<Result<(Opened, bool), HandshakeError>>;

    /// Feeds `bytes` from a client to the master's session unit by unit, as the engine does.
    fn to_master(h: &mut Handshake, auth: Option<&Auth>, access: Access, bytes: &[u8]) -> Seen {
        let mut buf = bytes.to_vec();
        let mut at = 0;
        let mut seen = Vec::new();
        while at < buf.len() {
            match next_unit(&buf[at..], h.wants_greeting(), 1 << 20, 1 << 20).unwrap() {
                Unit::Greeting => {
                    h.on_greeting(&buf[at..at + GREETING_LEN]).unwrap();
                    at += GREETING_LEN;
                }
                Unit::Command { end, .. } => {
                    seen.push(h.on_frame(&mut buf[at..at + end], auth, "t", access, 1 << 20));
                    at += end;
                }
                Unit::Message { wire, .. } => {
                    let frame = &mut buf[at + wire.start..at + wire.end];
                    seen.push(h.on_frame(frame, auth, "t", access, 1 << 20));
                    at += wire.end;
                }
                other => panic!("{other:?}"),
            }
        }
        seen
    }

    /// Feeds the master's output to core's client; returns its events.
    fn to_client(c: &mut Connection, bytes: &[u8]) -> Vec<Result<Option<Event>, ZmtpError>> {
        let mut rx = vec![0u8; 4096];
        let mut input = bytes;
        let mut events = Vec::new();
        while !input.is_empty() {
            let dst = c.read_buffer(&mut rx);
            let n = dst.len().min(input.len());
            dst[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            match c.commit_in_place(n, &mut rx) {
                Ok(None) => {}
                other => events.push(other),
            }
        }
        events
    }

    fn client_bytes(c: &mut Connection) -> Vec<u8> {
        let mut out = Vec::new();
        let mut tx = [0u8; 1024];
        while let Some(n) = c.poll_transmit(&mut tx).unwrap() {
            out.extend_from_slice(&tx[..n]);
        }
        out
    }

    fn curve_auth(clients: Option<ClientKeys>, acl: Option<&str>) -> (Auth, CurveKeyPair) {
        let keys = CurveKeyPair::generate(&mut OsRng);
        let auth = Auth {
            passwords: None,
            curve: Some((keys.clone(), clients)),
            acl: acl.map(|a| Acl::parse(a).unwrap()),
        };
        (auth, keys)
    }

    /// Runs a CURVE handshake of core's client (`client_keys`) with the master's session.
    fn curve_pair(
        auth: &Auth,
        server: &CurveKeyPair,
        client_keys: CurveKeyPair,
        ours: SocketType,
        theirs: SocketType,
        access: Access,
    ) -> (Handshake, Connection<'static>, Result<(), HandshakeError>) {
        let mut h = Handshake::new(ours, Some(auth));
        let mut c = Connection::curve_client(theirs, *server.public(), client_keys, &mut OsRng);
        let mut result = Ok(());
        for _ in 0..4 {
            let mut out = Vec::new();
            h.transmit(&mut out);
            to_client(&mut c, &out);
            for r in to_master(&mut h, Some(auth), access, &client_bytes(&mut c)) {
                if let Err(e) = r {
                    result = Err(e);
                }
            }
        }
        let mut out = Vec::new();
        h.transmit(&mut out);
        let last = to_client(&mut c, &out);
        if result.is_ok() {
            assert!(h.is_open() && c.is_open(), "{last:?}");
        }
        (h, c, result)
    }

    #[test]
    fn a_greeting_of_another_mechanism_names_both() {
        let (auth, _) = curve_auth(None, None);
        let mut h = Handshake::new(SocketType::XPub, Some(&auth));
        let greeting = client_bytes(&mut Connection::new(SocketType::Sub));
        let err = h.on_greeting(&greeting[..GREETING_LEN]).unwrap_err();
        assert_eq!(err.to_string(), "peer speaks NULL, this port speaks CURVE");
        let mut h = Handshake::new(SocketType::XPub, None);
        let mut odd = greeting[..GREETING_LEN].to_vec();
        odd[12..32].copy_from_slice(b"CURVE\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        let err = h.on_greeting(&odd).unwrap_err();
        assert_eq!(err.to_string(), "peer speaks CURVE, this port speaks NULL");
    }

    #[test]
    fn curve_parts_are_assembled_boxed_again_and_replays_refused() {
        let (auth, server) = curve_auth(None, None);
        let client = CurveKeyPair::generate(&mut OsRng);
        // A publisher: two parts, one box each, then the same box again.
        let (mut h, mut c, ok) = curve_pair(
            &auth,
            &server,
            client.clone(),
            SocketType::Sub,
            SocketType::Pub,
            Access::Write,
        );
        ok.unwrap();
        assert_eq!(h.user(), None, "no --curve-clients: no name");
        let mut tx = [0u8; 256];
        let n = c.write_message(&[b"t hello"], true, &mut tx).unwrap();
        let m = c
            .write_message(&[b"part two"], false, &mut tx[n..])
            .unwrap();
        let seen = to_master(&mut h, Some(&auth), Access::Write, &tx[..n + m]);
        assert_eq!(
            seen,
            vec![Ok((Opened::Nothing, false)), Ok((Opened::Message, false))]
        );
        let message = h.take_message();
        assert_eq!(message, b"\x01\x07t hello\x00\x08part two");
        let replay = to_master(&mut h, Some(&auth), Access::Write, &tx[n..n + m]);
        assert!(
            matches!(
                replay[..],
                [Err(HandshakeError::Zmtp(ZmtpError::Curve(
                    zerosmq_core::zmtp::curve::CurveError::Nonce
                )))]
            ),
            "{replay:?}"
        );

        // A subscriber: its subscription arrives boxed; the message goes out boxed per part.
        let (mut h, mut c, ok) = curve_pair(
            &auth,
            &server,
            client,
            SocketType::XPub,
            SocketType::Sub,
            Access::Read,
        );
        ok.unwrap();
        let n = c.write_subscribe(b"t", &mut tx).unwrap();
        let seen = to_master(&mut h, Some(&auth), Access::Read, &tx[..n]);
        assert!(
            matches!(
                seen[..],
                [Ok((
                    Opened::Subscription {
                        subscribe: true,
                        len: 1,
                        ..
                    },
                    false
                ))]
            ),
            "{seen:?}"
        );
        let mut outbox = Outbox::default();
        h.push_message(&message, &mut outbox);
        assert_eq!(outbox.messages(), 1);
        let mut wire = Vec::new();
        outbox.flush(&mut wire).unwrap();
        assert!(!wire.windows(5).any(|w| w == b"hello"), "boxed");
        let events = to_client(&mut c, &wire);
        assert_eq!(
            events,
            vec![
                Ok(Some(Event::Message { len: 7, more: true })),
                Ok(Some(Event::Message {
                    len: 8,
                    more: false
                }))
            ]
        );
        // A heartbeat PING is a box too, answered by core's client with a boxed PONG.
        let mut ping = Vec::new();
        h.push_ping(&mut ping);
        assert!(to_client(&mut c, &ping).is_empty());
        let pong = client_bytes(&mut c);
        assert_eq!(
            to_master(&mut h, Some(&auth), Access::Read, &pong),
            vec![Ok((Opened::Nothing, false))]
        );
    }

    #[test]
    fn curve_clients_and_the_acl_name_and_refuse_keys() {
        let dir = std::env::temp_dir().join(format!("zerosmq-hs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let alice = CurveKeyPair::generate(&mut OsRng);
        std::fs::write(dir.join("alice.pub"), key_text(alice.public())).unwrap();
        let clients = ClientKeys::load(&dir).unwrap();
        let (auth, server) = curve_auth(Some(clients), Some("user alice\ntopic read t\n"));
        let (h, _, ok) = curve_pair(
            &auth,
            &server,
            alice.clone(),
            SocketType::XPub,
            SocketType::Sub,
            Access::Read,
        );
        ok.unwrap();
        assert_eq!(h.user(), Some("alice"));
        let (_, c, refused) = curve_pair(
            &auth,
            &server,
            alice,
            SocketType::Sub,
            SocketType::Pub,
            Access::Write,
        );
        assert_eq!(
            refused,
            Err(HandshakeError::Refused {
                who: "CURVE client 'alice'".into(),
                why: "not allowed by the ACL"
            })
        );
        assert!(c.is_closed(), "the client got ERROR 400");
        let stranger = CurveKeyPair::generate(&mut OsRng);
        let (_, _, refused) = curve_pair(
            &auth,
            &server,
            stranger.clone(),
            SocketType::XPub,
            SocketType::Sub,
            Access::Read,
        );
        assert_eq!(
            refused,
            Err(HandshakeError::Refused {
                who: format!("CURVE client {}", key_text(stranger.public())),
                why: "key not in --curve-clients"
            })
        );
    }

    #[test]
    fn plain_users_are_checked_against_passwords_and_the_acl() {
        let dir = std::env::temp_dir().join(format!("zerosmq-hs-plain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("passwords");
        std::fs::write(&file, "alice:s3cret\n").unwrap();
        let auth = Auth {
            passwords: Some(Passwords::load(&file).unwrap()),
            curve: None,
            acl: Some(Acl::parse("user alice\ntopic write t\n").unwrap()),
        };
        for (password, access, expected) in [
            ("s3cret", Access::Write, Ok(())),
            ("s3cret", Access::Read, Err("not allowed by the ACL")),
            ("guess", Access::Write, Err("wrong user name or password")),
        ] {
            let mut h = Handshake::new(SocketType::Sub, Some(&auth));
            let credentials = PlainCredentials::new("alice", password).unwrap();
            let mut c = Connection::plain(SocketType::Pub, credentials);
            let mut result = Ok(());
            let mut events = Vec::new();
            for _ in 0..3 {
                let mut out = Vec::new();
                h.transmit(&mut out);
                events.extend(to_client(&mut c, &out));
                for r in to_master(&mut h, Some(&auth), access, &client_bytes(&mut c)) {
                    if let Err(HandshakeError::Refused { why, .. }) = r {
                        result = Err(why);
                    }
                }
            }
            let mut out = Vec::new();
            h.transmit(&mut out);
            events.extend(to_client(&mut c, &out));
            assert_eq!(result, expected);
            match expected {
                Ok(()) => assert!(h.is_open() && h.user() == Some("alice"), "{events:?}"),
                Err(_) => assert_eq!(events, vec![Err(ZmtpError::AuthFailed { status: 400 })]),
            }
        }
    }

    /// Any bytes after a greeting, with every mechanism: a result, never a panic.
    #[test]
    fn arbitrary_frames_never_panic() {
        let (curve, _) = curve_auth(None, None);
        let dir = std::env::temp_dir().join(format!("zerosmq-hs-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p"), "a:b\n").unwrap();
        let plain = Auth {
            passwords: Some(Passwords::load(&dir.join("p")).unwrap()),
            curve: None,
            acl: None,
        };
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let names: [&[u8]; 6] = [
            b"\x05HELLO",
            b"\x08INITIATE",
            b"\x05READY",
            b"\x05ERROR",
            b"\x07MESSAGE",
            b"",
        ];
        for round in 0..6_000u32 {
            let auth = [None, Some(&plain), Some(&curve)][round as usize % 3];
            let mut h = Handshake::new(SocketType::XPub, auth);
            let mechanism: &[u8] = [&b"NULL"[..], b"PLAIN", b"CURVE"][round as usize % 3];
            let mut g = zerosmq_core::zmtp::Greeting::ours_with(mechanism);
            g.minor = 1;
            h.on_greeting(&g.to_bytes()).unwrap();
            let mut body = names[(round / 3) as usize % names.len()].to_vec();
            for _ in 0..(round % 250) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                body.push((state >> 24) as u8);
            }
            for header in [
                FrameHeader::command(body.len()),
                FrameHeader::message(body.len(), false),
            ] {
                let (bytes, n) = header.to_bytes();
                let mut frame = bytes[..n].to_vec();
                frame.extend_from_slice(&body);
                let _ = h.on_frame(&mut frame, auth, "t", Access::Read, 1 << 20);
                let mut out = Vec::new();
                h.transmit(&mut out);
            }
        }
    }
}
