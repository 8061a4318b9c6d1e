//! Validated, fixed-capacity names: [`Topic`] and [`NodeName`].
//!
//! A name is one word of printable ASCII (`0x21..=0x7E`) without `,`, `"` or `\`: the original
//! joins topic lists with commas and separates request words with spaces, so neither may appear
//! inside a name; quotes and backslashes are refused so that a name can always be quoted in the
//! Graphviz graph, a shell or a CSV file (Graphviz cannot quote a string ending in `\`).

use core::fmt;
use core::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::{MAX_NODE_NAME_LEN, MAX_TOPIC_LEN};

/// Why a string is not a valid name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than the limit.
    TooLong { len: usize, max: usize },
    /// A byte that is not printable ASCII, a space or a comma.
    InvalidByte { index: usize, byte: u8 },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("name is empty"),
            NameError::TooLong { len, max } => {
                write!(f, "name is {len} bytes long, the limit is {max}")
            }
            NameError::InvalidByte { index, byte } => write!(
                f,
                "byte 0x{byte:02x} at position {index} is not allowed (one word of printable ASCII without , \" or \\)"
            ),
        }
    }
}

impl core::error::Error for NameError {}

/// Checks `bytes` against the name rules without copying.
pub fn validate_name(bytes: &[u8], max: usize) -> Result<&str, NameError> {
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > max {
        return Err(NameError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    if let Some(index) = bytes.iter().position(|&b| !is_name_byte(b)) {
        return Err(NameError::InvalidByte {
            index,
            byte: bytes[index],
        });
    }
    // All bytes are ASCII, so this cannot fail; no unwrap on the path anyway.
    core::str::from_utf8(bytes).map_err(|e| NameError::InvalidByte {
        index: e.valid_up_to(),
        byte: bytes[e.valid_up_to()],
    })
}

const fn is_name_byte(b: u8) -> bool {
    b >= 0x21 && b <= 0x7e && b != b',' && b != b'"' && b != b'\\'
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(heapless::String<{ $max }>);

        impl $name {
            /// Longest valid name in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and copies `s`.
            pub fn new(s: &str) -> Result<Self, NameError> {
                Self::from_bytes(s.as_bytes())
            }

            /// Validates and copies `bytes`.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, NameError> {
                let s = validate_name(bytes, $max)?;
                let mut out = heapless::String::new();
                // Length checked above; the error arm is unreachable but costs nothing.
                out.push_str(s).map_err(|_| NameError::TooLong { len: s.len(), max: $max })?;
                Ok(Self(out))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                self.as_str().as_bytes()
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <&'de str>::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A topic: one word of printable ASCII, at most [`MAX_TOPIC_LEN`] bytes, no `,` `"` `\\`.
    Topic,
    MAX_TOPIC_LEN
);

name_type!(
    /// A node name: one word of printable ASCII, at most [`MAX_NODE_NAME_LEN`] bytes, no `,` `"` `\\`.
    ///
    /// The original used a script's file name (`pub1.py`); the graph shows the part before the
    /// first `.`, see [`NodeName::short`].
    NodeName,
    MAX_NODE_NAME_LEN
);

impl NodeName {
    /// The part before the first `.`, as the original graph shows it (`pub1.py` -> `pub1`).
    pub fn short(&self) -> &str {
        let s = self.as_str();
        match s.find('.') {
            Some(0) | None => s,
            Some(i) => &s[..i],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_words() {
        assert_eq!(
            Topic::new("sensor/temp_1").unwrap().as_str(),
            "sensor/temp_1"
        );
        assert_eq!(Topic::new(&"x".repeat(64)).unwrap().len(), 64);
        assert_eq!(NodeName::new("pub1.py").unwrap().short(), "pub1");
        assert_eq!(NodeName::new(".hidden").unwrap().short(), ".hidden");
    }

    #[test]
    fn refuses_bad_names() {
        for (bad, index) in [("a\"b", 1), ("ab\\", 2), ("a,", 1), ("x y", 1)] {
            let byte = bad.as_bytes()[index];
            assert_eq!(Topic::new(bad), Err(NameError::InvalidByte { index, byte }));
        }
        assert_eq!(Topic::new(""), Err(NameError::Empty));
        assert_eq!(
            Topic::new(&"x".repeat(65)),
            Err(NameError::TooLong { len: 65, max: 64 })
        );
        assert_eq!(
            Topic::new("a b"),
            Err(NameError::InvalidByte {
                index: 1,
                byte: b' '
            })
        );
        assert_eq!(
            Topic::new("a,b"),
            Err(NameError::InvalidByte {
                index: 1,
                byte: b','
            })
        );
        assert_eq!(
            Topic::from_bytes(b"a\xffb"),
            Err(NameError::InvalidByte {
                index: 1,
                byte: 0xff
            })
        );
        assert_eq!(
            Topic::new("é"),
            Err(NameError::InvalidByte {
                index: 0,
                byte: 0xc3
            })
        );
        assert_eq!(
            Topic::new("\t"),
            Err(NameError::InvalidByte {
                index: 0,
                byte: b'\t'
            })
        );
    }
}
