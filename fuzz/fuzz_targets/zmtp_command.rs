#![no_main]
//! ZMTP command bodies: READY properties, ERROR, SUBSCRIBE, CANCEL, PING, PONG.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::zmtp::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(Command::Ready(props)) = Command::parse(data) {
        for (name, value) in props.iter() {
            assert!(name.len() <= 255 && value.len() <= data.len());
        }
        let _ = props.socket_type();
        let _ = props.get(b"identity");
    }
});
