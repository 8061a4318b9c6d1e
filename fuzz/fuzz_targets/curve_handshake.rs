#![no_main]
//! The CURVE handshake, both sides. Byte 0: bit 0 picks the side under attack (our server fed a
//! hostile client's stream, or our client fed a hostile server's), bit 1 the mode: a raw stream
//! after a valid CURVE greeting (parsers, sizes), or a real handshake between our client and
//! server whose bytes in one direction are changed by (offset, xor) pairs from the input
//! (boxes, cookie, vouch, nonces). Byte 1 is the read size. Never a panic; a fatal error closes
//! the connection; an unchanged run opens both sides and carries a message.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::zmtp::curve::CurveKeyPair;
use zerosmq_core::zmtp::{Connection, Event, Greeting, SocketType, ZmtpError};

use zerosmq_core::zmtp::curve::ReplayRng as Lcg;

/// Feeds `input` to `conn` `chunk` bytes at a time; Err on a fatal error.
fn feed(
    conn: &mut Connection,
    rx: &mut [u8],
    input: &[u8],
    chunk: usize,
) -> Result<usize, ZmtpError> {
    let mut events = 0;
    let mut input = input;
    while !input.is_empty() {
        let dst = conn.read_buffer(rx);
        let n = dst.len().min(chunk).min(input.len());
        if n == 0 {
            assert!(conn.is_closed() || conn.awaits_admission());
            return Err(ZmtpError::Closed);
        }
        dst[..n].copy_from_slice(&input[..n]);
        input = &input[n..];
        match conn.commit_in_place(n, rx) {
            Ok(Some(Event::Message { len, .. })) => {
                assert!(len <= rx.len());
                events += 1;
            }
            Ok(Some(Event::Subscribe { start, len } | Event::Cancel { start, len })) => {
                assert!(start + len <= rx.len());
                events += 1;
            }
            Ok(Some(_)) => events += 1,
            Ok(None) if conn.awaits_admission() => {
                conn.admit(true).expect("admission right after INITIATE");
                events += 1;
            }
            Ok(None) => {}
            Err(e) if e.is_fatal() => {
                assert!(conn.is_closed());
                return Err(e);
            }
            Err(_) => {}
        }
    }
    Ok(events)
}

/// Everything `conn` has to send, appended to `out`.
fn drain(conn: &mut Connection, out: &mut Vec<u8>) {
    let mut tx = [0u8; 512];
    while let Ok(Some(n)) = conn.poll_transmit(&mut tx) {
        out.extend_from_slice(&tx[..n]);
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, shape, rest @ ..] = data else {
        return;
    };
    let chunk = usize::from(*shape) + 1;
    let mut rng = Lcg(u64::from(*shape));
    let server_keys = CurveKeyPair::generate(&mut rng);
    let client_keys = CurveKeyPair::generate(&mut rng);
    let mut client = Connection::curve_client(
        SocketType::Sub,
        *server_keys.public(),
        client_keys,
        &mut rng,
    );
    let mut server = Connection::curve_server(SocketType::XPub, server_keys, &mut rng);
    let attack_server = mode & 1 == 0;
    let mut rx = [0u8; 512];
    if mode & 2 == 0 {
        // A raw hostile stream after a valid greeting.
        let mut g = Greeting::ours_with(b"CURVE");
        g.as_server = !attack_server;
        let mut stream = g.to_bytes().to_vec();
        stream.extend_from_slice(rest);
        let victim = if attack_server {
            &mut server
        } else {
            &mut client
        };
        let _ = feed(victim, &mut rx, &stream, chunk);
        drain(victim, &mut Vec::new());
        return;
    }
    // A real handshake, one direction changed by (offset u16, xor) triples.
    let edits: Vec<(usize, u8)> = rest
        .chunks_exact(3)
        .map(|e| (usize::from(u16::from_be_bytes([e[0], e[1]])), e[2]))
        .collect();
    let mut sent = [0usize; 2];
    let mut changed = false;
    let mut failed = false;
    for _ in 0..4 {
        for dir in 0..2 {
            let (from, to) = if dir == 0 {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            let mut bytes = Vec::new();
            drain(from, &mut bytes);
            if (dir == 0) == attack_server {
                for &(at, x) in &edits {
                    if at >= sent[dir] && at < sent[dir] + bytes.len() && x != 0 {
                        bytes[at - sent[dir]] ^= x;
                        changed = true;
                    }
                }
            }
            sent[dir] += bytes.len();
            if !failed && feed(to, &mut rx, &bytes, chunk).is_err() {
                failed = true;
            }
        }
    }
    if !changed {
        assert!(!failed && client.is_open() && server.is_open());
        let mut tx = [0u8; 64];
        let n = server.write_message(&[b"imu 1"], false, &mut tx).unwrap();
        assert_eq!(feed(&mut client, &mut rx, &tx[..n], chunk), Ok(1));
        assert_eq!(&rx[..5], b"imu 1");
    }
});
