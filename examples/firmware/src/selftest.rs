//! The codec checks run on target: greeting, handshake and frames against bytes recorded from
//! libzmq 4.3.4, in every fragmentation from one byte up.

use zerosmq_core::zmtp::{
    command, Connection, Decoded, Event, FrameDecoder, FrameHeader, Greeting, PlainCredentials,
    SocketType, ZmtpError,
};

use crate::loopback::{PUB, REP, SUB_V30, SUB_V31, XPUB};

/// One check: its name and whether it passed.
pub type Check = (&'static str, fn() -> bool);

pub const CHECKS: &[Check] = &[
    ("greeting: ours, exact bytes", greeting_ours),
    (
        "greeting: recorded libzmq greetings parse as 3.1 NULL",
        greeting_libzmq,
    ),
    (
        "decoder: recorded PUB stream in 1..64-byte fragments",
        decoder_fragments,
    ),
    (
        "decoder: oversized frame skipped, stream stays in sync",
        decoder_oversized,
    ),
    (
        "handshake: SUB against recorded XPUB, message delivered",
        sub_against_xpub,
    ),
    (
        "PLAIN: SUB against recorded PLAIN XPUB, then a refusal",
        plain_sub_against_xpub,
    ),
    (
        "handshake: PUB sees SUBSCRIBE (3.1) and 0x01 (3.0) forms",
        pub_sees_subscriptions,
    ),
    (
        "handshake: REQ reads the recorded REP reply",
        req_against_rep,
    ),
    (
        "encoder: READY, SUBSCRIBE, CANCEL, PONG exact bytes",
        encoder_bytes,
    ),
    (NODE_CHECKS[0], || {
        crate::loopback::node_round_trip(&crate::loopback::Loopback::new(1)) == 0
    }),
    (NODE_CHECKS[1], || {
        crate::loopback::node_round_trip(&crate::loopback::Loopback::new(7)) == 0
    }),
    (NODE_CHECKS[2], || {
        crate::loopback::node_round_trip(&crate::loopback::Loopback::new(64)) == 0
    }),
];

#[cfg(not(feature = "curve-recorded"))]
const NODE_CHECKS: [&str; 3] = [
    "node: publisher + subscriber via loopback, 1-byte reads",
    "node: publisher + subscriber via loopback, 7-byte reads",
    "node: publisher + subscriber via loopback, 64-byte reads",
];
/// The far ends replay libzmq's CURVE REP, SUB and XPUB (recorded with the node's keys and seed).
#[cfg(feature = "curve-recorded")]
const NODE_CHECKS: [&str; 3] = [
    "node: CURVE grants, publisher + subscriber vs recorded libzmq, 1-byte reads",
    "node: CURVE grants, publisher + subscriber vs recorded libzmq, 7-byte reads",
    "node: CURVE grants, publisher + subscriber vs recorded libzmq, 64-byte reads",
];

fn greeting_ours() -> bool {
    let g = Greeting::ours().to_bytes();
    g[0] == 0xFF && g[9] == 0x7F && g[10..12] == [3, 1] && &g[12..16] == b"NULL"
}

fn greeting_libzmq() -> bool {
    [PUB, XPUB, REP, SUB_V31, SUB_V30].iter().all(|s| {
        matches!(Greeting::parse(&s[..64]), Ok(g) if g.negotiated_minor() == 1 && g.mechanism_name() == b"NULL")
    })
}

fn decoder_fragments() -> bool {
    [1usize, 2, 3, 7, 64].iter().all(|&chunk| {
        let mut dec = FrameDecoder::new();
        let mut rx = [0u8; 64];
        let mut input = PUB;
        let mut seen = 0;
        while !input.is_empty() {
            let dst = dec.read_buffer(&mut rx);
            let n = dst.len().min(chunk).min(input.len());
            if n == 0 {
                return false;
            }
            dst[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            let ok = match (seen, dec.commit(n, &rx)) {
                (_, Ok(None)) => continue,
                (0, Ok(Some(Decoded::Greeting(g)))) => g.minor == 1,
                (1, Ok(Some(Decoded::Frame(h)))) => h == FrameHeader::command(25),
                (2, Ok(Some(Decoded::Frame(h)))) => &rx[..h.len as usize] == b"imu hello",
                _ => false,
            };
            if !ok {
                return false;
            }
            seen += 1;
        }
        seen == 3
    })
}

fn decoder_oversized() -> bool {
    let mut stream = [0u8; 2 + 100 + 5];
    stream[..2].copy_from_slice(&[0x00, 100]);
    stream[102..].copy_from_slice(&[0x00, 3, b'a', b'b', b'c']);
    let mut dec = FrameDecoder::after_greeting();
    let mut rx = [0u8; 64];
    let mut input = &stream[..];
    let (mut skipped, mut got) = (false, false);
    while !input.is_empty() {
        let dst = dec.read_buffer(&mut rx);
        let n = dst.len().min(9).min(input.len());
        dst[..n].copy_from_slice(&input[..n]);
        input = &input[n..];
        match dec.commit(n, &rx) {
            Err(ZmtpError::FrameTooLarge { header, .. }) => skipped = header.len == 100,
            Ok(Some(Decoded::Frame(h))) => got = &rx[..h.len as usize] == b"abc",
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    skipped && got
}

/// Feeds `stream` to a connection in `chunk`-byte pieces; calls `on` for every event.
fn drive(
    conn: &mut Connection,
    stream: &[u8],
    chunk: usize,
    mut on: impl FnMut(Event, &[u8]),
) -> bool {
    let mut rx = [0u8; 64];
    let mut input = stream;
    while !input.is_empty() {
        let dst = conn.read_buffer(&mut rx);
        let n = dst.len().min(chunk).min(input.len());
        if n == 0 {
            return false;
        }
        dst[..n].copy_from_slice(&input[..n]);
        input = &input[n..];
        match conn.commit(n, &rx) {
            Ok(Some(ev)) => on(ev, &rx),
            Ok(None) => {}
            Err(_) => return false,
        }
    }
    true
}

fn sub_against_xpub() -> bool {
    [1, 5, 64].iter().all(|&chunk| {
        let mut c = Connection::new(SocketType::Sub);
        let mut tx = [0u8; 64];
        let greeting_sent = matches!(c.poll_transmit(&mut tx), Ok(Some(64)));
        let mut events = 0;
        let mut ok = drive(&mut c, XPUB, chunk, |ev, rx| match (events, ev) {
            (
                0,
                Event::Ready {
                    peer: SocketType::XPub,
                    minor: 1,
                },
            ) => events += 1,
            (
                1,
                Event::Message {
                    len: 9,
                    more: false,
                },
            ) if &rx[..9] == b"imu hello" => events += 1,
            _ => events += 10,
        });
        let ready = c.poll_transmit(&mut tx);
        ok &= matches!(ready, Ok(Some(27))) && tx[..27] == SUB_V31[64..91];
        greeting_sent && ok && events == 2
    })
}

const PLAIN_XPUB: &[u8] = include_bytes!("../../../core/src/zmtp/testdata/libzmq-plain-xpub.bin");
const PLAIN_REFUSED: &[u8] =
    include_bytes!("../../../core/src/zmtp/testdata/libzmq-plain-xpub-refused.bin");

fn plain_sub_against_xpub() -> bool {
    let Ok(alice) = PlainCredentials::new("alice", "wonderland") else {
        return false;
    };
    [1, 5, 64].iter().all(|&chunk| {
        let mut c = Connection::plain(SocketType::Sub, alice);
        let mut tx = [0u8; 64];
        let mut sent = 0;
        let mut ready = false;
        let mut input = PLAIN_XPUB;
        let mut rx = [0u8; 64];
        while !input.is_empty() {
            while let Ok(Some(_)) = c.poll_transmit(&mut tx) {
                sent += 1;
            }
            let dst = c.read_buffer(&mut rx);
            let n = dst.len().min(chunk).min(input.len());
            if n == 0 {
                return false;
            }
            dst[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            match c.commit(n, &rx) {
                Ok(Some(Event::Ready {
                    peer: SocketType::XPub,
                    ..
                })) => ready = true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        let mut refused = Connection::plain(SocketType::Sub, alice);
        let mut status = 0;
        let mut input = PLAIN_REFUSED;
        while !input.is_empty() && status == 0 {
            let dst = refused.read_buffer(&mut rx);
            let n = dst.len().min(chunk).min(input.len());
            dst[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            match refused.commit(n, &rx) {
                Err(ZmtpError::AuthFailed { status: s }) => status = s,
                Err(_) => return false,
                Ok(_) => {}
            }
        }
        ready && sent == 3 && status == 400 && refused.is_closed()
    })
}

fn pub_sees_subscriptions() -> bool {
    [SUB_V31, SUB_V30].iter().all(|stream| {
        let mut c = Connection::new(SocketType::Pub);
        let mut subscribed = false;
        let ok = drive(&mut c, stream, 1, |ev, rx| {
            if let Event::Subscribe { start, len } = ev {
                subscribed = &rx[start..start + len] == b"imu";
            }
        });
        ok && subscribed
    })
}

fn req_against_rep() -> bool {
    let mut c = Connection::new(SocketType::Req);
    let mut frames = 0;
    let mut body_ok = false;
    let ok = drive(&mut c, REP, 3, |ev, rx| {
        if let Event::Message { len, more } = ev {
            frames += 1;
            if !more {
                body_ok = &rx[..len] == b"REQUEST GRANT 6000";
            }
        }
    });
    ok && frames == 2 && body_ok
}

fn encoder_bytes() -> bool {
    let mut b = [0u8; 64];
    let ready =
        command::encode_ready(SocketType::Sub, b"", &mut b) == Ok(27) && b[..27] == SUB_V31[64..91];
    let sub = command::encode_subscribe(b"imu", &mut b) == Ok(15)
        && &b[..15] == b"\x04\x0d\x09SUBSCRIBEimu";
    let cancel =
        command::encode_cancel(b"imu", &mut b) == Ok(12) && &b[..12] == b"\x04\x0a\x06CANCELimu";
    let pong = command::encode_pong(b"ab", &mut b) == Ok(9) && &b[..9] == b"\x04\x07\x04PONGab";
    ready && sub && cancel && pong
}
