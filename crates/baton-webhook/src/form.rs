//! `application/x-www-form-urlencoded` decoding, just enough to pull out GitHub's `payload` field.

use crate::rejection::PayloadError;

/// Decoded value of the single field called `name`.
///
/// Every key and value is checked, so a body with any invalid `%`-escape is refused as a whole
/// instead of being half-read.
pub(crate) fn field(body: &[u8], name: &str) -> Result<Vec<u8>, PayloadError> {
    let mut found = None;
    for pair in body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
        let mut parts = pair.splitn(2, |&b| b == b'=');
        let key = decode(parts.next().unwrap_or_default())?;
        let value = decode(parts.next().unwrap_or_default())?;
        if key == name.as_bytes() {
            if found.is_some() {
                return Err(PayloadError::RepeatedFormPayload);
            }
            found = Some(value);
        }
    }
    found.ok_or(PayloadError::MissingFormPayload)
}

/// `+` is a space and `%XX` a byte; everything else is taken as is.
fn decode(raw: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&byte) = bytes.next() {
        out.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = bytes.next().and_then(|&d| hex_digit(d));
                let low = bytes.next().and_then(|&d| hex_digit(d));
                match (high, low) {
                    (Some(high), Some(low)) => (high << 4) | low,
                    _ => return Err(PayloadError::BadUrlEncoding),
                }
            }
            other => other,
        });
    }
    Ok(out)
}

fn hex_digit(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_payload() {
        let body = b"payload=%7B%22ref%22%3A+%22a+b%22%7D&other=x";
        assert_eq!(field(body, "payload"), Ok(br#"{"ref": "a b"}"#.to_vec()));
        assert_eq!(field(b"pay%6Coad=1", "payload"), Ok(b"1".to_vec()));
        assert_eq!(field(b"payload", "payload"), Ok(Vec::new()));
    }

    #[test]
    fn refuses_bad_forms() {
        for (body, error) in [
            (&b"payload=%zz"[..], PayloadError::BadUrlEncoding),
            (b"payload=%4", PayloadError::BadUrlEncoding),
            (b"x=1&y=%", PayloadError::BadUrlEncoding),
            (b"x=1", PayloadError::MissingFormPayload),
            (b"", PayloadError::MissingFormPayload),
            (b"payload=1&payload=2", PayloadError::RepeatedFormPayload),
        ] {
            assert_eq!(field(body, "payload"), Err(error), "{body:?}");
        }
    }
}
