#![no_main]
//! A whole ZMTP connection (greeting, handshake, frames, commands) fed a peer's stream.
//! Byte 0 picks our socket type (low bits) and the mechanism (bit 7: PLAIN client, else NULL),
//! byte 1 the read size and receive buffer; the rest is the stream. Errors must be reported, never panics, and a fatal error must stop the connection.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::zmtp::{Connection, Event, PlainCredentials, SocketType};

fuzz_target!(|data: &[u8]| {
    let [kind, shape, stream @ ..] = data else {
        return;
    };
    let socket_type =
        [SocketType::Sub, SocketType::Pub, SocketType::Req][usize::from(*kind & 0x7f) % 3];
    let chunk = usize::from(shape & 0x0f) + 1;
    let rx_len = 64 + usize::from(shape >> 4) * 16;
    let mut rx = [0u8; 64 + 15 * 16];
    let rx = &mut rx[..rx_len];
    let mut tx = [0u8; 128];
    let plain = (kind & 0x80 != 0)
        .then(|| PlainCredentials::new("alice", "wonderland").ok())
        .flatten();
    let mut conn = Connection::with_mechanism(socket_type, plain);
    let mut input = stream;
    while !input.is_empty() {
        while let Ok(Some(n)) = conn.poll_transmit(&mut tx) {
            assert!(n <= tx.len());
        }
        let dst = conn.read_buffer(rx);
        let n = dst.len().min(chunk).min(input.len());
        if n == 0 {
            assert!(conn.is_closed());
            return;
        }
        dst[..n].copy_from_slice(&input[..n]);
        input = &input[n..];
        match conn.commit(n, rx) {
            Ok(Some(Event::Message { len, .. })) => assert!(len <= rx.len()),
            Ok(Some(Event::Subscribe { start, len } | Event::Cancel { start, len })) => {
                assert!(start + len <= rx.len())
            }
            Ok(_) => {}
            Err(e) if e.is_fatal() => {
                assert!(conn.is_closed());
                return;
            }
            Err(_) => {}
        }
    }
});
