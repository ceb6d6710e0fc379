//! Making sender-controlled strings safe to put in a log line.

use std::fmt;

const MAX_SHOWN: usize = 80;

/// Displays a string quoted, with control characters escaped and long values cut, so a crafted
/// branch name or method cannot forge extra log lines or flood the log.
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(MAX_SHOWN) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// Keeps at most a bounded prefix of a sender-controlled value for storing in a verdict.
pub(crate) fn clip(value: &str) -> String {
    match value.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => value[..cut].to_owned(),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_cuts() {
        assert_eq!(Shown("a\nb").to_string(), "\"a\\nb\"");
        let long = "x".repeat(200);
        assert_eq!(Shown(&long).to_string().chars().count(), MAX_SHOWN + 3);
        assert_eq!(clip(&long).len(), MAX_SHOWN);
    }
}
