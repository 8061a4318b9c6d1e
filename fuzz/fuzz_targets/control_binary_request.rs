#![no_main]
//! The binary (postcard) request decoder, and the top-level decoder that picks an encoding.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::control::{binary, decode_request};
use zerosmq_core::limits::TYPED_REQUEST_BUF_LEN;

fuzz_target!(|data: &[u8]| {
    let _ = decode_request(data);
    if let Ok(req) = binary::decode_request(data) {
        // Typed publish requests (with their schema bytes) are the longest.
        let mut buf = [0u8; TYPED_REQUEST_BUF_LEN];
        let n = binary::encode_request(&req, &mut buf).expect("a decoded request encodes");
        assert_eq!(binary::decode_request(&buf[..n]).as_ref(), Ok(&req));
    }
});
