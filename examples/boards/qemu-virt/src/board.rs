//! QEMU `virt` (RV32) peripherals at their fixed addresses: the CLINT timer (clock and wake-up),
//! the NS16550A UART (the firmware's report), the SiFive test device (exit code), the PLIC (the
//! network card's interrupt wakes the hart from `wfi`) and the virtio-mmio slots.

use core::fmt;
use core::ptr::{read_volatile, write_volatile};

/// CLINT `mtime`, 10 MHz on QEMU virt.
const MTIME: usize = 0x0200_bff8;
/// CLINT `mtimecmp` of hart 0.
const MTIMECMP: usize = 0x0200_4000;
const MTIME_PER_US: u64 = 10;
const UART: usize = 0x1000_0000;
/// SiFive test device: writing `0x5555` ends QEMU with status 0, `code << 16 | 0x3333` with `code`.
const FINISHER: usize = 0x0010_0000;
const PLIC: usize = 0x0c00_0000;
/// Enable bits of context 0 (hart 0, machine mode).
const PLIC_ENABLE: usize = PLIC + 0x2000;
const PLIC_THRESHOLD: usize = PLIC + 0x20_0000;
const PLIC_CLAIM: usize = PLIC + 0x20_0004;
/// First virtio-mmio slot; QEMU virt has 8, 0x1000 apart, on PLIC interrupts 1 to 8.
pub const VIRTIO_MMIO_BASE: usize = 0x1000_1000;
pub const VIRTIO_MMIO_SLOTS: usize = 8;
pub const VIRTIO_MMIO_SIZE: usize = 0x1000;

fn read32(addr: usize) -> u32 {
    // SAFETY: only called with the addresses above, device registers QEMU virt maps at
    // these fixed addresses; volatile, aligned 32-bit reads have no other effect.
    unsafe { read_volatile(addr as *const u32) }
}

fn write32(addr: usize, value: u32) {
    // SAFETY: as in `read32`; nothing in Rust's memory aliases these registers.
    unsafe { write_volatile(addr as *mut u32, value) }
}

/// Microseconds since reset.
pub fn now_us() -> u64 {
    // The 64-bit counter read as two halves: retry if the high half moved in between.
    loop {
        let hi = read32(MTIME + 4);
        let lo = read32(MTIME);
        if read32(MTIME + 4) == hi {
            return ((u64::from(hi) << 32) | u64::from(lo)) / MTIME_PER_US;
        }
    }
}

/// The node's clock (`Node::with_clock`).
pub struct Clock;

impl zerosmq_embedded::Clock for Clock {
    fn now_ms(&self) -> u64 {
        now_us() / 1000
    }
}

/// `mie` bits: machine timer (7) and machine external (11) interrupts. Only enabled in `mie`,
/// never globally (`mstatus.MIE` stays 0): they wake `wfi` but no trap is ever taken.
const MIE_WAKE: usize = (1 << 7) | (1 << 11);

/// Lets PLIC interrupt `irq` (the network card's) wake the hart.
pub fn enable_wake_on_irq(irq: u32) {
    write32(PLIC + 4 * irq as usize, 1);
    let word = PLIC_ENABLE + 4 * (irq as usize / 32);
    write32(word, read32(word) | 1 << (irq % 32));
    write32(PLIC_THRESHOLD, 0);
    // SAFETY: sets two interrupt-enable bits of `mie`; with `mstatus.MIE` clear no interrupt
    // is taken, so no handler runs and no memory is touched.
    unsafe { core::arch::asm!("csrs mie, {0}", in(reg) MIE_WAKE) };
}

/// Sleeps until an enabled interrupt is pending or `until_us` (timer) has come.
pub fn sleep_until(until_us: u64) {
    let cmp = until_us.saturating_mul(MTIME_PER_US);
    // Raise the high half first, so no intermediate value lies in the past.
    write32(MTIMECMP + 4, u32::MAX);
    write32(MTIMECMP, cmp as u32);
    write32(MTIMECMP + 4, (cmp >> 32) as u32);
    if now_us() < until_us {
        // SAFETY: `wfi` only stalls the hart until an interrupt is pending; it touches no memory.
        unsafe { core::arch::asm!("wfi") };
    }
    // Disarm the timer so its interrupt stops being pending.
    write32(MTIMECMP + 4, u32::MAX);
}

/// The highest pending PLIC interrupt, now claimed: acknowledge it at the device, then call
/// [`complete_irq`].
pub fn claim_irq() -> Option<u32> {
    match read32(PLIC_CLAIM) {
        0 => None,
        irq => Some(irq),
    }
}

/// Tells the PLIC that `irq` was handled.
pub fn complete_irq(irq: u32) {
    write32(PLIC_CLAIM, irq);
}

/// Ends the QEMU run with `code` (0 for success).
pub fn exit(code: u16) -> ! {
    let value = if code == 0 {
        0x5555
    } else {
        u32::from(code) << 16 | 0x3333
    };
    write32(FINISHER, value);
    loop {
        // SAFETY: as in `sleep_until`.
        unsafe { core::arch::asm!("wfi") };
    }
}

/// The UART: what the firmware reports, one line per event (QEMU `-serial`).
pub struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // Line status bit 5: the transmit holding register is empty.
            // SAFETY: the NS16550A's byte registers at their fixed address.
            unsafe {
                while read_volatile((UART + 5) as *const u8) & 0x20 == 0 {}
                write_volatile(UART as *mut u8, b);
            }
        }
        Ok(())
    }
}

/// Writes one line on the UART.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::board::Uart, $($arg)*);
    }};
}
