//! Human durations for flags and config: `500ms`, `30s`, `5m`, `1h`, `1m30s`.

use std::time::Duration;

/// A duration that [`parse`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?} (examples: 500ms, 30s, 5m, 1h30m)")]
pub struct InvalidDuration {
    /// What was given.
    pub text: String,
}

/// Reads `500ms`, `30s`, `5m`, `1h30m` (`0` alone is zero).
pub fn parse(text: &str) -> Result<Duration, InvalidDuration> {
    let bad = || InvalidDuration {
        text: text.to_string(),
    };
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        let part = unit.checked_mul(u32::try_from(value).map_err(|_| bad())?);
        total = total.checked_add(part.ok_or_else(bad)?).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The shortest exact rendering that [`parse`] reads back.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if !ms.is_multiple_of(60_000) || ms == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m", ms / 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (text, d) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m30s", Duration::from_secs(90)),
        ] {
            assert_eq!(parse(text).unwrap(), d);
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        for bad in ["", "30", "s", "3x", "-1s", "1.5s", "99999999999s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
