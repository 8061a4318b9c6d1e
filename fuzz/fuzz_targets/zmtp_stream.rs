#![no_main]
//! The master's stream splitter: any bytes, cut anywhere, with any limits: a unit or an error,
//! every range inside the buffer, and walking a buffer unit by unit always advances.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::zmtp::stream::{next_unit, Unit};
use zerosmq_core::zmtp::GREETING_LEN;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, mut buf)) = data.split_first() else {
        return;
    };
    let greeting = knobs & 1 == 1;
    let max_frame = if knobs & 2 == 2 { 300 } else { u64::MAX };
    let max_message = if knobs & 4 == 4 { 500 } else { usize::MAX };
    let mut first = true;
    loop {
        match next_unit(buf, greeting && first, max_frame, max_message) {
            Ok(Unit::Incomplete { need }) => {
                assert!(need > buf.len());
                return;
            }
            Ok(Unit::Greeting) => {
                assert!(buf.len() >= GREETING_LEN);
                buf = &buf[GREETING_LEN..];
            }
            Ok(Unit::Command { end, body }) => {
                assert!(body.start <= body.end && body.end == end && end > 0 && end <= buf.len());
                buf = &buf[end..];
            }
            Ok(Unit::CommandInMessage { frame, body }) => {
                assert!(frame.start > 0 && body.end == frame.end && frame.end <= buf.len());
                return;
            }
            Ok(Unit::Message {
                wire,
                first: f,
                frames,
                body_len,
            }) => {
                assert!(wire.start == 0 && wire.end > 0 && wire.end <= buf.len());
                assert!(f.end <= wire.end && frames >= 1);
                assert!(body_len <= wire.end as u64);
                buf = &buf[wire.end..];
            }
            Err(_) => return,
        }
        first = false;
    }
});
