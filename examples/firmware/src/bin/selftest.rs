//! On-target self-test: runs every codec and node check, prints one line per check over
//! semihosting, and exits QEMU with 0 when all passed, 1 otherwise.
#![no_std]
#![no_main]

use semihosting::println;
use zerosmq_firmware::{exit, selftest::CHECKS};

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    let mut failed = 0;
    for (name, check) in CHECKS {
        let ok = check();
        println!("{} {}", if ok { "ok  " } else { "FAIL" }, name);
        failed += usize::from(!ok);
    }
    println!("{} passed, {} failed", CHECKS.len() - failed, failed);
    exit(i32::from(failed != 0))
}
