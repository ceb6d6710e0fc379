//! TLS for the webhook socket, for servers without a reverse proxy: a PEM certificate chain and
//! key (e.g. Let's Encrypt's `fullchain.pem` and `privkey.pem`), picked up again when renewed.
//!
//! Renewal replaces the files (certbot points its `live/` links at new files); restarting baton
//! for that would be a needless restart. So the resolver looks at the files at most once a
//! second, on a handshake, and loads them again when either changed (device, inode, size or
//! modification time of what the path points to). A renewed pair that does not load (half
//! written, key not matching) is logged and the previous certificate keeps serving.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often, at most, the files are looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: (Stamp, Stamp),
    checked: Instant,
}

/// Serves the certificate in `cert`/`key`, reloading it when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("stamps", &self.stamps)
            .finish()
    }
}

/// Reads and checks a certificate chain and its key; the error is one line naming the file.
fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate {} holds no CERTIFICATE block",
            cert.display()
        ));
    }
    let meta = std::fs::metadata(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    baton_deploy::private_file::check_private(key, &meta, "TLS key").map_err(|e| e.to_string())?;
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let certified = CertifiedKey::from_der(chain, private, &default_provider()).map_err(|e| {
        format!(
            "TLS key {} does not go with certificate {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

impl ReloadingCert {
    /// Loads the pair now: a certificate that cannot serve is a start-up error.
    pub fn new(cert: &Path, key: &Path) -> Result<ReloadingCert, String> {
        let stamps = (
            stamp(cert).map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?,
            stamp(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?,
        );
        let loaded = Loaded {
            key: load(cert, key)?,
            stamps,
            checked: Instant::now(),
        };
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(loaded),
        })
    }

    /// The certificate to present now, reloaded first if the files changed.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.checked.elapsed() < RECHECK {
            return state.key.clone();
        }
        state.checked = Instant::now();
        let (Ok(cert), Ok(key)) = (stamp(&self.cert), stamp(&self.key)) else {
            return state.key.clone(); // mid-rename: look again next time
        };
        if (cert, key) != state.stamps {
            match load(&self.cert, &self.key) {
                Ok(new) => {
                    state.key = new;
                    state.stamps = (cert, key);
                    tracing::info!("webhook TLS: loaded renewed {}", self.cert.display());
                }
                Err(e) => tracing::warn!("webhook TLS: keeping the previous certificate: {e}"),
            }
        }
        state.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server config for the webhook: TLS 1.2/1.3 with rustls' safe defaults, HTTP/2
/// or HTTP/1.1 by ALPN, the certificate from [`ReloadingCert`].
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let resolver = ReloadingCert::new(cert, key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
