//! Hex encoding and decoding for signatures and commit ids.
//!
//! Written out here because it is a dozen lines and the decoder must accept both cases.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Why a hex string was refused, so the log can say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HexError {
    Length,
    Digit,
}

pub(crate) fn encode_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes exactly 32 bytes (an HMAC-SHA256 tag) from 64 hex digits of either case.
pub(crate) fn decode_32(text: &[u8]) -> Result<[u8; 32], HexError> {
    if text.len() != 64 {
        return Err(HexError::Length);
    }
    let mut out = [0u8; 32];
    // Accumulate instead of returning at the first bad digit: one branch for the whole tag.
    let mut seen = 0u8;
    for (slot, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let &[high, low] = pair else {
            return Err(HexError::Length);
        };
        let (high, low) = (NIBBLES[usize::from(high)], NIBBLES[usize::from(low)]);
        seen |= high | low;
        *slot = (high << 4) | (low & 0x0f);
    }
    if seen > 0x0f {
        return Err(HexError::Digit);
    }
    Ok(out)
}

/// True for a string of exactly `len` hex digits of either case.
pub(crate) fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| nibble(b).is_some())
}

fn nibble(digit: u8) -> Option<u8> {
    match NIBBLES[usize::from(digit)] {
        INVALID => None,
        value => Some(value),
    }
}

const INVALID: u8 = 0xff;

/// Digit values by byte; a table keeps decoding branch-light on the hot verification path.
const NIBBLES: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_case() {
        let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let lower = encode_lower(&bytes);
        assert_eq!(
            decode_32(lower.as_bytes()).ok(),
            Some(<[u8; 32]>::try_from(&bytes[..]).unwrap())
        );
        let upper = lower.to_ascii_uppercase();
        assert_eq!(decode_32(upper.as_bytes()), decode_32(lower.as_bytes()));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(decode_32(&[b'a'; 63]), Err(HexError::Length));
        let mut text = [b'a'; 64];
        text[10] = b'g';
        assert_eq!(decode_32(&text), Err(HexError::Digit));
        assert!(is_hex("0123456789ABCDEFabcdef0123456789abcdef01", 40));
        assert!(!is_hex("0123456789abcdef", 40));
        assert!(!is_hex("z123456789abcdef0123456789abcdef01234567", 40));
    }
}
