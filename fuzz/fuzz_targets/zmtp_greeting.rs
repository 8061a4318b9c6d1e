#![no_main]
//! The ZMTP greeting parser.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::zmtp::Greeting;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Greeting::parse(data) {
        assert_eq!(Greeting::parse(&g.to_bytes()), Ok(g));
        let _ = g.negotiated_minor();
    }
});
