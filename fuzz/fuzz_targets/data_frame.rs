#![no_main]
//! Data frame splitting and building: `TOPIC SP PAYLOAD`.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::message::{build_frame, DataFrame};

fuzz_target!(|data: &[u8]| {
    let _ = DataFrame::payload_for(data, "imu");
    if let Ok(frame) = DataFrame::split(data) {
        let mut buf = vec![0u8; data.len()];
        let built = frame.build(&mut buf).expect("same length fits");
        assert_eq!(built, data);
        let mut small = [0u8; 8];
        let _ = build_frame(frame.topic, frame.payload, &mut small);
    }
});
