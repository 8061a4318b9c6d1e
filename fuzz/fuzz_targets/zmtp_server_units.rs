#![no_main]
//! A server-side `Connection` (NULL, PLAIN server or CURVE server) driven as the master drives
//! it: the stream is split by `stream::next_unit` and handed over whole with
//! `on_greeting_bytes` / `on_frame_bytes`, credentials are admitted or refused, and messages go
//! through the REP envelope splitter. Byte 0: bits 0-1 the mechanism, bit 2 whether admission
//! says yes, bits 3-5 our socket type. The rest is the peer's stream; a PLAIN or NULL stream
//! starts with a valid greeting of its mechanism when bit 6 is set, so the fuzzer reaches the
//! frames quickly. Never a panic; every event's range is inside its frame; a fatal error closes
//! the connection, and a closed connection stays closed.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::zmtp::curve::{CurveKeyPair, ReplayRng};
use zerosmq_core::zmtp::envelope::split_request;
use zerosmq_core::zmtp::stream::{next_unit, Unit};
use zerosmq_core::zmtp::{
    Connection, Event, FrameHeader, Greeting, SocketType, ZmtpError, GREETING_LEN,
};

const TYPES: [SocketType; 6] = [
    SocketType::Rep,
    SocketType::Router,
    SocketType::Sub,
    SocketType::XPub,
    SocketType::Pub,
    SocketType::Dealer,
];

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let ours = TYPES[usize::from(knobs >> 3 & 7) % TYPES.len()];
    let admit = knobs & 4 != 0;
    let (mut conn, mechanism): (Connection, &[u8]) = match knobs & 3 {
        0 => (Connection::new(ours), b"NULL"),
        1 => (Connection::plain_server(ours), b"PLAIN"),
        _ => {
            let mut rng = ReplayRng(u64::from(knobs));
            let keys = CurveKeyPair::generate(&mut rng);
            (Connection::curve_server(ours, keys, &mut rng), b"CURVE")
        }
    };
    let mut buf = Vec::with_capacity(stream.len() + GREETING_LEN);
    if knobs & 64 != 0 {
        buf.extend_from_slice(&Greeting::ours_with(mechanism).to_bytes());
    }
    buf.extend_from_slice(stream);
    let mut tx = [0u8; 512];
    let mut at = 0;
    let mut greeted = false;
    loop {
        while let Ok(Some(n)) = conn.poll_transmit(&mut tx) {
            assert!(n <= tx.len());
        }
        let unit = match next_unit(&buf[at..], !greeted, 4096, 1 << 16) {
            Ok(Unit::Incomplete { need }) => {
                assert!(need > buf.len() - at);
                return;
            }
            Ok(u) => u,
            Err(_) => return,
        };
        let result = match unit {
            Unit::Incomplete { .. } => unreachable!(),
            Unit::Greeting => {
                greeted = true;
                let r = conn.on_greeting_bytes(&buf[at..at + GREETING_LEN]);
                at += GREETING_LEN;
                r.map(|()| None)
            }
            Unit::Command { end, .. } => {
                let r = frame(&mut conn, &mut buf[at..at + end], admit);
                at += end;
                r
            }
            Unit::CommandInMessage { frame: f, .. } => {
                let r = frame(&mut conn, &mut buf[at + f.start..at + f.end], admit);
                buf.drain(at + f.start..at + f.end);
                r
            }
            Unit::Message { wire, .. } => {
                if let Ok(r) = split_request(&buf[at..at + wire.end]) {
                    assert!(r.envelope.end <= r.body.start && r.body.end <= wire.end);
                    assert!(r.frames >= 1);
                }
                let mut from = at;
                let end = at + wire.end;
                let mut last = Ok(None);
                while from < end {
                    let Ok((h, n)) = FrameHeader::parse(&buf[from..end]) else {
                        break;
                    };
                    let to = from + n + h.len as usize;
                    last = frame(&mut conn, &mut buf[from..to], admit);
                    if last.is_err() {
                        break;
                    }
                    from = to;
                }
                at = end;
                last
            }
        };
        match result {
            Err(e) if e.is_fatal() => {
                assert!(conn.is_closed(), "{e:?}");
                assert!(conn.on_greeting_bytes(&[0xff; GREETING_LEN]).is_err());
                return;
            }
            _ => {}
        }
    }
});

/// One whole frame; admission when the connection waits for it.
fn frame(conn: &mut Connection, frame: &mut [u8], admit: bool) -> Result<Option<Event>, ZmtpError> {
    // `next_unit` parsed this header already.
    let Ok((header, n)) = FrameHeader::parse(frame) else {
        return Ok(None);
    };
    let body = &mut frame[n..];
    let len = body.len();
    let event = conn.on_frame_bytes(header, body)?;
    match event {
        Some(Event::Message { len: l, .. }) => assert!(l <= len),
        Some(Event::Subscribe { start, len: l } | Event::Cancel { start, len: l }) => {
            assert!(start + l <= len)
        }
        _ => {}
    }
    if conn.awaits_admission() {
        if conn.curve_client_key().is_some() {
            return conn.admit(admit).map(Some);
        }
        assert!(conn.plain_credentials(body).is_some());
        conn.admit_plain(admit)?;
    }
    Ok(event)
}
