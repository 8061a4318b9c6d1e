//! Shared by the firmware binaries: an in-memory link that plays the master's part with bytes
//! recorded from libzmq 4.3.4, the on-target codec checks, and a panic handler that exits QEMU
//! with a failure code.
#![no_std]
#![forbid(unsafe_code)]

pub mod loopback;
pub mod selftest;

/// Ends the QEMU run with `code` (0 = pass) through semihosting.
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // No message formatting: keeps core::fmt out of the footprint of the node firmware.
    exit(101)
}
