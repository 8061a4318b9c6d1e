#![no_main]
//! MESSAGE boxes into an open CURVE client (the handshake is done once and the connection
//! cloned). Byte 0 picks the mode: raw frames as the server's stream, or boxes the real server
//! writes from the input (split into frames at `|`), then changed at one (offset, xor) and
//! possibly replayed. Never a panic; changed boxes and replays are refused, unchanged ones open
//! to exactly what was sent.
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use zerosmq_core::zmtp::curve::CurveKeyPair;
use zerosmq_core::zmtp::{Connection, Event, SocketType};

use zerosmq_core::zmtp::curve::ReplayRng as Lcg;

fn open_pair() -> &'static (Connection<'static>, Connection<'static>) {
    static PAIR: OnceLock<(Connection<'static>, Connection<'static>)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let mut rng = Lcg(1);
        let sk = CurveKeyPair::generate(&mut rng);
        let ck = CurveKeyPair::generate(&mut rng);
        let mut c = Connection::curve_client(SocketType::Sub, *sk.public(), ck, &mut rng);
        let mut s = Connection::curve_server(SocketType::XPub, sk, &mut rng);
        let mut tx = [0u8; 512];
        let mut rx = [0u8; 512];
        for _ in 0..4 {
            for dir in 0..2 {
                let (from, to) = if dir == 0 {
                    (&mut c, &mut s)
                } else {
                    (&mut s, &mut c)
                };
                while let Some(n) = from.poll_transmit(&mut tx).unwrap() {
                    let mut input = &tx[..n];
                    while !input.is_empty() {
                        let dst = to.read_buffer(&mut rx);
                        let k = dst.len().min(input.len());
                        dst[..k].copy_from_slice(&input[..k]);
                        input = &input[k..];
                        to.commit_in_place(k, &mut rx).unwrap();
                        if to.awaits_admission() {
                            to.admit(true).unwrap();
                        }
                    }
                }
            }
        }
        assert!(c.is_open() && s.is_open());
        (c, s)
    })
}

/// Feeds `input`; returns the message bodies seen, or None at a fatal error.
fn feed(conn: &mut Connection, input: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut rx = vec![0u8; 1024];
    let mut seen = Vec::new();
    let mut input = input;
    while !input.is_empty() {
        let dst = conn.read_buffer(&mut rx);
        let n = dst.len().min(input.len());
        if n == 0 {
            assert!(conn.is_closed());
            return None;
        }
        dst[..n].copy_from_slice(&input[..n]);
        input = &input[n..];
        match conn.commit_in_place(n, &mut rx) {
            Ok(Some(Event::Message { len, .. })) => seen.push(rx[..len].to_vec()),
            Ok(Some(Event::Subscribe { start, len } | Event::Cancel { start, len })) => {
                assert!(start + len <= rx.len())
            }
            Ok(_) => {}
            Err(e) if e.is_fatal() => {
                assert!(conn.is_closed());
                return None;
            }
            Err(_) => {}
        }
    }
    Some(seen)
}

fuzz_target!(|data: &[u8]| {
    let [mode, at_hi, at_lo, x, rest @ ..] = data else {
        return;
    };
    let (c0, s0) = open_pair();
    let mut client = c0.clone();
    if mode & 1 == 0 {
        let _ = feed(&mut client, rest);
        return;
    }
    let mut server = s0.clone();
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'|').take(8).collect();
    let mut wire = Vec::new();
    let mut tx = vec![0u8; 2048];
    for (i, p) in parts.iter().enumerate() {
        let n = server
            .write_message(&[p], i + 1 < parts.len(), &mut tx)
            .unwrap();
        wire.extend_from_slice(&tx[..n]);
    }
    let at = usize::from(u16::from_be_bytes([*at_hi, *at_lo]));
    let changed = *x != 0 && at < wire.len();
    if changed {
        wire[at] ^= x;
    }
    let first_len = wire.len();
    if mode & 2 != 0 {
        // Replay the whole run: every box again, with old nonces.
        wire.extend_from_within(..first_len);
    }
    let seen = feed(&mut client, &wire);
    match (changed, mode & 2 != 0) {
        (false, false) => assert_eq!(seen.unwrap(), parts),
        (false, true) => assert!(seen.is_none(), "a replay was accepted"),
        (true, _) => {
            // A changed box never opens to something other than what was sent.
            if let Some(seen) = seen {
                assert!(seen.len() <= parts.len());
                for (s, p) in seen.iter().zip(&parts) {
                    assert_eq!(s, p);
                }
            }
        }
    }
});
