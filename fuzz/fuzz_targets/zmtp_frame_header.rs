#![no_main]
//! ZMTP frame header parsing (flags, short and long sizes).
use libfuzzer_sys::fuzz_target;
use zerosmq_core::zmtp::FrameHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok((h, n)) = FrameHeader::parse(data) {
        assert!(n <= data.len());
        let (bytes, m) = h.to_bytes();
        assert_eq!(FrameHeader::parse(&bytes[..m]), Ok((h, m)));
    }
});
