//! Case-insensitive header lookup over plain `(name, value)` pairs.
//!
//! A slice of pairs keeps the core independent of any HTTP crate; converting from
//! `http::HeaderMap` is a one-line `iter().map(..)`.

/// Result of looking up a header that must appear at most once.
pub(crate) enum Lookup<'a> {
    Absent,
    One(&'a [u8]),
    /// Sent more than once. Security-relevant headers that repeat are refused rather than
    /// guessing which copy the sender meant.
    Repeated,
}

#[derive(Clone, Copy)]
pub(crate) struct Headers<'a>(&'a [(&'a str, &'a [u8])]);

impl<'a> Headers<'a> {
    pub(crate) fn new(pairs: &'a [(&'a str, &'a [u8])]) -> Self {
        Self(pairs)
    }

    pub(crate) fn lookup(&self, name: &str) -> Lookup<'a> {
        let mut found = Lookup::Absent;
        for (key, value) in self.0 {
            if key.eq_ignore_ascii_case(name) {
                found = match found {
                    Lookup::Absent => Lookup::One(value),
                    _ => return Lookup::Repeated,
                };
            }
        }
        found
    }

    /// The value when the header is present exactly once.
    pub(crate) fn get(&self, name: &str) -> Option<&'a [u8]> {
        match self.lookup(name) {
            Lookup::One(value) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(key, _)| key.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_flags_repeats() {
        let pairs: [(&str, &[u8]); 3] = [("X-GitHub-Event", b"push"), ("x-a", b"1"), ("X-A", b"2")];
        let headers = Headers::new(&pairs);
        assert_eq!(headers.get("x-github-event"), Some(&b"push"[..]));
        assert!(matches!(headers.lookup("x-a"), Lookup::Repeated));
        assert!(matches!(headers.lookup("x-b"), Lookup::Absent));
        assert!(headers.contains("X-a"));
    }
}
