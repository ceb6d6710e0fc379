//! Process-wide libgit2 settings, applied once before the first git operation.
//!
//! Left alone, libgit2 reads the service user's `$HOME/.ssh/known_hosts` on every ssh
//! connection (an entry libssh2 cannot parse fails every fetch) and the user's and system's
//! git configuration (where a `url.*.insteadOf` silently redirects the repository). A deploy
//! must depend only on baton's configuration, so both are switched off, and network timeouts
//! bound how long a fetch can hang on a stalled server.

use std::sync::Once;

use git2::ConfigLevel;

const CONNECT_TIMEOUT_MS: i32 = 15_000;
const IO_TIMEOUT_MS: i32 = 60_000;
/// A home directory that does not exist, so libgit2 finds no `.ssh/known_hosts` under it.
const NO_HOME: &std::ffi::CStr = c"/nonexistent/baton-deploy-has-no-home";

/// Applies the settings; every function of this crate that touches libgit2 calls it first.
#[allow(unsafe_code)]
pub(crate) fn configure() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: these setters write libgit2 globals without synchronisation. Their readers
        // are libgit2 operations (opening repositories, connecting), and every one of those
        // in this crate runs after `configure()` returns, which `Once` orders after these
        // writes; baton uses libgit2 only through this crate. The arguments are valid: an
        // empty search path, positive timeouts, and a NUL-terminated static string that
        // libgit2 copies.
        unsafe {
            for level in [
                ConfigLevel::System,
                ConfigLevel::XDG,
                ConfigLevel::Global,
                ConfigLevel::ProgramData,
            ] {
                let _ = git2::opts::set_search_path(level, "");
            }
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS);
            let _ = git2::opts::set_server_timeout_in_milliseconds(IO_TIMEOUT_MS);
            libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_SET_HOMEDIR as std::ffi::c_int,
                NO_HOME.as_ptr(),
            );
        }
    });
}
