//! Host key verification for ssh fetches. libgit2 would otherwise consult `$HOME/.ssh/known_hosts`,
//! which a service usually lacks (or shares with people); baton decides itself, from a known_hosts
//! file of its own and/or pinned fingerprints, and never trusts a key on first use.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::base64;
use crate::error::Error;

/// A SHA-256 host key fingerprint, printed like OpenSSH: `SHA256:<base64 without padding>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Parses `SHA256:<base64>` (padding optional), as `ssh-keygen -l` prints it.
    pub fn parse(text: &str) -> Result<Fingerprint, Error> {
        let bad = || {
            Error::Config(format!(
                "host fingerprint `{text}` is not of the form SHA256:<base64> \
                 (as printed by `ssh-keygen -lf`)"
            ))
        };
        let encoded = text.strip_prefix("SHA256:").ok_or_else(bad)?;
        let bytes = base64::decode(encoded).ok_or_else(bad)?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Fingerprint(array))
    }

    /// The fingerprint of an ssh public key blob (the decoded base64 of a known_hosts line).
    pub fn of_key_blob(blob: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(blob).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", base64::encode_unpadded(&self.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
}

#[derive(Debug, Clone)]
enum Hosts {
    /// Comma-separated patterns with `*`/`?` wildcards and `!` negation.
    Patterns(Vec<String>),
    /// `|1|salt|hash`: HMAC-SHA1 of the host name keyed with the salt (`HashKnownHosts yes`).
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Line {
    marker: Marker,
    hosts: Hosts,
    key: Fingerprint,
}

/// The parsed entries of an OpenSSH known_hosts file. `@cert-authority` lines are ignored
/// (host certificates are not supported) and so are lines that do not parse, as ssh does.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    lines: Vec<Line>,
}

impl KnownHosts {
    /// Reads and parses a known_hosts file; only an unreadable file is an error.
    pub fn load(path: &Path) -> Result<KnownHosts, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("known_hosts file {}: {e}", path.display())))?;
        Ok(KnownHosts::parse(&text))
    }

    /// Parses known_hosts text.
    pub fn parse(text: &str) -> KnownHosts {
        let lines = text.lines().filter_map(parse_line).collect();
        KnownHosts { lines }
    }

    /// What the file says about `key` presented by `host` on `port`.
    fn judge(&self, host: &str, port: u16, key: &Fingerprint) -> Judgement {
        let label = known_hosts_label(host, port);
        let mut judgement = Judgement::Unknown;
        for line in self.lines.iter().filter(|l| hosts_match(&l.hosts, &label)) {
            match line.marker {
                Marker::Revoked if line.key == *key => return Judgement::Revoked,
                Marker::Revoked => {}
                Marker::None if line.key == *key => judgement = Judgement::Known,
                Marker::None => {
                    if judgement == Judgement::Unknown {
                        judgement = Judgement::Mismatch;
                    }
                }
            }
        }
        judgement
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judgement {
    Known,
    Mismatch,
    Revoked,
    Unknown,
}

/// The name ssh looks up in known_hosts: `host` on port 22, `[host]:port` otherwise.
fn known_hosts_label(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => {
            first = fields.next()?;
            Marker::Revoked
        }
        m if m.starts_with('@') => return None, // @cert-authority and unknown markers
        _ => Marker::None,
    };
    let _key_type = fields.next()?;
    let blob = base64::decode(fields.next()?)?;
    let hosts = match first.strip_prefix("|1|") {
        Some(hashed) => {
            let (salt, hash) = hashed.split_once('|')?;
            Hosts::Hashed {
                salt: base64::decode(salt)?,
                hash: base64::decode(hash)?,
            }
        }
        None => Hosts::Patterns(first.split(',').map(str::to_ascii_lowercase).collect()),
    };
    Some(Line {
        marker,
        hosts,
        key: Fingerprint::of_key_blob(&blob),
    })
}

fn hosts_match(hosts: &Hosts, label: &str) -> bool {
    match hosts {
        Hosts::Hashed { salt, hash } => {
            let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(salt) else {
                return false;
            };
            mac.update(label.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        Hosts::Patterns(patterns) => {
            let mut matched = false;
            for pattern in patterns {
                match pattern.strip_prefix('!') {
                    Some(negated) if wildcard_match(negated.as_bytes(), label.as_bytes()) => {
                        return false;
                    }
                    Some(_) => {}
                    None => matched |= wildcard_match(pattern.as_bytes(), label.as_bytes()),
                }
            }
            matched
        }
    }
}

/// `*` matches any run of characters, `?` exactly one (ssh's `match_pattern`).
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Everything a fetch needs to decide whether to talk to a host: the host it meant to reach
/// and the keys it trusts for it.
#[derive(Debug, Clone)]
pub(crate) struct HostKeyPolicy {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) pinned: Vec<Fingerprint>,
    pub(crate) known_hosts: Option<KnownHosts>,
}

impl HostKeyPolicy {
    /// Accepts iff the presented key is pinned or listed for this host (and not revoked).
    /// The error shows the presented fingerprint, so a person can compare it out of band.
    pub(crate) fn check(&self, presented: &Fingerprint) -> Result<(), String> {
        let shown = crate::source::display_host(&self.host, self.port);
        let judgement = match &self.known_hosts {
            Some(known) => known.judge(&self.host, self.port, presented),
            None => Judgement::Unknown,
        };
        match judgement {
            Judgement::Revoked => Err(format!(
                "host key for {shown} is marked @revoked in known_hosts: {presented}"
            )),
            _ if self.pinned.contains(presented) => Ok(()),
            Judgement::Known => Ok(()),
            Judgement::Mismatch => Err(format!(
                "host key for {shown} does not match known_hosts: presented {presented} \
                 (the host's key changed, or someone is intercepting the connection)"
            )),
            Judgement::Unknown => Err(format!(
                "host key for {shown} is not trusted: {presented} (add it to known_hosts \
                 or host_fingerprints after checking it with the host's owner)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ed25519 public key blob (`ssh-keygen -t ed25519`), base64 as in known_hosts.
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOZfbzbdHJxBSoiCj3H6ObOVtq7TJXNP0KcLWcbUhTjO";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIAbQnQjN7Hqm9S6fJ4w5o2i+0d6ZB9ZdXH0Fq3h1Xy9z";

    fn fp(key: &str) -> Fingerprint {
        Fingerprint::of_key_blob(&base64::decode(key).unwrap())
    }

    /// The policy for `host:port` pinning `key`, with `known_hosts` if any.
    fn pinning(host: &str, port: u16, key: &str, known_hosts: Option<KnownHosts>) -> HostKeyPolicy {
        HostKeyPolicy {
            host: host.into(),
            port,
            pinned: vec![fp(key)],
            known_hosts,
        }
    }

    #[test]
    fn fingerprint_round_trip() {
        let f = fp(KEY);
        let text = f.to_string();
        assert!(text.starts_with("SHA256:") && !text.ends_with('='));
        assert_eq!(Fingerprint::parse(&text).unwrap(), f);
        assert_eq!(Fingerprint::parse(&format!("{text}=")).unwrap(), f);
        assert!(Fingerprint::parse("MD5:aa").is_err());
        assert!(Fingerprint::parse("SHA256:abc").is_err());
    }

    #[test]
    fn plain_bracketed_and_listed_hosts() {
        let known = KnownHosts::parse(&format!(
            "# comment\n\
             example.org ssh-ed25519 {KEY}\n\
             [127.0.0.1]:2222,other ssh-ed25519 {KEY}\n\
             garbage line\n\
             *.corp,!bad.corp ssh-ed25519 {KEY}\n"
        ));
        assert_eq!(known.judge("Example.org", 22, &fp(KEY)), Judgement::Known);
        assert_eq!(
            known.judge("example.org", 2222, &fp(KEY)),
            Judgement::Unknown
        );
        assert_eq!(known.judge("127.0.0.1", 2222, &fp(KEY)), Judgement::Known);
        assert_eq!(known.judge("127.0.0.1", 22, &fp(KEY)), Judgement::Unknown);
        assert_eq!(known.judge("other", 22, &fp(KEY)), Judgement::Known);
        assert_eq!(known.judge("git.corp", 22, &fp(KEY)), Judgement::Known);
        assert_eq!(known.judge("bad.corp", 22, &fp(KEY)), Judgement::Unknown);
        assert_eq!(
            known.judge("example.org", 22, &fp(OTHER)),
            Judgement::Mismatch
        );
    }

    #[test]
    fn hashed_hosts() {
        // HMAC-SHA1 of "[127.0.0.1]:2222" under a fixed salt, computed here the way ssh does.
        let salt = [7u8; 20];
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let line = format!(
            "|1|{}|{} ssh-ed25519 {KEY}",
            base64::encode_unpadded(&salt),
            base64::encode_unpadded(&hash)
        );
        let known = KnownHosts::parse(&line);
        assert_eq!(known.judge("127.0.0.1", 2222, &fp(KEY)), Judgement::Known);
        assert_eq!(known.judge("127.0.0.2", 2222, &fp(KEY)), Judgement::Unknown);
    }

    #[test]
    fn revoked_wins_over_pins() {
        let revoked = KnownHosts::parse(&format!("@revoked * ssh-ed25519 {KEY}"));
        let policy = pinning("h", 22, KEY, Some(revoked));
        assert!(policy.check(&fp(KEY)).unwrap_err().contains("revoked"));
    }

    #[test]
    fn policy_messages_show_the_presented_key() {
        let policy = pinning("127.0.0.1", 2222, OTHER, None);
        assert_eq!(policy.check(&fp(OTHER)), Ok(()));
        let err = policy.check(&fp(KEY)).unwrap_err();
        assert!(err.contains("127.0.0.1:2222"), "{err}");
        assert!(err.contains(&fp(KEY).to_string()), "{err}");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"*", b"anything"));
        assert!(wildcard_match(b"a*c", b"abbbc"));
        assert!(wildcard_match(b"a?c", b"abc"));
        assert!(!wildcard_match(b"a?c", b"ac"));
        assert!(wildcard_match(b"*.example.org", b"git.example.org"));
        assert!(!wildcard_match(b"*.example.org", b"example.org"));
    }
}
