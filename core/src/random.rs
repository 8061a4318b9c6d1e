//! Random identifiers for hosts (feature `std`): node sessions, master epochs, probe nonces.
//!
//! std's hasher keys are random per process; hashing the time and the process id with them
//! gives numbers that differ between runs and processes, without another dependency. Not for
//! cryptography.

use std::hash::{BuildHasher as _, Hasher as _};

/// A number that differs between calls, runs and processes.
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}
