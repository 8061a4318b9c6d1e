//! One subscriber connection's subscriptions: a set of prefixes, as libzmq's XPUB keeps them per
//! connection (its trie holds a set of pipes per prefix): subscribing twice on one connection is
//! one subscription, and one cancel ends it. A libzmq SUB or XSUB counts duplicates itself and
//! only sends the last cancel.

use zerosmq_core::zmtp::Command;

#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    prefixes: Vec<Vec<u8>>,
}

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
    pub(super) fn apply(&mut self, change: Change<'_>) {
        match change {
            Change::Subscribe(prefix) => {
                if !self.prefixes.iter().any(|p| p == prefix) {
                    self.prefixes.push(prefix.to_vec());
                }
            }
            Change::Cancel(prefix) => self.prefixes.retain(|p| p != prefix),
        }
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
        s.apply(Change::from_message(b"\x01clock").unwrap());
        s.apply(Change::Subscribe(b"clock"));
        assert!(s.matches(b"clock 1") && !s.matches(b"cloc"));
        s.apply(Change::from_message(b"\x00clock").unwrap());
        assert!(
            !s.matches(b"clock 1"),
            "one cancel ends a duplicated subscription"
        );
        s.apply(Change::Cancel(b"never"));
        s.apply(Change::Subscribe(b""));
        assert!(s.matches(b"anything"));
        assert_eq!(Change::from_message(b"\x02x"), None);
        assert!(has_prefix(b"abc", b"ab") && has_prefix(b"abc", b"") && !has_prefix(b"ab", b"abc"));
    }
}
