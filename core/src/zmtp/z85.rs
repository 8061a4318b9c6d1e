//! Z85 (ZeroMQ RFC 32): 4 bytes as 5 printable characters; how CURVE keys are written in text.
//!
//! Encoders write into the caller's slice; lengths must be multiples of 4 (binary) and 5 (text),
//! as RFC 32 requires (no padding). A 32-byte key is 40 characters: [`encode_key`] /
//! [`decode_key`].

use core::fmt;

const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Length of a 32-byte key in Z85.
pub const KEY_TEXT_LEN: usize = 40;

/// Why Z85 encoding or decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Z85Error {
    /// Binary input is not a multiple of 4 bytes, or text not a multiple of 5 characters.
    BadLength,
    /// The output slice is too short.
    BufferTooSmall,
    /// A character outside the Z85 alphabet, at this offset.
    BadCharacter(usize),
    /// A group of 5 characters encodes a value above 2^32 - 1, at this offset.
    Overflow(usize),
}

impl fmt::Display for Z85Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Z85Error::BadLength => f.write_str("Z85 needs 4-byte groups (5 characters each)"),
            Z85Error::BufferTooSmall => f.write_str("buffer too small for the Z85 output"),
            Z85Error::BadCharacter(at) => write!(f, "not a Z85 character at offset {at}"),
            Z85Error::Overflow(at) => write!(f, "Z85 group at offset {at} is above 2^32 - 1"),
        }
    }
}

impl core::error::Error for Z85Error {}

/// Encodes `data` (a multiple of 4 bytes) into `out`; returns the text's length.
pub fn encode(data: &[u8], out: &mut [u8]) -> Result<usize, Z85Error> {
    if data.len() % 4 != 0 {
        return Err(Z85Error::BadLength);
    }
    let len = data.len() / 4 * 5;
    let out = out.get_mut(..len).ok_or(Z85Error::BufferTooSmall)?;
    for (group, text) in data.chunks_exact(4).zip(out.chunks_exact_mut(5)) {
        let mut value = u32::from_be_bytes([group[0], group[1], group[2], group[3]]);
        for c in text.iter_mut().rev() {
            *c = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
    }
    Ok(len)
}

fn digit(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Decodes `text` (a multiple of 5 characters) into `out`; returns the data's length.
pub fn decode(text: &[u8], out: &mut [u8]) -> Result<usize, Z85Error> {
    if text.len() % 5 != 0 {
        return Err(Z85Error::BadLength);
    }
    let len = text.len() / 5 * 4;
    let out = out.get_mut(..len).ok_or(Z85Error::BufferTooSmall)?;
    for (i, (group, data)) in text
        .chunks_exact(5)
        .zip(out.chunks_exact_mut(4))
        .enumerate()
    {
        let mut value: u64 = 0;
        for (j, &c) in group.iter().enumerate() {
            let d = digit(c).ok_or(Z85Error::BadCharacter(i * 5 + j))?;
            value = value * 85 + u64::from(d);
        }
        let value = u32::try_from(value).map_err(|_| Z85Error::Overflow(i * 5))?;
        data.copy_from_slice(&value.to_be_bytes());
    }
    Ok(len)
}

/// A 32-byte key as its 40 Z85 characters.
pub fn encode_key(key: &[u8; 32]) -> [u8; KEY_TEXT_LEN] {
    let mut out = [0u8; KEY_TEXT_LEN];
    // 32 is a multiple of 4 and `out` has exactly the room: this cannot fail.
    let _ = encode(key, &mut out);
    out
}

/// A key from its 40 Z85 characters (surrounding ASCII whitespace is ignored, as in key files).
pub fn decode_key(text: &[u8]) -> Result<[u8; 32], Z85Error> {
    let text = text.trim_ascii();
    if text.len() != KEY_TEXT_LEN {
        return Err(Z85Error::BadLength);
    }
    let mut key = [0u8; 32];
    decode(text, &mut key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc32_test_vector() {
        let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        let mut text = [0u8; 10];
        assert_eq!(encode(&data, &mut text), Ok(10));
        assert_eq!(&text, b"HelloWorld");
        let mut back = [0u8; 8];
        assert_eq!(decode(b"HelloWorld", &mut back), Ok(8));
        assert_eq!(back, data);
    }

    #[test]
    fn key_round_trip_matches_pyzmq() {
        // pyzmq's zmq.utils.z85.encode of these 32 bytes (RFC 32's key example).
        let key = [
            0x8E, 0x0B, 0xDD, 0x69, 0x76, 0x28, 0xB9, 0x1D, 0x8F, 0x24, 0x55, 0x87, 0xEE, 0x95,
            0xC5, 0xB0, 0x4D, 0x48, 0x96, 0x3F, 0x79, 0x25, 0x98, 0x77, 0xB4, 0x9C, 0xD9, 0x06,
            0x3A, 0xEA, 0xD3, 0xB7,
        ];
        let text = b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
        assert_eq!(&encode_key(&key), text);
        assert_eq!(decode_key(text), Ok(key));
        assert_eq!(
            decode_key(b" JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n"),
            Ok(key)
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut out = [0u8; 8];
        assert_eq!(encode(&[1, 2, 3], &mut out), Err(Z85Error::BadLength));
        assert_eq!(encode(&[0; 8], &mut out), Err(Z85Error::BufferTooSmall));
        assert_eq!(decode(b"Hell", &mut out), Err(Z85Error::BadLength));
        assert_eq!(decode(b"Hello World", &mut out), Err(Z85Error::BadLength));
        assert_eq!(decode(b"Hel\"o", &mut out), Err(Z85Error::BadCharacter(3)));
        assert_eq!(decode(b"#####", &mut out), Err(Z85Error::Overflow(0)));
        assert_eq!(decode(b"%nSc0", &mut out), Ok(4)); // 2^32 - 1
        assert_eq!(&out[..4], &[0xff; 4]);
        assert_eq!(decode(b"%nSc1", &mut out), Err(Z85Error::Overflow(0)));
        assert_eq!(decode_key(b"HelloWorld"), Err(Z85Error::BadLength));
    }
}
