//! Getting the JSON document out of an authenticated body, whatever the content type.

use std::borrow::Cow;

use serde::de::DeserializeOwned;

use crate::form;
use crate::headers::{Headers, Lookup};
use crate::rejection::PayloadError;

enum Encoding {
    Json,
    Form,
    Unknown,
}

/// Parses the payload into `T`. Forges can send either JSON or a form whose `payload` field
/// holds the JSON; the signature always covers the raw bytes, so this runs only after
/// verification.
pub(crate) fn parse<T: DeserializeOwned>(
    headers: &Headers<'_>,
    body: &[u8],
) -> Result<T, PayloadError> {
    let json = json_bytes(headers, body)?;
    // A derived struct would also accept a JSON array positionally; a payload is always an object.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(PayloadError::NotAnObject);
    }
    serde_json::from_slice(&json).map_err(|error| PayloadError::Json(error.to_string()))
}

fn json_bytes<'b>(headers: &Headers<'_>, body: &'b [u8]) -> Result<Cow<'b, [u8]>, PayloadError> {
    match encoding(headers) {
        Encoding::Json => Ok(Cow::Borrowed(body)),
        Encoding::Form => {
            let payload = form::field(body, "payload")?;
            std::str::from_utf8(&payload).map_err(|_| PayloadError::NotUtf8)?;
            Ok(Cow::Owned(payload))
        }
        Encoding::Unknown if body.first() == Some(&b'{') => Ok(Cow::Borrowed(body)),
        Encoding::Unknown => Err(PayloadError::UnsupportedContentType),
    }
}

fn encoding(headers: &Headers<'_>) -> Encoding {
    let Lookup::One(value) = headers.lookup("content-type") else {
        return Encoding::Unknown;
    };
    // Parameters such as `; charset=utf-8` do not change how the body is read.
    let media_type = value
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if media_type.eq_ignore_ascii_case(b"application/json") {
        Encoding::Json
    } else if media_type.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        Encoding::Form
    } else {
        Encoding::Unknown
    }
}
