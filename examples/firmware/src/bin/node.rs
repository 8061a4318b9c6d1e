//! The footprint firmware: a node with a publisher and a subscriber on one topic, through the
//! loopback master (no printing, so the figures are the node's). Exits 0 when the messages
//! made the round trip.
#![no_std]
#![no_main]

use zerosmq_firmware::exit;
use zerosmq_firmware::loopback::{node_round_trip, Loopback};

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    let link = Loopback::new(64);
    exit(i32::from(node_round_trip(&link) != 0))
}
