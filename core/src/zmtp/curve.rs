//! CurveZMQ (RFC 26), the CURVE mechanism of ZMTP 3.x, as libzmq 4.3 speaks it: sans-IO client
//! and server handshakes and the MESSAGE boxes that carry every frame once it is done.
//!
//! Commands (bodies, after the ZMTP frame header), with libzmq's exact sizes:
//! - HELLO (200): `05 HELLO`, version 1.0, 72 zero bytes, C', short nonce, box[64 zeros](C'->S).
//! - WELCOME (168): `07 WELCOME`, 16-byte nonce, box[S' + cookie](S->C').
//!   The cookie (96) is a 16-byte nonce and secretbox[C' + s'](cookie key): the server keeps
//!   only its cookie key between WELCOME and INITIATE, and learns C' and s' back from the cookie.
//! - INITIATE (257 + metadata): `08 INITIATE`, cookie, short nonce,
//!   box[C + vouch nonce + vouch + metadata](C'->S'), the vouch being box[C' + S](C->S').
//! - READY (30 + metadata): `05 READY`, short nonce, box[metadata](S'->C').
//! - MESSAGE (33 + data): `07 MESSAGE`, short nonce, box[flags + data](C'<->S'), flags bit 0
//!   MORE, bit 1 COMMAND (SUBSCRIBE, CANCEL, PING, PONG travel boxed as commands).
//! - ERROR: in clear, as with every mechanism.
//!
//! Short nonces count up from 1 on each side (a client's HELLO is 1, its INITIATE 2, its first
//! MESSAGE 3; a server's READY is 1); a box whose nonce is not above the last one accepted from
//! that peer is refused ([`CurveError::Nonce`]), so replayed and reordered boxes fail.
//!
//! Randomness (ephemeral keys, the cookie key, long nonces) is drawn from the caller's
//! `CryptoRng + RngCore` when a side is created; nothing here allocates or panics.

use core::fmt;

use crypto_secretbox::aead::generic_array::GenericArray;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Kdf, XSalsa20Poly1305};
use curve25519_dalek::constants::X25519_BASEPOINT;
use curve25519_dalek::montgomery::MontgomeryPoint;
use rand_core::{CryptoRng, RngCore};

use super::frame::FrameHeader;

/// Length of a CURVE public or secret key.
pub const KEY_LEN: usize = 32;
/// HELLO's body length.
pub const HELLO_LEN: usize = 200;
/// WELCOME's body length.
pub const WELCOME_LEN: usize = 168;
/// INITIATE's body length without metadata.
pub const INITIATE_MIN_LEN: usize = 257;
/// READY's body length without metadata.
pub const READY_MIN_LEN: usize = 30;
/// MESSAGE's body length around the data.
pub const MESSAGE_OVERHEAD: usize = 33;
/// Poly1305 tag in front of every box.
const TAG_LEN: usize = 16;
const COOKIE_LEN: usize = 96;
/// `07 MESSAGE` + short nonce.
const MESSAGE_HEADER_LEN: usize = 16;

/// MESSAGE flag: more frames of this message follow.
pub const FLAG_MORE: u8 = 0x01;
/// MESSAGE flag: the data is a command body (SUBSCRIBE, CANCEL, PING, PONG).
pub const FLAG_COMMAND: u8 = 0x02;

/// Why a CURVE step failed. Every one is fatal to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CurveError {
    /// A command other than the one this step expects.
    UnexpectedCommand,
    /// A command of the wrong size or with bad fields.
    Malformed,
    /// HELLO of a CurveZMQ version other than 1.0.
    Version,
    /// A box did not authenticate (wrong key, tampered bytes).
    Crypto,
    /// The vouch in INITIATE does not name this connection's keys.
    KeyExchange,
    /// A short nonce not above the last accepted one (a replayed or reordered box).
    Nonce,
    /// Our short nonce counter is used up.
    NonceExhausted,
    /// The metadata in INITIATE or READY is not a valid property list.
    Metadata,
    /// The server refused the client's public key.
    Refused,
    /// The output slice is too short.
    BufferTooSmall,
    /// The step is not the one this side is at.
    OutOfOrder,
    /// A CURVE connection was given a read-only receive buffer
    /// (use `Connection::commit_in_place`).
    ReadOnlyBuffer,
}

impl fmt::Display for CurveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CurveError::UnexpectedCommand => "CURVE: unexpected command",
            CurveError::Malformed => "CURVE: malformed command",
            CurveError::Version => "CURVE: peer's CurveZMQ version is not 1.0",
            CurveError::Crypto => "CURVE: box failed to authenticate (wrong key or tampered)",
            CurveError::KeyExchange => "CURVE: vouch does not match the connection's keys",
            CurveError::Nonce => "CURVE: replayed or reordered nonce",
            CurveError::NonceExhausted => "CURVE: nonce counter exhausted",
            CurveError::Metadata => "CURVE: invalid metadata",
            CurveError::Refused => "CURVE: client public key refused",
            CurveError::BufferTooSmall => "CURVE: buffer too small",
            CurveError::OutOfOrder => "CURVE: handshake step out of order",
            CurveError::ReadOnlyBuffer => "CURVE: boxes need a mutable receive buffer",
        })
    }
}

impl core::error::Error for CurveError {}

/// A long-term or ephemeral key pair. `Debug` does not show the secret key, and dropping the
/// pair zeroes it.
#[derive(Clone, PartialEq, Eq)]
pub struct CurveKeyPair {
    public: [u8; KEY_LEN],
    secret: [u8; KEY_LEN],
}

impl CurveKeyPair {
    /// The pair of a secret key (the public key is derived).
    pub fn from_secret(secret: [u8; KEY_LEN]) -> Self {
        // The Montgomery ladder of the key exchange on the base point, not `mul_base_clamped`:
        // that one goes through Edwards arithmetic, which a firmware would link only for this.
        let public = X25519_BASEPOINT.mul_clamped(secret).to_bytes();
        CurveKeyPair { public, secret }
    }

    /// A fresh pair from the caller's random generator.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        let mut secret = [0u8; KEY_LEN];
        rng.fill_bytes(&mut secret);
        Self::from_secret(secret)
    }

    /// The public key.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The secret key.
    pub fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }
}

impl Drop for CurveKeyPair {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl fmt::Debug for CurveKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurveKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Why the text of a key file is not a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Fewer than two key lines.
    Missing,
    /// The public key line (`true`) or the secret key line is not 40 Z85 characters.
    NotAKey { public: bool },
    /// The public key does not belong to the secret key.
    Mismatch,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFileError::Missing => {
                "expected the public key and the secret key, Z85, one per line"
            }
            KeyFileError::NotAKey { public: true } => {
                "the public key is not a Z85 CURVE key (40 characters)"
            }
            KeyFileError::NotAKey { public: false } => {
                "the secret key is not a Z85 CURVE key (40 characters)"
            }
            KeyFileError::Mismatch => "the public key does not belong to the secret key",
        })
    }
}

impl core::error::Error for KeyFileError {}

impl CurveKeyPair {
    /// The pair in the text of a key file, as the master's `--curve-keygen` writes it and
    /// libzmq's `zmq_curve_keypair` prints it: the public key on the first line, the secret key
    /// on the second, Z85; blank lines and `#` lines are skipped. The public key must be the
    /// secret key's.
    pub fn from_key_file(text: &str) -> Result<CurveKeyPair, KeyFileError> {
        let mut lines = key_file_lines(text);
        let (Some(public), Some(secret)) = (lines.next(), lines.next()) else {
            return Err(KeyFileError::Missing);
        };
        let public = super::z85::decode_key(public.as_bytes())
            .map_err(|_| KeyFileError::NotAKey { public: true })?;
        let mut secret = super::z85::decode_key(secret.as_bytes())
            .map_err(|_| KeyFileError::NotAKey { public: false })?;
        let pair = CurveKeyPair::from_secret(secret);
        zeroize::Zeroize::zeroize(&mut secret);
        if pair.public() != &public {
            return Err(KeyFileError::Mismatch);
        }
        Ok(pair)
    }
}

/// The lines of a key file that hold keys (not blank, not `#` comments), trimmed.
pub fn key_file_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

type Nonce = crypto_secretbox::Nonce;

/// NaCl's `crypto_box_beforenm`: X25519, then HSalsa20 of the shared point; the box of
/// `public` and `secret` is the secretbox under that key.
type SalsaBox = XSalsa20Poly1305;

fn nonce(prefix: &[u8], suffix: &[u8]) -> Nonce {
    let mut n = [0u8; 24];
    let (a, b) = n.split_at_mut(prefix.len().min(24));
    a.copy_from_slice(&prefix[..a.len()]);
    let k = b.len().min(suffix.len());
    b[..k].copy_from_slice(&suffix[..k]);
    *GenericArray::from_slice(&n)
}

fn salsa_box(public: &[u8; KEY_LEN], secret: &[u8; KEY_LEN]) -> SalsaBox {
    let shared = MontgomeryPoint(*public).mul_clamped(*secret).to_bytes();
    let key = XSalsa20Poly1305::kdf(GenericArray::from_slice(&shared), &GenericArray::default());
    XSalsa20Poly1305::new(&key)
}

/// Seals `buf` in place: `buf[..16]` receives the tag, `buf[16..]` holds the plaintext.
fn seal(aead: &XSalsa20Poly1305, nonce: &Nonce, buf: &mut [u8]) -> Result<(), CurveError> {
    let (tag, text) = buf
        .split_at_mut_checked(TAG_LEN)
        .ok_or(CurveError::BufferTooSmall)?;
    let t = aead
        .encrypt_in_place_detached(nonce, b"", text)
        .map_err(|_| CurveError::BufferTooSmall)?;
    tag.copy_from_slice(&t);
    Ok(())
}

/// Opens `buf` (tag then ciphertext) in place; the plaintext is left in `buf[16..]`.
fn open(aead: &XSalsa20Poly1305, nonce: &Nonce, buf: &mut [u8]) -> Result<(), CurveError> {
    let (tag, text) = buf
        .split_at_mut_checked(TAG_LEN)
        .ok_or(CurveError::Malformed)?;
    // `tag` is exactly TAG_LEN (16) bytes long: from_slice cannot fail.
    aead.decrypt_in_place_detached(nonce, b"", text, GenericArray::from_slice(tag))
        .map_err(|_| CurveError::Crypto)
}

fn short_nonce(bytes: &[u8]) -> u64 {
    let mut n = [0u8; 8];
    if let Some(b) = bytes.get(..8) {
        n.copy_from_slice(b);
    }
    u64::from_be_bytes(n)
}

/// Writes a command frame header for a body of `len` into `tx`; returns the header length.
fn command_header(len: usize, tx: &mut [u8]) -> Result<usize, CurveError> {
    FrameHeader::command(len)
        .encode(tx)
        .map_err(|_| CurveError::BufferTooSmall)
}

fn check_metadata(data: &[u8]) -> Result<(), CurveError> {
    super::command::Properties::parse(data)
        .map(|_| ())
        .map_err(|_| CurveError::Metadata)
}

/// The traffic keys and nonce counters of a connection from WELCOME (client) or INITIATE
/// (server) on: the precomputed C'/S' box. `Debug` and equality leave the key out.
#[derive(Clone)]
pub struct CurveSession {
    boxer: SalsaBox,
    /// Our next short nonce.
    next: u64,
    /// The last short nonce accepted from the peer.
    peer: u64,
    /// Whether we are the server (our MESSAGE prefix is `CurveZMQMESSAGES`).
    server: bool,
}

impl fmt::Debug for CurveSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurveSession")
            .field("next", &self.next)
            .field("peer", &self.peer)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CurveSession {
    fn eq(&self, other: &Self) -> bool {
        (self.next, self.peer, self.server) == (other.next, other.peer, other.server)
    }
}

impl Eq for CurveSession {}

impl CurveSession {
    fn take_nonce(&mut self) -> Result<[u8; 8], CurveError> {
        let n = self.next;
        self.next = n.checked_add(1).ok_or(CurveError::NonceExhausted)?;
        Ok(n.to_be_bytes())
    }

    /// Opens a box sent with short nonce `short` (bytes) in place, enforcing the nonce order.
    fn open_from_peer(
        &mut self,
        prefix: &[u8; 16],
        short: &[u8],
        buf: &mut [u8],
    ) -> Result<(), CurveError> {
        let n = short_nonce(short);
        if n <= self.peer {
            return Err(CurveError::Nonce);
        }
        open(&self.boxer, &nonce(prefix, short), buf)?;
        // Advanced only by an authentic box: a forged nonce cannot block the real ones.
        self.peer = n;
        Ok(())
    }

    /// Bytes a MESSAGE carrying `data_len` bytes takes on the wire, ZMTP header included.
    pub fn message_wire_len(data_len: usize) -> usize {
        let body = MESSAGE_OVERHEAD + data_len;
        FrameHeader::message(body, false).encoded_len() + body
    }

    /// Writes a whole MESSAGE frame carrying `flags` and the concatenation of `parts` into
    /// `tx`; returns the bytes used. Like libzmq, the box travels in a message frame without
    /// MORE (RFC 26 calls MESSAGE a command, but libzmq 4.3 neither sends nor answers it in a
    /// command frame); the real flags are inside.
    pub fn encode_message(
        &mut self,
        flags: u8,
        parts: &[&[u8]],
        tx: &mut [u8],
    ) -> Result<usize, CurveError> {
        let data_len = parts
            .iter()
            .try_fold(0usize, |n, p| n.checked_add(p.len()))
            .ok_or(CurveError::BufferTooSmall)?;
        let body_len = data_len
            .checked_add(MESSAGE_OVERHEAD)
            .ok_or(CurveError::BufferTooSmall)?;
        let at = FrameHeader::message(body_len, false)
            .encode(tx)
            .map_err(|_| CurveError::BufferTooSmall)?;
        let end = at.checked_add(body_len).ok_or(CurveError::BufferTooSmall)?;
        let body = tx.get_mut(at..end).ok_or(CurveError::BufferTooSmall)?;
        let short = self.take_nonce()?;
        body[..8].copy_from_slice(b"\x07MESSAGE");
        body[8..16].copy_from_slice(&short);
        body[32] = flags & (FLAG_MORE | FLAG_COMMAND);
        let mut k = 33;
        for p in parts {
            body[k..k + p.len()].copy_from_slice(p);
            k += p.len();
        }
        let prefix: &[u8; 16] = if self.server {
            b"CurveZMQMESSAGES"
        } else {
            b"CurveZMQMESSAGEC"
        };
        seal(
            &self.boxer,
            &nonce(prefix, &short),
            &mut body[MESSAGE_HEADER_LEN..],
        )?;
        Ok(end)
    }

    /// Opens a MESSAGE command body in place; returns its flags and the data's length, the data
    /// being `body[33..33 + len]`.
    pub fn decode_message(&mut self, body: &mut [u8]) -> Result<(u8, usize), CurveError> {
        if !body.starts_with(b"\x07MESSAGE") {
            return Err(CurveError::UnexpectedCommand);
        }
        if body.len() < MESSAGE_OVERHEAD {
            return Err(CurveError::Malformed);
        }
        let prefix: &[u8; 16] = if self.server {
            b"CurveZMQMESSAGEC"
        } else {
            b"CurveZMQMESSAGES"
        };
        let (head, sealed) = body.split_at_mut(MESSAGE_HEADER_LEN);
        self.open_from_peer(prefix, &head[8..16], sealed)?;
        Ok((sealed[TAG_LEN], body.len() - MESSAGE_OVERHEAD))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientStep {
    Hello,
    Welcome,
    Initiate,
    Ready,
    Open,
}

/// The client side: HELLO, then (after WELCOME) INITIATE, then READY opens the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveClient {
    server: [u8; KEY_LEN],
    ours: CurveKeyPair,
    ephemeral: CurveKeyPair,
    vouch_nonce: [u8; 16],
    cookie: [u8; COOKIE_LEN],
    server_ephemeral: [u8; KEY_LEN],
    step: ClientStep,
    session: Option<CurveSession>,
}

impl CurveClient {
    /// A client of the server whose long-term public key is `server`, authenticating with
    /// `ours` (an ephemeral pair from [`CurveKeyPair::generate`] when the client has none).
    pub fn new<R: CryptoRng + RngCore>(
        server: [u8; KEY_LEN],
        ours: CurveKeyPair,
        rng: &mut R,
    ) -> Self {
        let ephemeral = CurveKeyPair::generate(rng);
        let mut vouch_nonce = [0u8; 16];
        rng.fill_bytes(&mut vouch_nonce);
        CurveClient {
            server,
            ours,
            ephemeral,
            vouch_nonce,
            cookie: [0; COOKIE_LEN],
            server_ephemeral: [0; KEY_LEN],
            step: ClientStep::Hello,
            session: None,
        }
    }

    /// Our long-term public key.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        self.ours.public()
    }

    /// Whether READY was accepted.
    pub fn is_open(&self) -> bool {
        self.step == ClientStep::Open
    }

    /// The session, once open.
    pub fn session_mut(&mut self) -> Option<&mut CurveSession> {
        if self.is_open() {
            self.session.as_mut()
        } else {
            None
        }
    }

    /// The session, once the handshake is done.
    pub fn session(&self) -> Option<&CurveSession> {
        self.session.as_ref().filter(|_| self.is_open())
    }

    /// Writes the HELLO frame (202 bytes) into `tx`.
    pub fn encode_hello(&mut self, tx: &mut [u8]) -> Result<usize, CurveError> {
        if self.step != ClientStep::Hello {
            return Err(CurveError::OutOfOrder);
        }
        let at = command_header(HELLO_LEN, tx)?;
        let body = tx
            .get_mut(at..at + HELLO_LEN)
            .ok_or(CurveError::BufferTooSmall)?;
        body.fill(0);
        body[..6].copy_from_slice(b"\x05HELLO");
        body[6] = 1;
        body[80..112].copy_from_slice(self.ephemeral.public());
        // Short nonce 1: libzmq's counter starts there.
        let short = 1u64.to_be_bytes();
        body[112..120].copy_from_slice(&short);
        let b = salsa_box(&self.server, self.ephemeral.secret());
        seal(&b, &nonce(b"CurveZMQHELLO---", &short), &mut body[120..200])?;
        self.step = ClientStep::Welcome;
        Ok(at + HELLO_LEN)
    }

    /// Processes WELCOME's body (opened in place).
    pub fn on_welcome(&mut self, body: &mut [u8]) -> Result<(), CurveError> {
        if self.step != ClientStep::Welcome {
            return Err(CurveError::OutOfOrder);
        }
        if !body.starts_with(b"\x07WELCOME") {
            return Err(CurveError::UnexpectedCommand);
        }
        if body.len() != WELCOME_LEN {
            return Err(CurveError::Malformed);
        }
        let (head, sealed) = body.split_at_mut(24);
        let b = salsa_box(&self.server, self.ephemeral.secret());
        open(&b, &nonce(b"WELCOME-", &head[8..24]), sealed)?;
        let plain = &sealed[TAG_LEN..];
        self.server_ephemeral.copy_from_slice(&plain[..32]);
        self.cookie.copy_from_slice(&plain[32..128]);
        self.session = Some(CurveSession {
            boxer: salsa_box(&self.server_ephemeral, self.ephemeral.secret()),
            next: 2,
            peer: 0,
            server: false,
        });
        self.step = ClientStep::Initiate;
        Ok(())
    }

    /// Writes the INITIATE frame with `metadata` (a property list) into `tx`.
    pub fn encode_initiate(&mut self, metadata: &[u8], tx: &mut [u8]) -> Result<usize, CurveError> {
        let (ClientStep::Initiate, Some(session)) = (self.step, self.session.as_mut()) else {
            return Err(CurveError::OutOfOrder);
        };
        let len = INITIATE_MIN_LEN
            .checked_add(metadata.len())
            .ok_or(CurveError::BufferTooSmall)?;
        let at = command_header(len, tx)?;
        let body = tx
            .get_mut(at..at.saturating_add(len))
            .filter(|b| b.len() == len)
            .ok_or(CurveError::BufferTooSmall)?;
        let short = session.take_nonce()?;
        body[..9].copy_from_slice(b"\x08INITIATE");
        body[9..105].copy_from_slice(&self.cookie);
        body[105..113].copy_from_slice(&short);
        // Plaintext of the outer box, from body[129]: C, vouch nonce, vouch, metadata.
        let plain = &mut body[113 + TAG_LEN..];
        plain[..32].copy_from_slice(self.ours.public());
        plain[32..48].copy_from_slice(&self.vouch_nonce);
        let vouch = &mut plain[48..128];
        vouch[TAG_LEN..TAG_LEN + 32].copy_from_slice(self.ephemeral.public());
        vouch[TAG_LEN + 32..].copy_from_slice(&self.server);
        let v = salsa_box(&self.server_ephemeral, self.ours.secret());
        seal(&v, &nonce(b"VOUCH---", &self.vouch_nonce), vouch)?;
        plain[128..].copy_from_slice(metadata);
        seal(
            &session.boxer,
            &nonce(b"CurveZMQINITIATE", &short),
            &mut body[113..],
        )?;
        self.step = ClientStep::Ready;
        Ok(at + len)
    }

    /// Processes READY's body (opened in place); returns the range of `body` holding the
    /// server's metadata.
    pub fn on_ready(&mut self, body: &mut [u8]) -> Result<core::ops::Range<usize>, CurveError> {
        let (ClientStep::Ready, Some(session)) = (self.step, self.session.as_mut()) else {
            return Err(CurveError::OutOfOrder);
        };
        if !body.starts_with(b"\x05READY") {
            return Err(CurveError::UnexpectedCommand);
        }
        if body.len() < READY_MIN_LEN {
            return Err(CurveError::Malformed);
        }
        let (head, sealed) = body.split_at_mut(14);
        session.open_from_peer(b"CurveZMQREADY---", &head[6..14], sealed)?;
        check_metadata(&sealed[TAG_LEN..])?;
        self.step = ClientStep::Open;
        Ok(READY_MIN_LEN..body.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerStep {
    Hello,
    Welcome,
    Initiate,
    Ready,
    Open,
}

/// The server side: HELLO, WELCOME (with the cookie), INITIATE, READY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveServer {
    ours: CurveKeyPair,
    /// s', until WELCOME is written; then only the cookie holds it.
    ephemeral_secret: [u8; KEY_LEN],
    cookie_key: [u8; KEY_LEN],
    cookie_nonce: [u8; 16],
    welcome_nonce: [u8; 16],
    /// C', between HELLO and WELCOME only.
    client_ephemeral: [u8; KEY_LEN],
    /// The client's long-term key, from INITIATE on.
    client_key: [u8; KEY_LEN],
    step: ServerStep,
    session: Option<CurveSession>,
}

impl CurveServer {
    /// A server with long-term key pair `ours`.
    pub fn new<R: CryptoRng + RngCore>(ours: CurveKeyPair, rng: &mut R) -> Self {
        let mut r = [0u8; 96];
        rng.fill_bytes(&mut r);
        let mut s = CurveServer {
            ours,
            ephemeral_secret: [0; KEY_LEN],
            cookie_key: [0; KEY_LEN],
            cookie_nonce: [0; 16],
            welcome_nonce: [0; 16],
            client_ephemeral: [0; KEY_LEN],
            client_key: [0; KEY_LEN],
            step: ServerStep::Hello,
            session: None,
        };
        s.ephemeral_secret.copy_from_slice(&r[..32]);
        s.cookie_key.copy_from_slice(&r[32..64]);
        s.cookie_nonce.copy_from_slice(&r[64..80]);
        s.welcome_nonce.copy_from_slice(&r[80..96]);
        r.fill(0);
        s
    }

    /// The client's long-term public key, once INITIATE was accepted.
    pub fn client_key(&self) -> Option<&[u8; KEY_LEN]> {
        matches!(self.step, ServerStep::Ready | ServerStep::Open).then_some(&self.client_key)
    }

    /// Whether READY was written.
    pub fn is_open(&self) -> bool {
        self.step == ServerStep::Open
    }

    /// The session, once open.
    pub fn session_mut(&mut self) -> Option<&mut CurveSession> {
        if self.is_open() {
            self.session.as_mut()
        } else {
            None
        }
    }

    /// The session, once the handshake is done.
    pub fn session(&self) -> Option<&CurveSession> {
        self.session.as_ref().filter(|_| self.is_open())
    }

    /// Processes HELLO's body.
    pub fn on_hello(&mut self, body: &[u8]) -> Result<(), CurveError> {
        if self.step != ServerStep::Hello {
            return Err(CurveError::OutOfOrder);
        }
        if !body.starts_with(b"\x05HELLO") {
            return Err(CurveError::UnexpectedCommand);
        }
        if body.len() != HELLO_LEN {
            return Err(CurveError::Malformed);
        }
        if body[6..8] != [1, 0] {
            return Err(CurveError::Version);
        }
        let mut client_ephemeral = [0u8; KEY_LEN];
        client_ephemeral.copy_from_slice(&body[80..112]);
        let mut signature = [0u8; 80];
        signature.copy_from_slice(&body[120..200]);
        let b = salsa_box(&client_ephemeral, self.ours.secret());
        open(
            &b,
            &nonce(b"CurveZMQHELLO---", &body[112..120]),
            &mut signature,
        )?;
        // The signature box holds 64 zero bytes; Poly1305 already proved it intact.
        self.client_ephemeral = client_ephemeral;
        self.step = ServerStep::Welcome;
        Ok(())
    }

    /// Writes the WELCOME frame (170 bytes) into `tx`; afterwards the server holds no key of
    /// this client until INITIATE brings its cookie back.
    pub fn encode_welcome(&mut self, tx: &mut [u8]) -> Result<usize, CurveError> {
        if self.step != ServerStep::Welcome {
            return Err(CurveError::OutOfOrder);
        }
        let at = command_header(WELCOME_LEN, tx)?;
        let body = tx
            .get_mut(at..at + WELCOME_LEN)
            .ok_or(CurveError::BufferTooSmall)?;
        body[..8].copy_from_slice(b"\x07WELCOME");
        body[8..24].copy_from_slice(&self.welcome_nonce);
        let plain = &mut body[24 + TAG_LEN..];
        let ephemeral = CurveKeyPair::from_secret(self.ephemeral_secret);
        plain[..32].copy_from_slice(ephemeral.public());
        // The cookie: nonce, then secretbox[C' + s'].
        plain[32..48].copy_from_slice(&self.cookie_nonce);
        let cookie = &mut plain[48..128];
        cookie[TAG_LEN..TAG_LEN + 32].copy_from_slice(&self.client_ephemeral);
        cookie[TAG_LEN + 32..].copy_from_slice(&self.ephemeral_secret);
        let cookie_box = XSalsa20Poly1305::new(GenericArray::from_slice(&self.cookie_key));
        seal(&cookie_box, &nonce(b"COOKIE--", &self.cookie_nonce), cookie)?;
        let b = salsa_box(&self.client_ephemeral, self.ours.secret());
        seal(
            &b,
            &nonce(b"WELCOME-", &self.welcome_nonce),
            &mut body[24..],
        )?;
        self.ephemeral_secret = [0; KEY_LEN];
        self.client_ephemeral = [0; KEY_LEN];
        self.step = ServerStep::Initiate;
        Ok(at + WELCOME_LEN)
    }

    /// Processes INITIATE's body (opened in place); returns the range of `body` holding the
    /// client's metadata. The client's key is then [`client_key`](Self::client_key), to be
    /// admitted or refused before READY.
    pub fn on_initiate(&mut self, body: &mut [u8]) -> Result<core::ops::Range<usize>, CurveError> {
        if self.step != ServerStep::Initiate {
            return Err(CurveError::OutOfOrder);
        }
        if !body.starts_with(b"\x08INITIATE") {
            return Err(CurveError::UnexpectedCommand);
        }
        if body.len() < INITIATE_MIN_LEN {
            return Err(CurveError::Malformed);
        }
        let mut cookie = [0u8; 80];
        cookie.copy_from_slice(&body[25..105]);
        let cookie_box = XSalsa20Poly1305::new(GenericArray::from_slice(&self.cookie_key));
        open(&cookie_box, &nonce(b"COOKIE--", &body[9..25]), &mut cookie)?;
        let mut client_ephemeral = [0u8; KEY_LEN];
        client_ephemeral.copy_from_slice(&cookie[TAG_LEN..TAG_LEN + 32]);
        let mut ephemeral_secret = [0u8; KEY_LEN];
        ephemeral_secret.copy_from_slice(&cookie[TAG_LEN + 32..]);
        cookie.fill(0);
        let mut session = CurveSession {
            boxer: salsa_box(&client_ephemeral, &ephemeral_secret),
            next: 1,
            peer: 0,
            server: true,
        };
        let (head, sealed) = body.split_at_mut(113);
        session.open_from_peer(b"CurveZMQINITIATE", &head[105..113], sealed)?;
        let plain = &sealed[TAG_LEN..];
        let mut client_key = [0u8; KEY_LEN];
        client_key.copy_from_slice(&plain[..32]);
        let mut vouch = [0u8; 80];
        vouch.copy_from_slice(&plain[48..128]);
        let v = salsa_box(&client_key, &ephemeral_secret);
        open(&v, &nonce(b"VOUCH---", &plain[32..48]), &mut vouch)?;
        ephemeral_secret.fill(0);
        if vouch[TAG_LEN..TAG_LEN + 32] != client_ephemeral
            || vouch[TAG_LEN + 32..] != *self.ours.public()
        {
            return Err(CurveError::KeyExchange);
        }
        check_metadata(&plain[128..])?;
        self.client_key = client_key;
        self.session = Some(session);
        self.cookie_key = [0; KEY_LEN];
        self.step = ServerStep::Ready;
        Ok(113 + TAG_LEN + 128..body.len())
    }

    /// Writes the READY frame with `metadata` (a property list) into `tx`; the session is open.
    pub fn encode_ready(&mut self, metadata: &[u8], tx: &mut [u8]) -> Result<usize, CurveError> {
        let (ServerStep::Ready, Some(session)) = (self.step, self.session.as_mut()) else {
            return Err(CurveError::OutOfOrder);
        };
        let len = READY_MIN_LEN
            .checked_add(metadata.len())
            .ok_or(CurveError::BufferTooSmall)?;
        let at = command_header(len, tx)?;
        let body = tx
            .get_mut(at..at.saturating_add(len))
            .filter(|b| b.len() == len)
            .ok_or(CurveError::BufferTooSmall)?;
        let short = session.take_nonce()?;
        body[..6].copy_from_slice(b"\x05READY");
        body[6..14].copy_from_slice(&short);
        body[30..].copy_from_slice(metadata);
        seal(
            &session.boxer,
            &nonce(b"CurveZMQREADY---", &short),
            &mut body[14..],
        )?;
        self.step = ServerStep::Open;
        Ok(at + len)
    }
}

/// A seeded, deterministic generator for tests, fuzzing and replaying recorded handshakes
/// (the recordings in `testdata` were made with it). NOT cryptographic: never for real keys.
#[cfg(any(test, feature = "replay-rng"))]
#[derive(Debug, Clone)]
pub struct ReplayRng(pub u64);

#[cfg(any(test, feature = "replay-rng"))]
impl RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(any(test, feature = "replay-rng"))]
impl CryptoRng for ReplayRng {}

#[cfg(test)]
mod tests {
    use super::*;

    use super::ReplayRng as TestRng;

    #[test]
    fn key_files_parse_and_bad_ones_are_errors() {
        // RFC 26's test server keys as pyzmq's curve_keypair prints them.
        let ok = "# server\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n\nJTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n";
        let pair = CurveKeyPair::from_key_file(ok).unwrap();
        assert_eq!(
            &super::super::z85::encode_key(pair.public()),
            b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        );
        let cases = [
            ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n", KeyFileError::Missing),
            (
                "rq:rM>}U?@Lns47E1%kR\nJTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n",
                KeyFileError::NotAKey { public: true },
            ),
            (
                "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\nsecret\n",
                KeyFileError::NotAKey { public: false },
            ),
            (
                "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\nJTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n",
                KeyFileError::Mismatch,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(CurveKeyPair::from_key_file(text), Err(want), "{text}");
        }
    }

    const META: &[u8] = b"\x0bSocket-Type\x00\x00\x00\x03SUB";

    /// Runs a handshake; returns both sides open and the client key the server saw.
    fn handshake(rng: &mut TestRng) -> (CurveClient, CurveServer) {
        let server_keys = CurveKeyPair::generate(rng);
        let client_keys = CurveKeyPair::generate(rng);
        let mut client = CurveClient::new(*server_keys.public(), client_keys.clone(), rng);
        let mut server = CurveServer::new(server_keys, rng);
        let mut tx = [0u8; 512];
        assert_eq!(client.encode_hello(&mut tx), Ok(202));
        assert_eq!(&tx[..10], b"\x04\xc8\x05HELLO\x01\x00");
        server.on_hello(&tx[2..202]).unwrap();
        assert_eq!(server.encode_welcome(&mut tx), Ok(170));
        client.on_welcome(&mut tx[2..170]).unwrap();
        let n = client.encode_initiate(META, &mut tx).unwrap();
        // Over 255 bytes: a long frame header.
        assert_eq!(n, 9 + 257 + META.len());
        let meta = server.on_initiate(&mut tx[9..n]).unwrap();
        assert_eq!(&tx[9..n][meta], META);
        assert_eq!(server.client_key(), Some(client_keys.public()));
        let n = server.encode_ready(META, &mut tx).unwrap();
        assert_eq!(n, 2 + 30 + META.len());
        let meta = client.on_ready(&mut tx[2..n]).unwrap();
        assert_eq!(&tx[2..n][meta], META);
        assert!(client.is_open() && server.is_open());
        (client, server)
    }

    #[test]
    fn handshake_and_messages_both_ways() {
        let mut rng = TestRng(7);
        let (mut client, mut server) = handshake(&mut rng);
        let mut tx = [0u8; 128];
        for (i, more) in [(0u8, true), (1, false)] {
            let c = client.session_mut().unwrap();
            let n = c
                .encode_message(u8::from(more), &[b"imu ", &[i]], &mut tx)
                .unwrap();
            assert_eq!(n, 2 + 33 + 5);
            assert_eq!(&tx[..10], b"\x00\x26\x07MESSAGE");
            // Client nonces: HELLO 1, INITIATE 2, then 3, 4.
            assert_eq!(tx[17], 3 + i);
            let s = server.session_mut().unwrap();
            let (flags, len) = s.decode_message(&mut tx[2..n]).unwrap();
            assert_eq!((flags, len), (u8::from(more), 5));
            assert_eq!(&tx[2 + 33..n], &[b'i', b'm', b'u', b' ', i]);
        }
        let s = server.session_mut().unwrap();
        let n = s
            .encode_message(FLAG_COMMAND, &[b"\x04PONG"], &mut tx)
            .unwrap();
        // Server nonces: READY 1, then 2.
        assert_eq!(tx[17], 2);
        let c = client.session_mut().unwrap();
        assert_eq!(c.decode_message(&mut tx[2..n]), Ok((FLAG_COMMAND, 5)));
        assert_eq!(&tx[35..n], b"\x04PONG");
    }

    #[test]
    fn replayed_reordered_and_tampered_boxes_are_refused() {
        let mut rng = TestRng(8);
        let (mut client, mut server) = handshake(&mut rng);
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        let c = client.session_mut().unwrap();
        let na = c.encode_message(0, &[b"first"], &mut a).unwrap();
        let nb = c.encode_message(0, &[b"second"], &mut b).unwrap();
        let s = server.session_mut().unwrap();
        // Reordered: the second first, then the first is too old.
        let mut b2 = b;
        assert!(s.decode_message(&mut b2[2..nb]).is_ok());
        let mut a2 = a;
        assert_eq!(s.decode_message(&mut a2[2..na]), Err(CurveError::Nonce));
        // Replayed.
        let mut b3 = b;
        assert_eq!(s.decode_message(&mut b3[2..nb]), Err(CurveError::Nonce));
        // Tampered: a flipped bit in the box, or a nonce raised by hand.
        let c = client.session_mut().unwrap();
        let n = c.encode_message(0, &[b"third"], &mut a).unwrap();
        let mut t = a;
        t[n - 1] ^= 1;
        let s = server.session_mut().unwrap();
        assert_eq!(s.decode_message(&mut t[2..n]), Err(CurveError::Crypto));
        let mut t = a;
        t[17] += 1;
        assert_eq!(s.decode_message(&mut t[2..n]), Err(CurveError::Crypto));
        // The forged ones did not advance the peer nonce: the real one still opens.
        assert!(s.decode_message(&mut a[2..n]).is_ok());
        // Short and foreign bodies.
        assert_eq!(
            s.decode_message(&mut [0u8; 10]),
            Err(CurveError::UnexpectedCommand)
        );
        let mut short = *b"\x07MESSAGE\0\0\0\0\0\0\0\x09";
        assert_eq!(s.decode_message(&mut short), Err(CurveError::Malformed));
    }

    #[test]
    fn wrong_server_key_fails_at_hello() {
        let mut rng = TestRng(9);
        let server_keys = CurveKeyPair::generate(&mut rng);
        let other = CurveKeyPair::generate(&mut rng);
        let mut client =
            CurveClient::new(*other.public(), CurveKeyPair::generate(&mut rng), &mut rng);
        let mut server = CurveServer::new(server_keys, &mut rng);
        let mut tx = [0u8; 256];
        client.encode_hello(&mut tx).unwrap();
        assert_eq!(server.on_hello(&tx[2..202]), Err(CurveError::Crypto));
        let mut bad = [0u8; 200];
        bad[..8].copy_from_slice(b"\x05HELLO\x02\x00");
        assert_eq!(server.on_hello(&bad), Err(CurveError::Version));
        assert_eq!(server.on_hello(&bad[..199]), Err(CurveError::Malformed));
        assert_eq!(
            server.on_hello(b"\x05READY"),
            Err(CurveError::UnexpectedCommand)
        );
    }

    #[test]
    fn initiate_with_a_foreign_cookie_or_vouch_is_refused() {
        let mut rng = TestRng(10);
        let server_keys = CurveKeyPair::generate(&mut rng);
        let run = |rng: &mut TestRng, tamper: usize| {
            let mut client =
                CurveClient::new(*server_keys.public(), CurveKeyPair::generate(rng), rng);
            let mut server = CurveServer::new(server_keys.clone(), rng);
            let mut tx = [0u8; 512];
            client.encode_hello(&mut tx).unwrap();
            server.on_hello(&tx[2..202]).unwrap();
            server.encode_welcome(&mut tx).unwrap();
            client.on_welcome(&mut tx[2..170]).unwrap();
            let n = client.encode_initiate(META, &mut tx).unwrap();
            tx[9 + tamper] ^= 0x40;
            server.on_initiate(&mut tx[9..n])
        };
        // Cookie, cookie nonce, initiate box.
        for at in [9, 30, 120, 250] {
            assert_eq!(run(&mut rng, at), Err(CurveError::Crypto), "{at}");
        }
        assert!(run(&mut rng, 0).is_err());
    }

    #[test]
    fn steps_out_of_order_are_errors() {
        let mut rng = TestRng(11);
        let keys = CurveKeyPair::generate(&mut rng);
        let mut client = CurveClient::new(*keys.public(), keys.clone(), &mut rng);
        let mut tx = [0u8; 512];
        assert_eq!(
            client.encode_initiate(b"", &mut tx),
            Err(CurveError::OutOfOrder)
        );
        assert_eq!(client.on_ready(&mut tx[..40]), Err(CurveError::OutOfOrder));
        assert_eq!(
            client.encode_hello(&mut tx[..100]),
            Err(CurveError::BufferTooSmall)
        );
        let mut server = CurveServer::new(keys, &mut rng);
        assert_eq!(server.encode_welcome(&mut tx), Err(CurveError::OutOfOrder));
        assert_eq!(
            server.encode_ready(b"", &mut tx),
            Err(CurveError::OutOfOrder)
        );
        assert!(server.client_key().is_none());
    }

    #[test]
    fn key_pair_from_secret_matches_pyzmq() {
        // zmq.curve_public(secret) for libzmq's test secret key.
        let secret =
            crate::zmtp::z85::decode_key(b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6").unwrap();
        let pair = CurveKeyPair::from_secret(secret);
        let shown = crate::zmtp::z85::encode_key(pair.public());
        assert_eq!(&shown, PYZMQ_PUBLIC);
    }

    const PYZMQ_PUBLIC: &[u8; 40] = b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
}
