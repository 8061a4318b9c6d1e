#![no_main]
//! The master's text request parser, and encode/decode agreement on what it accepts.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::control::text;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = text::decode_request(data) {
        let mut buf = [0u8; 512];
        let n = text::encode_request(&req, &mut buf).expect("a decoded request encodes");
        assert_eq!(text::decode_request(&buf[..n]).as_ref(), Ok(&req));
    }
});
