//! On-target self-test: runs every codec and node check, prints one line per check over
//! semihosting, and exits QEMU with 0 when all passed, 1 otherwise.
#![no_std]
#![no_main]

use semihosting::println;
use zerosmq_firmware::loopback::Loopback;
use zerosmq_firmware::{exit, selftest::CHECKS};

const PAINT: u32 = 0xA5A5_A5A5;
const PAINT_DEPTH: usize = 16 * 1024;

/// Runs `f` on a painted stack and returns how deep it wrote below this frame.
#[inline(never)]
fn measure_stack(f: impl FnOnce() -> u32) -> (u32, usize) {
    let marker = 0u32;
    // Stay clear of this function's own frame.
    let top = (core::ptr::addr_of!(marker) as usize - 256) & !3;
    let bottom = top - PAINT_DEPTH;
    for addr in (bottom..top).step_by(4) {
        // SAFETY: the region is free stack below the current frame (64 KiB RAM, no statics),
        // painted before `f` runs and only read back after it returned.
        unsafe { core::ptr::write_volatile(addr as *mut u32, PAINT) };
    }
    let result = core::hint::black_box(f)();
    let deepest = (bottom..top)
        .step_by(4)
        // SAFETY: as above.
        .find(|&addr| unsafe { core::ptr::read_volatile(addr as *const u32) } != PAINT)
        .unwrap_or(top);
    (result, top - deepest + 256)
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    let mut failed = 0;
    for (name, check) in CHECKS {
        let ok = check();
        println!("{} {}", if ok { "ok  " } else { "FAIL" }, name);
        failed += usize::from(!ok);
    }
    // The node's state without user buffers, as laid out on this target (footprint.sh reads it).
    use core::mem::size_of;
    type Link<'a> = &'a Loopback;
    println!(
        "state: zmtp::Connection {} bytes",
        size_of::<zerosmq_core::zmtp::Connection>()
    );
    println!(
        "state: Node {} bytes",
        size_of::<zerosmq_embedded::Node<Link<'static>>>()
    );
    println!(
        "state: Publisher {} bytes",
        size_of::<zerosmq_embedded::Publisher<'static, 'static, Link<'static>>>()
    );
    println!(
        "state: Subscriber {} bytes",
        size_of::<zerosmq_embedded::Subscriber<'static, 'static, Link<'static>>>()
    );
    // Peak stack of the node with a publisher and a subscriber (their 2 x 128-byte buffers
    // included, the loopback "master" excluded: it lives in this frame).
    let link = Loopback::new(64);
    let (round_trip_failures, stack) =
        measure_stack(|| zerosmq_firmware::loopback::node_round_trip(&link));
    failed += usize::from(round_trip_failures != 0);
    println!("stack: node round trip peak {} bytes", stack);
    println!("{} passed, {} failed", CHECKS.len() - failed, failed);
    exit(i32::from(failed != 0))
}
