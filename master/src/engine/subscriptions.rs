//! One subscriber connection's subscriptions: a set of prefixes, as libzmq's XPUB keeps them per
//! connection (its trie holds a set of pipes per prefix): subscribing twice on one connection is
//! one subscription, and one cancel ends it. A libzmq SUB or XSUB counts duplicates itself and
//! only sends the last cancel.
//!
//! Subscribe and cancel cost O(1) (a hash index into the list); matching scans the list, which
//! is fastest for the one or two prefixes a subscriber holds, and the per-connection cap bounds
//! it for a peer that holds many. Only the master matches prefixes of many peers (a std
//! publisher sees one subscriber, the master), so this lives here and not in `core`.

use std::collections::HashMap;

use zerosmq_core::zmtp::Command;

#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    /// Every prefix, in no order (matching scans it).
    prefixes: Vec<Box<[u8]>>,
    /// Where each prefix sits in `prefixes`.
    index: HashMap<Box<[u8]>, usize>,
}

/// A subscription past the connection's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooMany;

/// A subscription change a subscriber sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change<'a> {
    Subscribe(&'a [u8]),
    Cancel(&'a [u8]),
}

impl<'a> Change<'a> {
    /// ZMTP 3.0's form, also sent by libzmq 4.3 on 3.1: a one-frame message `0x01 prefix` or
    /// `0x00 prefix`.
    pub(super) fn from_message(frame: &'a [u8]) -> Option<Self> {
        match frame.split_first()? {
            (1, prefix) => Some(Change::Subscribe(prefix)),
            (0, prefix) => Some(Change::Cancel(prefix)),
            _ => None,
        }
    }

    /// ZMTP 3.1's SUBSCRIBE and CANCEL commands.
    pub(super) fn from_command(command: &Command<'a>) -> Option<Self> {
        match *command {
            Command::Subscribe(prefix) => Some(Change::Subscribe(prefix)),
            Command::Cancel(prefix) => Some(Change::Cancel(prefix)),
            _ => None,
        }
    }
}

impl Subscriptions {
    /// Applies a change; a new prefix beyond `cap` held ones is refused.
    pub(super) fn apply(&mut self, change: Change<'_>, cap: usize) -> Result<(), TooMany> {
        match change {
            Change::Subscribe(prefix) => {
                if self.index.contains_key(prefix) {
                    return Ok(());
                }
                if self.prefixes.len() >= cap {
                    return Err(TooMany);
                }
                self.index.insert(prefix.into(), self.prefixes.len());
                self.prefixes.push(prefix.into());
            }
            Change::Cancel(prefix) => {
                let Some(i) = self.index.remove(prefix) else {
                    return Ok(());
                };
                self.prefixes.swap_remove(i);
                if let Some(moved) = self.prefixes.get(i) {
                    if let Some(at) = self.index.get_mut(moved) {
                        *at = i;
                    }
                }
                // A storm that was cancelled should not pin its memory.
                if self.prefixes.capacity() > 64
                    && self.prefixes.len() < self.prefixes.capacity() / 4
                {
                    self.prefixes.shrink_to(self.prefixes.len() * 2);
                    self.index.shrink_to(self.prefixes.len() * 2);
                }
            }
        }
        Ok(())
    }

    /// Prefixes held.
    pub(super) fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Whether a message whose first frame is `first` goes to this subscriber.
    pub(super) fn matches(&self, first: &[u8]) -> bool {
        self.prefixes.iter().any(|p| has_prefix(first, p))
    }
}

/// `bytes.starts_with(prefix)` as an inlined byte loop: prefixes are topics (at most 64 bytes),
/// and for those a `memcmp` call per message cost a quarter of the forwarder's time.
#[inline]
pub(super) fn has_prefix(bytes: &[u8], prefix: &[u8]) -> bool {
    prefix.len() <= bytes.len() && prefix.iter().zip(bytes).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_a_set() {
        let mut s = Subscriptions::default();
        assert!(!s.matches(b"clock 1"));
        s.apply(Change::from_message(b"\x01clock").unwrap(), 8)
            .unwrap();
        s.apply(Change::Subscribe(b"clock"), 8).unwrap();
        assert!(s.matches(b"clock 1") && !s.matches(b"cloc"));
        s.apply(Change::from_message(b"\x00clock").unwrap(), 8)
            .unwrap();
        assert!(
            !s.matches(b"clock 1"),
            "one cancel ends a duplicated subscription"
        );
        s.apply(Change::Cancel(b"never"), 8).unwrap();
        s.apply(Change::Subscribe(b""), 8).unwrap();
        assert!(s.matches(b"anything"));
        assert_eq!(Change::from_message(b"\x02x"), None);
        assert!(has_prefix(b"abc", b"ab") && has_prefix(b"abc", b"") && !has_prefix(b"ab", b"abc"));
    }

    #[test]
    fn cap_and_cancel_in_any_order() {
        let mut s = Subscriptions::default();
        for i in 0..100u32 {
            s.apply(Change::Subscribe(&i.to_be_bytes()), 100).unwrap();
        }
        assert_eq!(s.apply(Change::Subscribe(b"one more"), 100), Err(TooMany));
        assert_eq!(s.apply(Change::Subscribe(&7u32.to_be_bytes()), 100), Ok(()));
        for i in (0..100u32).filter(|i| i % 3 != 0) {
            s.apply(Change::Cancel(&i.to_be_bytes()), 100).unwrap();
        }
        assert_eq!(s.len(), 34);
        for i in 0..100u32 {
            let held = i % 3 == 0;
            assert_eq!(
                s.matches(&[&i.to_be_bytes()[..], b" payload"].concat()),
                held,
                "{i}"
            );
        }
        for i in (0..100u32).filter(|i| i % 3 == 0) {
            s.apply(Change::Cancel(&i.to_be_bytes()), 100).unwrap();
        }
        assert_eq!(s.len(), 0);
        assert!(s.index.is_empty() && !s.matches(b"\0\0\0\0"));
    }
}
