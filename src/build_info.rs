//! Which baton this is: the package version and a build id, the first 12 hex digits of the
//! SHA-256 of the executable itself. Two builds of one version differ, so `baton upgrade` can
//! say what it replaced with what.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version and build id of one baton binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub version: String,
    pub build: String,
}

impl std::fmt::Display for BuildInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (build {})", self.version, self.build)
    }
}

/// This process's baton (hashed once, from the image that runs, even if the file on disk was
/// replaced since).
pub fn current() -> &'static BuildInfo {
    static INFO: OnceLock<BuildInfo> = OnceLock::new();
    INFO.get_or_init(|| BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        build: hash_file("/proc/self/exe").unwrap_or_else(|| "unknown".into()),
    })
}

fn hash_file(path: &str) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Some(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
}

/// The path this binary was started from, read before anything could replace it: an upgrade
/// executes whatever file is at that path now.
pub fn executable_path() -> &'static Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let link = std::fs::read_link("/proc/self/exe").ok()?;
        // After the file was replaced the link reads "PATH (deleted)"; the path is what counts.
        let text = link.to_string_lossy();
        Some(PathBuf::from(
            text.strip_suffix(" (deleted)").unwrap_or(&text).to_string(),
        ))
    })
}

/// `baton --version`'s text.
pub fn version_text() -> String {
    let info = current();
    format!("{} (build {})", info.version, info.build)
}
