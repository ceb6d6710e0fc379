//! Host keys of the big public forges, pinned in baton so that a deploy from github.com or
//! gitlab.com needs neither a known_hosts file nor `ssh-keyscan` (which trusts whatever answers
//! on first use). The fingerprints are the ones the forges publish, every key type they serve:
//!
//! - GitHub: <https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/githubs-ssh-key-fingerprints>
//!   (the RSA key is the one that replaced the exposed key on 2023-03-24);
//! - GitLab: <https://docs.gitlab.com/ee/user/gitlab_com/#ssh-host-keys-fingerprints>.
//!
//! When a forge rotates a key, this table changes in a baton release; until then, a
//! `known_hosts` entry or `host_fingerprints` for the new key is accepted alongside the pins.

use crate::hostkey::Fingerprint;

/// A forge whose ssh host keys baton knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forge {
    /// The ssh host name, lower case.
    pub host: &'static str,
    /// `(key type, SHA256 fingerprint)` as `ssh-keygen -l` prints them.
    pub keys: &'static [(&'static str, &'static str)],
}

/// Every forge baton pins, with every key type each one serves.
pub const FORGES: &[Forge] = &[
    Forge {
        host: "github.com",
        keys: &[
            (
                "ed25519",
                "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
            ),
            (
                "ecdsa",
                "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
            ),
            ("rsa", "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"),
        ],
    },
    Forge {
        host: "gitlab.com",
        keys: &[
            (
                "ed25519",
                "SHA256:eUXGGm1YGsMAS7vkcx6JOJdOGHPem5gQp4taiCfCLB8",
            ),
            (
                "ecdsa",
                "SHA256:HbW3g8zUjNSksFbqTiUWPWg2Bq1x8xdGUrliXFzSnUw",
            ),
            ("rsa", "SHA256:ROQFvPThGrW4RuWLoL9tq9I9zJ42fK4XywyRtbOz/EQ"),
        ],
    },
];

/// The forge serving ssh at `host:port`, if baton pins it. Only port 22: another port on the
/// same name is not the forge's git service.
pub fn forge_for(host: &str, port: u16) -> Option<&'static Forge> {
    if port != 22 {
        return None;
    }
    FORGES
        .iter()
        .find(|forge| forge.host.eq_ignore_ascii_case(host))
}

/// The pinned fingerprints for `host:port`; empty for hosts baton does not know.
pub fn pinned_for(host: &str, port: u16) -> Vec<Fingerprint> {
    forge_for(host, port)
        .map(|forge| {
            forge
                .keys
                .iter()
                .filter_map(|(_, text)| Fingerprint::parse(text).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base64;

    #[test]
    fn every_pin_parses_and_every_forge_pins_three_key_types() {
        for forge in FORGES {
            let types: Vec<_> = forge.keys.iter().map(|(t, _)| *t).collect();
            assert_eq!(types, ["ed25519", "ecdsa", "rsa"], "{}", forge.host);
            for (_, text) in forge.keys {
                let parsed = Fingerprint::parse(text).unwrap();
                assert_eq!(parsed.to_string(), *text);
            }
            assert_eq!(pinned_for(forge.host, 22).len(), 3);
        }
    }

    #[test]
    fn only_port_22_of_the_exact_host() {
        assert!(forge_for("GitHub.com", 22).is_some());
        assert!(forge_for("github.com", 2222).is_none());
        assert!(forge_for("github.com.evil.example", 22).is_none());
        assert!(forge_for("example.org", 22).is_none());
        assert!(pinned_for("example.org", 22).is_empty());
    }

    /// The published host key blobs hash to the pinned fingerprints: GitHub publishes its keys
    /// (known_hosts lines on the fingerprints page and in its meta API), so the pin for each
    /// type is checked against the key itself rather than only against a copied string.
    #[test]
    fn github_published_keys_hash_to_the_pins() {
        let published = [
            "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=",
            "AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1aNUkY4Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmerOBYfNqltV9/hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkxCflmO+5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/wsjk=",
        ];
        let hashed: Vec<Fingerprint> = published
            .iter()
            .map(|blob| Fingerprint::of_key_blob(&base64::decode(blob).unwrap()))
            .collect();
        assert_eq!(hashed, pinned_for("github.com", 22));
    }
}

#[cfg(test)]
mod source_tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::Source;

    fn source(repo: &str, key: &std::path::Path) -> Source {
        Source {
            repo: repo.to_string(),
            branch: "main".to_string(),
            deploy_key: Some(key.to_path_buf()),
            ..Source::default()
        }
    }

    /// A pinned forge needs no known_hosts; any other host still does.
    #[test]
    fn pinned_forges_need_no_known_hosts() {
        let dir = crate::test_dir::scratch("forge-keys");
        let key = dir.join("key");
        std::fs::write(&key, "not checked here\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        source("git@github.com:me/app.git", &key)
            .validate()
            .unwrap();
        source("ssh://git@gitlab.com/me/app.git", &key)
            .validate()
            .unwrap();
        let err = source("git@git.example.org:me/app.git", &key)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neither known_hosts nor host_fingerprints"),
            "{err}"
        );
        assert!(!err.contains("ssh-keyscan"), "{err}");
        let err = source("ssh://git@github.com:2222/me/app.git", &key)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("neither known_hosts"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
